//! Hostile policy texts against a live control plane: saving or simulating
//! a recursive, over-nested or runaway policy answers with a precise error
//! or a block decision, and the process keeps serving.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Db, start_cp};
use serde_json::{Value, json};

fn hostile(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/policy/tests/hostile")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_policies_are_refused_or_fail_closed_and_the_process_survives() {
    let cp = start_cp(Db::Sqlite).await;

    // Recursion and deep nesting are refused on save and on simulate, with the place.
    for (file, wanted) in [
        (
            "recursive_function.rego",
            "recursion is not allowed: hostile.f -> hostile.f",
        ),
        (
            "mutual_rules.rego",
            "recursion is not allowed: hostile.a -> hostile.b -> hostile.a",
        ),
        (
            "nested_literals.rego",
            "brackets nested deeper than the limit of 12",
        ),
    ] {
        let rego = hostile(file);
        let (status, body) = cp
            .root(
                "POST",
                "/api/v1/policies",
                None,
                Some(&json!({"name": "hostile", "rego": rego}).to_string()),
            )
            .await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("rego")),
            "{file}: {body}"
        );
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains(wanted) && message.contains("hostile.rego:"),
            "{file}: {message}"
        );

        let simulate =
            json!({"rego": rego, "stage": "pre_request", "input": {"query": {"type": "select"}}});
        let (status, body) = cp
            .root(
                "POST",
                "/api/v1/policies/simulate",
                None,
                Some(&simulate.to_string()),
            )
            .await;
        assert_eq!(status, 400, "{file}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(wanted),
            "{file}: {body}"
        );
    }

    // Evaluation errors and runaway builtins block, with the error as reason.
    for (file, wanted) in [
        ("divide_by_zero.rego", "Cannot divide"),
        ("conflicting_rules.rego", "conflicting values"),
        ("huge_range.rego", "exceeded its budget"),
        ("sprintf_width.rego", "exceeded its budget"),
    ] {
        let simulate = json!({
            "rego": hostile(file),
            "stage": "pre_request",
            "input": {"query": {"type": "delete", "raw": "delete from t"}},
        });
        let (status, verdict): (u16, Value) = cp
            .root(
                "POST",
                "/api/v1/policies/simulate",
                None,
                Some(&simulate.to_string()),
            )
            .await;
        assert_eq!(status, 200, "{file}: {verdict}");
        assert_eq!(verdict["action"], "block", "{file}: {verdict}");
        assert!(
            verdict["reason"].as_str().unwrap().contains(wanted),
            "{file}: {verdict}"
        );
    }

    // Still serving.
    let (status, _) = cp.root("GET", "/api/v1/policies", None, None).await;
    assert_eq!(status, 200);
}
