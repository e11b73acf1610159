//! `gate-connector --check`: validates the configuration and compiles its policies.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::path::Path;
use std::process::Command;

fn connector(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gate-connector"));
    cmd.current_dir(cwd);
    cmd
}

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn the_shipped_config_checks_clean() {
    let out = connector(repo())
        .args(["--config", "config/connector.yaml", "--check"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("config/connector.yaml: ok (5 resource(s), 2 policy file(s))"),
        "{stdout}"
    );
}

#[test]
fn every_config_problem_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        "resources:\n  - {name: db, protocol: postgres, host: h, port: 70000}\nlogging: {level: loud}\n",
    )
    .unwrap();
    let out = connector(dir.path())
        .args(["--config", "c.yaml", "--check"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("c.yaml: resources[0].port: expected 1-65535, got 70000"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "c.yaml: logging.level: expected trace, debug, info, warn or error, got \"loud\""
        ),
        "{stderr}"
    );
    assert!(stderr.contains("2 configuration problem(s)"), "{stderr}");
}

#[test]
fn a_broken_policy_is_reported_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.rego"),
        "package p\nimport rego.v1\nsession := {\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("missing_stage.rego"),
        "package m\nimport rego.v1\nsession := {\"action\": \"allow\"}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        "policies:\n  - {path: p.rego, stage: session}\n  - {path: missing_stage.rego, stage: post_request}\n",
    )
    .unwrap();
    let out = connector(dir.path())
        .args(["--config", "c.yaml", "--check"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("policy p: p.rego:4:1:"), "{stderr}");
    assert!(stderr.contains("policy missing_stage: is configured for stage post_request but defines no `post_request` rule"), "{stderr}");
}

#[test]
fn an_unset_variable_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        "masking: {hash_key: \"${GATE_TEST_SURELY_UNSET}\"}\n",
    )
    .unwrap();
    let out = connector(dir.path())
        .env_remove("GATE_TEST_SURELY_UNSET")
        .args(["--config", "c.yaml", "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("masking.hash_key: environment variable GATE_TEST_SURELY_UNSET is not set")
    );
}

#[test]
fn an_ssh_resource_without_its_upstream_login_is_refused_by_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        "resources:\n  - {name: pg, protocol: postgres, host: h, port: 5432}\n  - {name: shell, protocol: ssh, host: h, port: 22}\n",
    )
    .unwrap();
    let out = connector(dir.path())
        .args(["--config", "c.yaml", "--check"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for want in [
        "c.yaml: resources[1].username: required for ssh resources (the upstream account)",
        "c.yaml: resources[1].private_key_file: required for ssh resources unless password is set",
        "c.yaml: resources[1].known_hosts_file: required for ssh resources",
    ] {
        assert!(stderr.contains(want), "{want}: {stderr}");
    }
}
