//! `policy_data`: the connector's `data` document reaches its policies. The policy library's
//! `ip_allowlist.rego`, loaded as it ships, admits a psql session from 127.0.0.1 when the
//! configured ranges include it and refuses it (with the policy's reason) when they do not.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use common::*;
use gate_testkit::PgAuth;

fn allowlisted(cidrs: &str) -> Stack {
    let policy = repo().join("policies/ip_allowlist.rego");
    let yaml = format!(
        "default_action: allow\npolicy_data: {{config: {{ip_allowlist: {{cidrs: [{cidrs}]}}}}}}\npolicies:\n  - {{path: \"{}\", stage: session}}\n",
        policy.display()
    );
    start(PgAuth::Trust, &yaml)
}

#[test]
fn the_data_document_configures_a_library_policy() {
    let inside = allowlisted("\"10.0.0.0/8\", \"127.0.0.0/8\"");
    let out = psql(&inside, "app", "app", "primary-db", &["select 40 + 2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "42");

    let outside = allowlisted("\"10.0.0.0/8\"");
    let out = psql(&outside, "app", "app", "primary-db", &["select 1"]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let error = text(&out.stderr);
    assert!(
        error.contains("client address 127.0.0.1 is not in the allowlist"),
        "{error}"
    );
}
