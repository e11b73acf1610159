//! The control plane's `/mcp` endpoint with the official Python MCP client, in both protocol
//! generations (2026-07-28 negotiated by `server/discover`, and the `initialize` handshake):
//! every tool's answer checked against data made through `/api/v1`, a readonly key calls them
//! all and nothing changes, a wrong key is refused, organizations stay apart, and bad arguments
//! get errors that name the field.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use common::mcp::{bearer, root, sdk, seed};
use common::{Db, start_cp};
use serde_json::{Value, json};

const TOOLS: [&str; 7] = [
    "get_policy",
    "list_access_requests",
    "list_connectors",
    "list_policies",
    "list_resources",
    "query_audit",
    "simulate_policy",
];

fn names(list: &Value, key: &str, field: &str) -> Vec<String> {
    let mut names: Vec<String> = list[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {list}"))
        .iter()
        .map(|item| item[field].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// What the organization holds, as the API shows it (compared before and after the tools ran).
async fn state(cp: &common::Cp, org: &str) -> Vec<Value> {
    let mut all = Vec::new();
    for path in [
        "/api/v1/resources",
        "/api/v1/policies",
        "/api/v1/access-requests",
        "/api/v1/audit?limit=1000",
    ] {
        all.push(cp.root("GET", path, Some(org), None).await.1);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readonly_key_reads_everything_through_the_sdk_in_both_generations() {
    let cp = start_cp(Db::Sqlite).await;
    let s = seed(&cp).await;
    let before = state(&cp, &s.acme).await;
    let (_, openapi) = cp.root("GET", "/api/v1/openapi.json", None, None).await;
    let get_policy = format!(r#"call:get_policy:{{"id":"{}"}}"#, s.policy_id);
    let simulate_saved = format!(
        r#"call:simulate_policy:{{"policy_id":"{}","stage":"session","input":{{"connection":{{"client_ip":"192.0.2.7"}}}}}}"#,
        s.policy_id
    );
    let steps = [
        "version",
        "tools",
        "call:list_resources:{}",
        "call:list_policies:{}",
        &get_policy,
        "call:list_connectors:{}",
        "call:list_access_requests:{}",
        r#"call:list_access_requests:{"status":"approved"}"#,
        r#"call:query_audit:{"identity":"alice"}"#,
        r#"call:query_audit:{"limit":2}"#,
        &simulate_saved,
        r#"call:simulate_policy:{"rego":"package t\nimport rego.v1\npre_request := {\"action\": \"block\", \"reason\": \"no\"} if input.query.type == \"drop\"","stage":"pre_request","input":{"query":{"type":"drop"}}}"#,
    ];
    let runs = sdk(
        &cp,
        &[
            (bearer(&s.readonly, None), "auto", &steps),
            (bearer(&s.readonly, None), "legacy", &steps),
        ],
    )
    .await;
    for ((mode, version), out) in [("auto", "2026-07-28"), ("legacy", "2025-11-25")]
        .into_iter()
        .zip(runs)
    {
        assert_eq!(out[0], version, "{mode}: negotiated revision");
        // The tool list, with schemas made from the API's own definitions.
        let tools = out[1].as_array().unwrap();
        let mut listed: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
        listed.sort_unstable();
        assert_eq!(listed, TOOLS, "{mode}");
        let audit = tools.iter().find(|t| t["name"] == "query_audit").unwrap();
        assert_eq!(audit["annotations"]["readOnlyHint"], true);
        for param in openapi["paths"]["/api/v1/audit"]["get"]["parameters"]
            .as_array()
            .unwrap()
        {
            let name = param["name"].as_str().unwrap();
            assert_eq!(
                audit["inputSchema"]["properties"][name], param["schema"],
                "query_audit.{name} is the API's parameter"
            );
        }
        let simulate = tools
            .iter()
            .find(|t| t["name"] == "simulate_policy")
            .unwrap();
        let body = &openapi["components"]["schemas"]["SimulateBody"];
        assert_eq!(
            simulate["inputSchema"]["properties"]["stage"]["enum"],
            body["properties"]["stage"]["enum"]
        );
        assert_eq!(simulate["inputSchema"]["required"], json!(["stage"]));
        // Each answer is the API's answer.
        let structured = |i: usize| {
            let answer = &out[i];
            assert_eq!(answer["isError"], false, "{mode} step {i}: {answer}");
            let text: Value = serde_json::from_str(answer["text"][0].as_str().unwrap()).unwrap();
            assert_eq!(
                text, answer["structured"],
                "the text content is the same JSON"
            );
            answer["structured"].clone()
        };
        assert_eq!(
            names(&structured(2), "resources", "name"),
            ["agent-tools", "orders-db"]
        );
        let (_, api_policies) = cp
            .root("GET", "/api/v1/policies", Some(&s.acme), None)
            .await;
        assert_eq!(structured(3), api_policies);
        let policy = structured(4);
        assert_eq!(policy["rego"], common::mcp::ALLOWLIST);
        assert_eq!(policy["state"], "active");
        assert_eq!(names(&structured(5), "connectors", "name"), ["edge-1"]);
        assert_eq!(
            names(&structured(6), "access_requests", "subject"),
            ["alice", "bob"]
        );
        assert_eq!(names(&structured(7), "access_requests", "subject"), ["bob"]);
        let alice = structured(8);
        assert_eq!(alice["events"].as_array().unwrap().len(), 2);
        assert!(
            alice["events"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["identity"] == "alice")
        );
        let (_, api_page) = cp
            .root("GET", "/api/v1/audit?limit=2", Some(&s.acme), None)
            .await;
        let page = structured(9);
        assert_eq!(page, api_page, "same page and cursor as the API");
        assert!(!page["next_cursor"].as_str().unwrap().is_empty());
        let saved = structured(10);
        assert_eq!(saved["action"], "block");
        assert_eq!(saved["reason"], "client address is outside the allowlist");
        let text = structured(11);
        assert_eq!(
            (text["action"].as_str(), text["reason"].as_str()),
            (Some("block"), Some("no"))
        );
    }
    assert_eq!(
        state(&cp, &s.acme).await,
        before,
        "the tools changed nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_organizations_are_those_of_the_api() {
    let cp = start_cp(Db::Sqlite).await;
    let s = seed(&cp).await;
    let connector = cp.key(&s.acme, "connector").await;
    let resources: &[&str] = &["call:list_resources:{}"];
    let other_steps = [
        "call:list_resources:{}",
        "call:list_policies:{}",
        &format!(r#"call:get_policy:{{"id":"{}"}}"#, s.policy_id),
    ];
    let runs = sdk(
        &cp,
        &[
            // A wrong key or none: refused before anything else, in either generation.
            (bearer("not-a-key", None), "auto", resources),
            (bearer("not-a-key", None), "legacy", resources),
            (json!({}), "legacy", resources),
            // Another organization's key sees its own rows only.
            (bearer(&s.other_readonly, None), "auto", &other_steps),
            // An organization key cannot choose another organization.
            (bearer(&s.readonly, Some(&s.other)), "legacy", resources),
            // The root key acts where X-Org-ID says; an unknown organization is named.
            (root(Some(&s.other)), "auto", resources),
            (root(Some("nowhere")), "auto", resources),
            // A connector key authenticates but may not read.
            (bearer(&connector, None), "auto", resources),
        ],
    )
    .await;
    for (i, run) in runs[..2].iter().enumerate() {
        assert!(
            run[0].to_string().contains("invalid api key"),
            "{i}: {}",
            run[0]
        );
    }
    assert!(
        runs[2][0].to_string().contains("missing bearer token"),
        "{}",
        runs[2][0]
    );
    let other = &runs[3];
    assert_eq!(
        names(&other[0]["structured"], "resources", "name"),
        ["other-db"]
    );
    assert_eq!(other[1]["structured"]["policies"], json!([]));
    assert_eq!(other[2]["error"], "policy not found", "{}", other[2]);
    let refusal = runs[4][0].to_string();
    assert!(
        refusal.contains("organization keys are bound to their organization"),
        "{refusal}"
    );
    assert_eq!(
        names(&runs[5][0]["structured"], "resources", "name"),
        ["other-db"]
    );
    assert!(
        runs[6][0]
            .to_string()
            .contains(r#"organization \"nowhere\" not found"#),
        "{}",
        runs[6][0]
    );
    let denied = &runs[7][0];
    assert_eq!(denied["code"], -32003, "{denied}");
    assert!(
        denied["error"].as_str().unwrap().contains("needs read"),
        "{denied}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_say_which_field_and_what_was_expected() {
    let cp = start_cp(Db::Sqlite).await;
    let s = seed(&cp).await;
    let cases: &[(&str, &str)] = &[
        (
            r#"call:query_audit:{"limit":5000}"#,
            "limit: must be at most 1000",
        ),
        (
            r#"call:query_audit:{"limit":"ten"}"#,
            r#"limit: expected an integer from 0 to 1000, got "ten""#,
        ),
        (
            r#"call:query_audit:{"from":"yesterday"}"#,
            "from: expected an RFC 3339 time",
        ),
        (r#"call:query_audit:{"cursor":"zzz"}"#, "cursor: "),
        (
            r#"call:query_audit:{"who":"alice"}"#,
            "who: unknown argument; expected from, to, identity",
        ),
        (
            r#"call:list_access_requests:{"status":"sleeping"}"#,
            "status: expected one of pending, approved",
        ),
        (r#"call:get_policy:{}"#, "id: required"),
        (
            r#"call:list_resources:{"x":1}"#,
            "x: unknown argument; this tool takes no arguments",
        ),
        (
            r#"call:simulate_policy:{"stage":"session"}"#,
            "policy_id: give exactly one of policy_id and rego",
        ),
        (
            r#"call:simulate_policy:{"rego":"package x","stage":"later"}"#,
            "stage: expected one of session, pre_request, post_request",
        ),
        (
            r#"call:simulate_policy:{"rego":"package x","stage":"session","input":[1]}"#,
            "input: expected a JSON object",
        ),
        (
            r#"call:simulate_policy:{"rego":"package x","stage":"session","extra":1}"#,
            "extra: unknown field `extra`, expected one of `policy_id`, `rego`, `stage`, `input`",
        ),
        (
            r#"call:delete_everything:{}"#,
            r#"params.name: no tool "delete_everything""#,
        ),
    ];
    let steps: Vec<&str> = cases.iter().map(|(step, _)| *step).collect();
    let runs = sdk(
        &cp,
        &[
            (bearer(&s.readonly, None), "auto", &steps),
            (bearer(&s.readonly, None), "legacy", &steps),
        ],
    )
    .await;
    for (mode, out) in ["auto", "legacy"].into_iter().zip(runs) {
        for ((step, expected), answer) in cases.iter().zip(&out) {
            let message = answer["error"]
                .as_str()
                .unwrap_or_else(|| panic!("{mode} {step}: {answer}"));
            assert!(message.starts_with(expected), "{mode} {step}: {message}");
            assert_eq!(answer["code"], -32602, "{mode} {step}: {answer}");
        }
    }
}
