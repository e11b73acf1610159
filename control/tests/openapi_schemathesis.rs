//! Schemathesis (a real OpenAPI fuzzer, from the test venv) against a live
//! control plane: positive and negative data, every check, coverage, fuzzing
//! and stateful phases. Zero failures means the OpenAPI document says what the
//! server enforces, and the server enforces what the document says.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Db, ROOT_KEY, start_cp};

/// The venv `make test` creates (scripts/test-venv.sh).
fn schemathesis() -> PathBuf {
    let venv = std::env::var_os("GATE_TEST_VENV").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/gate/test-venv"),
        PathBuf::from,
    );
    let program = venv.join("bin/schemathesis");
    assert!(
        program.exists(),
        "{} is missing: run scripts/test-venv.sh (make test does)",
        program.display()
    );
    program
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing() {
    let program = schemathesis();
    let cp = start_cp(Db::Sqlite).await;
    let url = format!("http://{}/api/v1/openapi.json", cp.addr());
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    // A fixed seed keeps CI repeatable; GATE_SCHEMATHESIS_SEED explores others.
    let seed = std::env::var("GATE_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".to_owned());
    // Run from a scratch directory: schemathesis keeps a cache where it runs.
    let scratch = tempfile::tempdir().unwrap();
    let cwd = scratch.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(program)
            .current_dir(cwd)
            .arg("--config-file")
            .arg(config)
            .args([
                "run",
                &url,
                "--mode",
                "all",
                "--max-examples",
                "25",
                "--seed",
                &seed,
            ])
            .args(["--max-response-time", "5", "--request-timeout", "10"])
            .args(["-H", &format!("Authorization: Bearer {ROOT_KEY}")])
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    });
    let out = tokio::time::timeout(Duration::from_secs(600), out)
        .await
        .expect("schemathesis finishes within 10 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It really ran every operation.
    let every = format!("Tested: {}", gate_control::http::routes::ROUTES.len());
    assert!(stdout.contains(&every), "{stdout}");
}
