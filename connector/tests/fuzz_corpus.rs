//! Replays the committed fuzz seed corpus (`fuzz/corpus/<target>/`) through the harnesses, so
//! `make test` covers the fuzz targets without a fuzzer.
#![allow(clippy::unwrap_used)]

use std::path::Path;

fn replay(target: &str, harness: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        harness(&data);
        // Every prefix too: truncated input is what a network gives.
        for end in 0..data.len() {
            harness(&data[..end]);
        }
        count += 1;
    }
    assert!(count > 0, "no seeds in {}", dir.display());
}

#[test]
fn pg_frontend_seeds() {
    replay("pg_frontend", gate_connector::fuzzing::pg_frontend);
}

#[test]
fn pg_backend_seeds() {
    replay("pg_backend", gate_connector::fuzzing::pg_backend);
}

#[test]
fn scram_server_seeds() {
    replay("scram_server", gate_connector::fuzzing::scram_server);
}

#[test]
fn sql_normalize_seeds() {
    replay("sql_normalize", gate_connector::fuzzing::sql_normalize);
}
