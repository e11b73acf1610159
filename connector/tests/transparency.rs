//! Transparency: with an allow-all policy, Gate is invisible. The same psql
//! script (types, errors, notices, COPY, transactions, cursors, prepared
//! statements, a 100k-row result) gives byte-identical output through Gate
//! and directly against PostgreSQL, in session and in transaction pooling.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::process::Command;

use common::*;
use gate_testkit::PgAuth;

const ALLOW_ALL: &str = "package allow_all\nimport rego.v1\nsession := {\"action\": \"allow\"}\npre_request := {\"action\": \"allow\"}\npost_request := {\"action\": \"allow\"}\n";

fn run_script(port: u16, user: &str, password: &str, script: &std::path::Path) -> (String, String) {
    let out = Command::new(PSQL)
        .env("PGPASSWORD", password)
        .env("PGTZ", "UTC")
        .args([
            "-X",
            "-A",
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            "appdb",
            "-f",
        ])
        .arg(script)
        .output()
        .unwrap();
    (
        without_pids(&text(&out.stdout)),
        without_pids(&text(&out.stderr)),
    )
}

/// Notifications name the backend's PID, which differs between any two sessions.
fn without_pids(output: &str) -> String {
    output
        .lines()
        .map(|l| match l.find("server process with PID ") {
            Some(at) => format!("{}server process with PID <pid>.", &l[..at]),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_script_gives_identical_output_through_gate_and_direct() {
    assert_transparent("");
}

/// Transaction pooling too: the script's session-state statements (`SET`, `LISTEN`, SQL
/// `PREPARE`, `WITH HOLD` cursors) pin the session to its connection, so nothing changes.
#[test]
fn the_script_gives_identical_output_with_transaction_pooling() {
    assert_transparent(", pool: {mode: transaction, max_connections: 2}");
}

fn assert_transparent(resource_extra: &str) {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("allow_all.rego");
    std::fs::write(&policy, ALLOW_ALL).unwrap();
    let stack = start_with(
        PgAuth::Scram {
            password: "super".into(),
        },
        resource_extra,
        &all_stages(&policy),
        None,
    );
    let script = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/transparency.sql"
    ));
    let statements = std::fs::read_to_string(script)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("--") && !l.trim().is_empty())
        .count();
    assert!(statements >= 50, "the suite has {statements} statements");

    let (direct_out, direct_err) = run_script(stack.pg.port(), "gate_app", "gate-app-pw", script);
    let (gate_out, gate_err) = run_script(stack.port, "app", "app", script);

    assert!(
        direct_out.lines().count() > 100_000,
        "the 100k-row result is in the output"
    );
    assert!(
        direct_err.contains("ERROR:  relation \"no_such_table\" does not exist"),
        "{direct_err}"
    );
    assert!(
        direct_err.contains("NOTICE:  hello from a notice 42"),
        "{direct_err}"
    );
    if gate_out != direct_out {
        let first = gate_out
            .lines()
            .zip(direct_out.lines())
            .position(|(g, d)| g != d);
        panic!(
            "stdout differs (gate {} lines, direct {} lines) first at line {first:?}: gate {:?} / direct {:?}",
            gate_out.lines().count(),
            direct_out.lines().count(),
            first.and_then(|i| gate_out.lines().nth(i)),
            first.and_then(|i| direct_out.lines().nth(i)),
        );
    }
    assert_eq!(
        gate_err, direct_err,
        "errors, warnings and notices must be identical"
    );
}
