//! Hostile policies through the connector with a real PostgreSQL and psql:
//! a policy whose evaluation fails or runs away refuses the statement with
//! the error (even under `default_action: allow`), the session stays usable
//! and the process healthy; a recursive policy is refused at load.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use common::*;
use gate_config::{ConnectorConfig, load_str};
use gate_testkit::PgAuth;

fn hostile(name: &str) -> std::path::PathBuf {
    repo().join("crates/policy/tests/hostile").join(name)
}

fn pre_request(name: &str) -> String {
    format!(
        "default_action: allow\npolicies:\n  - {{path: \"{}\", stage: pre_request}}\n",
        hostile(name).display()
    )
}

#[test]
fn a_block_rule_that_divides_by_zero_refuses_the_delete_and_the_session_goes_on() {
    let stack = start(PgAuth::Trust, &pre_request("divide_by_zero.rego"));
    let out = psql(
        &stack,
        "app",
        "app",
        "appdb",
        &["delete from customers", "select count(*) from customers"],
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("ERROR:  policy error: policy divide_by_zero: evaluation of data.hostile.pre_request failed: Cannot divide"),
        "{stderr}"
    );
    assert_eq!(text(&out.stdout).trim(), "1", "{stderr}");
    assert_eq!(direct(&stack, "select count(*) from customers"), "1");
    let refused = |l: &str| {
        l.contains("delete from customers")
            && l.contains("\"block\"")
            && l.contains("Cannot divide")
    };
    let audit = audit_when(&stack, |text| text.lines().any(refused));
    assert!(audit.lines().any(refused), "{audit}");
}

#[test]
fn runaway_builtins_and_loops_are_cut_off_and_the_process_stays_healthy() {
    for policy in ["huge_range.rego", "busy_loop.rego", "string_doubling.rego"] {
        let stack = start(PgAuth::Trust, &pre_request(policy));
        let out = psql(
            &stack,
            "app",
            "app",
            "appdb",
            &["select name from customers", "select current_user"],
        );
        let stderr = text(&out.stderr);
        // Both statements are refused: the session outlived the first.
        assert_eq!(
            stderr.matches("exceeded its budget").count(),
            2,
            "{policy}: {stderr}"
        );
        assert_eq!(http_get(stack.health_port, "/healthz").0, "200", "{policy}");
    }
}

#[test]
fn a_recursive_policy_is_refused_at_load_with_its_place() {
    let yaml = format!(
        "resources:\n  - {{name: db, protocol: postgres, host: 127.0.0.1, port: 5432, database: appdb, username: u, password: p}}\npolicies:\n  - {{path: \"{}\", stage: pre_request}}\n",
        hostile("recursive_function.rego").display()
    );
    let config: ConnectorConfig = load_str("test.yaml", &yaml, &|_| None).unwrap();
    let errors = gate_connector::startup::compile_policies(&config).unwrap_err();
    assert!(
        errors[0].contains("recursive_function.rego:4:21: recursion is not allowed"),
        "{errors:?}"
    );
}
