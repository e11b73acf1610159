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

#[test]
fn asciicast_roundtrip_seeds() {
    replay(
        "asciicast_roundtrip",
        gate_connector::fuzzing::asciicast_roundtrip,
    );
}

#[test]
fn detect_seeds() {
    replay("detect", gate_connector::fuzzing::detect);
}

/// The harness frames what follows the startup packet, so the Query in the
/// `startup_and_query` seed is reached (it used to be framed from byte 0).
#[test]
fn the_startup_and_query_seed_reaches_its_query() {
    let seed = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/pg_frontend/startup_and_query"),
    )
    .unwrap();
    let queries = gate_connector::fuzzing::pg_frontend_queries(&seed);
    assert_eq!(queries.len(), 1, "{queries:?}");
    assert!(
        queries[0].starts_with("select * from customers"),
        "{queries:?}"
    );
}

#[test]
fn http_request_seeds() {
    replay("http_request", gate_connector::fuzzing::http_request);
}

#[test]
fn http_enforce_seeds() {
    replay("http_enforce", gate_connector::fuzzing::http_enforce);
}

#[test]
fn pg_redact_seeds() {
    replay("pg_redact", gate_connector::fuzzing::pg_redact);
}

#[test]
fn mysql_packets_seeds() {
    replay("mysql_packets", gate_connector::fuzzing::mysql_packets);
}

#[test]
fn mongodb_messages_seeds() {
    replay(
        "mongodb_messages",
        gate_connector::fuzzing::mongodb_messages,
    );
}

/// The MongoDB seeds are real messages: each opens with a frame the codec
/// reads (OP_COMPRESSED in zlib, snappy and zstd among them).
#[test]
fn the_mongodb_seeds_decode() {
    use gate_connector::protocols::mongodb::codec::{MAX_MESSAGE, decode_frame, decode_message};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/mongodb_messages");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let mut buf = bytes::BytesMut::from(&std::fs::read(&path).unwrap()[..]);
        let frame = decode_frame(&mut buf, MAX_MESSAGE).unwrap().unwrap();
        let decoded = decode_message(&frame);
        assert!(decoded.is_ok(), "{}: {decoded:?}", path.display());
    }
}
