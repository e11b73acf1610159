//! The `gate-policy` binary: eval, test and check, with their exit codes.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn gate_policy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gate-policy"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn eval(stage: &str, input: &Path, policies: &[&Path]) -> Output {
    gate_policy()
        .args(["eval", "--stage", stage, "--input"])
        .arg(input)
        .args(policies)
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn eval_example_blocks_drop_allows_select_and_masks_at_post_request() {
    let dir = tempfile::tempdir().unwrap();
    let example = repo().join("policies/example.rego");
    let drop = write(
        dir.path(),
        "drop.json",
        r#"{"query": {"type": "drop", "raw": "drop table customers"}}"#,
    );
    let out = eval("pre_request", &drop, &[&example]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!(v["action"], "block");
    assert_eq!(v["reason"], "destructive queries are not allowed");

    let select = write(
        dir.path(),
        "select.json",
        r#"{"query": {"type": "select"}}"#,
    );
    let out = eval("pre_request", &select, &[&example]);
    assert_eq!(
        (out.status.code(), json(&out)["action"].clone()),
        (Some(0), "allow".into())
    );

    let out = eval("post_request", &select, &[&example]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        json(&out)["masks"],
        serde_json::json!([{"column": "email", "strategy": "partial"}, {"column": "ssn", "strategy": "redact"}])
    );
}

#[test]
fn eval_with_a_bad_action_exits_1_naming_the_policy_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let policy = write(
        dir.path(),
        "explode.rego",
        "package p\nimport rego.v1\npre_request := {\"action\": \"explode\"}\n",
    );
    let input = write(dir.path(), "in.json", "{}");
    let out = eval("pre_request", &input, &[&policy]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "policy explode: invalid pre_request decision: action: unknown action \"explode\""
        ),
        "{stderr}"
    );
    assert_eq!(
        json(&out)["action"],
        "block",
        "the printed decision fails closed"
    );
}

#[test]
fn eval_uses_data_and_reports_syntax_errors_with_location() {
    let dir = tempfile::tempdir().unwrap();
    let allow = repo().join("policies/ip_allowlist.rego");
    let data = write(
        dir.path(),
        "data.json",
        r#"{"config": {"ip_allowlist": {"cidrs": ["10.0.0.0/8"]}}}"#,
    );
    let input = write(
        dir.path(),
        "in.json",
        r#"{"connection": {"client_ip": "10.1.2.3"}}"#,
    );
    let out = gate_policy()
        .args(["eval", "--stage", "session", "--input"])
        .arg(&input)
        .arg("--data")
        .arg(&data)
        .arg(&allow)
        .output()
        .unwrap();
    assert_eq!(json(&out)["action"], "allow");

    let broken = write(
        dir.path(),
        "broken.rego",
        "package b\nimport rego.v1\nsession := {\n",
    );
    let out = eval("session", &input, &[&broken]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:4:1:", broken.display())),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let example = repo().join("policies/example.rego");
    let input = write(dir.path(), "in.json", "{}");
    let out = eval("during_lunch", &input, &[&example]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown stage \"during_lunch\""));
    let bad_json = write(dir.path(), "bad.json", "{not json");
    let out = eval("session", &bad_json, &[&example]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not valid JSON"));
    let out = gate_policy()
        .args(["eval", "--stage", "session", "--input"])
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "policies are required");
}

#[test]
fn test_runs_the_policy_library() {
    let out = gate_policy()
        .arg("test")
        .arg(repo().join("policies"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.trim_end().ends_with(" passed, 0 failed"), "{stdout}");
}

#[test]
fn test_counts_failures_from_yaml_cases_and_rego_tests() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.rego",
        "package p\nimport rego.v1\npre_request := {\"action\": \"block\", \"reason\": \"no\"} if input.x\n\
         test_blocks if pre_request.action == \"block\" with input as {\"x\": true}\n\
         test_wrong if pre_request.action == \"allow\" with input as {\"x\": true}\n",
    );
    write(
        dir.path(),
        "cases.yaml",
        "policies: [p.rego]\ncases:\n  - note: right\n    stage: pre_request\n    input: {x: true}\n    want: {action: block, reason: \"no\"}\n\
         \x20 - note: wrong reason\n    stage: pre_request\n    input: {x: true}\n    want: {action: block, reason: \"yes\"}\n",
    );
    let out = gate_policy().arg("test").arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("2 passed, 2 failed"), "{stdout}");
    assert!(stdout.contains("data.p.test_wrong"), "{stdout}");
    assert!(
        stdout.contains("wrong reason: mismatch at .reason"),
        "{stdout}"
    );
}

#[test]
fn check_reports_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = repo().join("policies/example.rego");
    let bad1 = write(
        dir.path(),
        "bad1.rego",
        "package a\nimport rego.v1\nsession := \n",
    );
    let bad2 = write(
        dir.path(),
        "bad2.rego",
        "package b\nimport rego.v1\nsession if {\n  1 +\n}\n",
    );
    let out = gate_policy()
        .arg("check")
        .arg(&good)
        .arg(&bad1)
        .arg(&bad2)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:4:1:", bad1.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}:5:1:", bad2.display())),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok example"));
}

#[test]
fn hostile_policies_fail_closed_through_the_cli() {
    let hostile = repo().join("crates/policy/tests/hostile");
    let out = gate_policy()
        .arg("check")
        .arg(hostile.join("mutual_rules.rego"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mutual_rules.rego:5:6: recursion is not allowed"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "in.json",
        r#"{"query": {"type": "delete", "raw": "delete from t"}}"#,
    );
    let out = gate_policy()
        .args([
            "eval",
            "--stage",
            "pre_request",
            "--default-action",
            "allow",
            "--input",
        ])
        .arg(&input)
        .arg(hostile.join("divide_by_zero.rego"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let decision = json(&out);
    assert_eq!(decision["action"], "block", "{decision}");
    assert!(
        decision["reason"]
            .as_str()
            .unwrap()
            .contains("Cannot divide"),
        "{decision}"
    );
}
