//! Engine behaviour end to end: packages, decisions, combining across
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
//! policies, rollout, targeting, limits, fail-closed errors and concurrency.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use gate_policy::{
    Action, DefaultAction, EngineOptions, Limits, PolicyEngine, PolicyError, PolicyInput,
    PolicySpec, QueryInfo, Rollout, Stage, Strategy, UserInfo, Value,
};

fn spec(name: &str, source: &str) -> PolicySpec {
    PolicySpec::from_source(name, format!("{name}.rego"), source)
}

fn engine(specs: Vec<PolicySpec>) -> PolicyEngine {
    PolicyEngine::new(specs, EngineOptions::default()).expect("policies compile")
}

fn input(json: &str) -> Value {
    Value::from_json_str(json).unwrap()
}

const EXAMPLE: &str = include_str!("../../../policies/example.rego");

#[test]
fn the_spec_example_in_package_formal_v2_works_unchanged() {
    let e = engine(vec![spec("example", EXAMPLE)]);
    let v = e.evaluate(
        Stage::PreRequest,
        "primary-db",
        &input(r#"{"query": {"type": "drop"}}"#),
    );
    assert_eq!(v.action, Action::Block);
    assert_eq!(
        v.reason.as_deref(),
        Some("destructive queries are not allowed")
    );
    let v = e.evaluate(
        Stage::PreRequest,
        "primary-db",
        &input(r#"{"query": {"type": "select"}}"#),
    );
    assert_eq!(v.action, Action::Allow);
    assert!(!v.defaulted);
}

#[test]
fn any_package_name_works_and_undefined_means_no_opinion() {
    let e = engine(vec![
        spec(
            "a",
            "package acme.rules.v3\nimport rego.v1\npre_request := {\"action\": \"allow\"} if input.ok\n",
        ),
        spec(
            "b",
            "package other\nimport rego.v1\nsession := {\"action\": \"allow\"}\n",
        ),
    ]);
    let v = e.evaluate(Stage::PreRequest, "db", &input(r#"{"ok": true}"#));
    assert_eq!(
        (v.action, v.policies.clone()),
        (Action::Allow, vec!["a".to_owned()])
    );
    // `a` is undefined for this input and `b` has no pre_request rule: the default decides.
    let v = e.evaluate(Stage::PreRequest, "db", &input(r#"{"ok": false}"#));
    assert!(v.defaulted);
    assert_eq!(v.action, Action::Block);
    assert!(e.has_rules_for(Stage::Session, "db"));
    assert!(!e.has_rules_for(Stage::PostRequest, "db"));
}

#[test]
fn a_response_without_a_post_request_opinion_passes_unchanged() {
    let e = engine(vec![spec("example", EXAMPLE)]);
    let v = e.evaluate(
        Stage::PostRequest,
        "db",
        &input(r#"{"user": {"groups": ["admins"]}}"#),
    );
    assert_eq!(v.action, Action::Allow);
    assert!(v.defaulted && v.masks.is_empty());
}

#[test]
fn typed_input_reaches_the_policy() {
    let e = engine(vec![spec("example", EXAMPLE)]);
    let typed = PolicyInput {
        user: Some(UserInfo {
            name: Some("alice".into()),
            groups: vec!["engineering".into()],
            ..Default::default()
        }),
        query: Some(QueryInfo {
            raw: "TRUNCATE t".into(),
            kind: "truncate".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        e.evaluate_input(Stage::PreRequest, "db", &typed).action,
        Action::Block
    );
    let v = e.evaluate_input(Stage::PostRequest, "db", &typed);
    assert_eq!(v.action, Action::Mask);
    let got: Vec<(&str, Strategy)> = v
        .masks
        .iter()
        .map(|m| (m.column.as_str(), m.strategy))
        .collect();
    assert_eq!(
        got,
        vec![("email", Strategy::Partial), ("ssn", Strategy::Redact)]
    );
}

/// Each malformed decision is a policy error naming the policy and the field, and blocks.
#[test]
fn malformed_decisions_are_errors_that_block() {
    let cases = [
        (
            r#"{"action": "explode"}"#,
            "action: unknown action \"explode\"",
        ),
        (r#"{"reason": "x"}"#, "action: missing"),
        (r#"{"action": 7}"#, "action: expected a string, got 7"),
        (
            r#"{"action": "mask", "masks": [{"column": "email", "strategy": "scramble"}]}"#,
            "masks[0].strategy: unknown strategy \"scramble\"",
        ),
        (
            r#"{"action": "mask", "masks": [{"strategy": "redact"}]}"#,
            "masks[0].column: missing",
        ),
        (
            r#"{"action": "mask", "masks": []}"#,
            "masks: action mask needs at least one mask",
        ),
        (
            r#"{"action": "filter", "filters": [{"field": "org", "op": "eq"}]}"#,
            "filters[0].value: operator eq needs a value",
        ),
        (
            r#"{"action": "filter", "filters": [{"field": "org", "op": "in"}]}"#,
            "filters[0].values: operator in needs a list of values",
        ),
        (
            r#"{"action": "filter", "filters": [{"field": "org", "op": "like", "value": 1}]}"#,
            "filters[0].op: unknown operator \"like\"",
        ),
        (
            r#"{"action": "rewrite"}"#,
            "query: action rewrite needs a non-empty query",
        ),
        (
            r#"{"action": "allow", "query": "select 1"}"#,
            "query: query is only valid with action rewrite",
        ),
        (
            r#"{"action": "allow", "colour": "red"}"#,
            "colour: unknown field",
        ),
        (r#""allow""#, "decision: expected an object, got \"allow\""),
    ];
    for (decision, expected) in cases {
        let source = format!("package p\nimport rego.v1\npre_request := {decision}\n");
        let e = PolicyEngine::new(
            vec![spec("broken", &source)],
            EngineOptions {
                default_action: DefaultAction::Allow,
                ..Default::default()
            },
        )
        .unwrap();
        let v = e.evaluate(Stage::PreRequest, "db", &input("{}"));
        assert_eq!(v.action, Action::Block, "{decision} must block");
        let error = v
            .errors
            .first()
            .unwrap_or_else(|| panic!("{decision}: no error"));
        assert!(
            error.starts_with("policy broken: invalid pre_request decision: "),
            "{error}"
        );
        assert!(
            error.contains(expected),
            "{decision}: {error} should contain {expected}"
        );
    }
}

#[test]
fn sets_are_accepted_as_mask_lists() {
    let e = engine(vec![spec(
        "s",
        "package s\nimport rego.v1\npost_request := {\"action\": \"mask\", \"masks\": {m | some c in [\"a\", \"b\"]; m := {\"column\": c, \"strategy\": \"hash\"}}}\n",
    )]);
    let v = e.evaluate(Stage::PostRequest, "db", &input("{}"));
    assert_eq!(v.masks.len(), 2);
}

#[test]
fn several_policies_combine_block_wins_and_masks_union() {
    let mask_policy = |name: &str, col: &str, strategy: &str| {
        spec(
            name,
            &format!(
                "package {name}\nimport rego.v1\npost_request := {{\"action\": \"mask\", \"masks\": [{{\"column\": \"{col}\", \"strategy\": \"{strategy}\"}}]}}\n"
            ),
        )
    };
    let e = engine(vec![
        mask_policy("p1", "email", "partial"),
        mask_policy("p2", "email", "hash"),
        mask_policy("p3", "ssn", "redact"),
        spec(
            "blocker",
            "package blocker\nimport rego.v1\npre_request := {\"action\": \"block\", \"reason\": \"read-only window\"} if input.query.type == \"insert\"\n",
        ),
        spec(
            "allower",
            "package allower\nimport rego.v1\npre_request := {\"action\": \"allow\"}\n",
        ),
    ]);
    let v = e.evaluate(Stage::PostRequest, "db", &input("{}"));
    let got: Vec<(&str, Strategy)> = v
        .masks
        .iter()
        .map(|m| (m.column.as_str(), m.strategy))
        .collect();
    assert_eq!(
        got,
        vec![("email", Strategy::Hash), ("ssn", Strategy::Redact)]
    );
    let v = e.evaluate(
        Stage::PreRequest,
        "db",
        &input(r#"{"query": {"type": "insert"}}"#),
    );
    assert_eq!(
        (v.action, v.reason.as_deref()),
        (Action::Block, Some("read-only window"))
    );
    assert_eq!(v.policies, vec!["blocker"]);
}

#[test]
fn targets_by_exact_name_and_glob() {
    let mut prod = spec(
        "prod-only",
        "package prod\nimport rego.v1\nsession := {\"action\": \"allow\"}\n",
    );
    prod.targets = vec!["prod-*".into(), "billing".into(), "db-??".into()];
    let e = engine(vec![prod]);
    for (resource, applies) in [
        ("prod-orders", true),
        ("billing", true),
        ("db-01", true),
        ("db-001", false),
        ("billing-staging", false),
        ("staging-orders", false),
    ] {
        let v = e.evaluate(Stage::Session, resource, &input("{}"));
        assert_eq!(!v.defaulted, applies, "{resource}");
    }
}

#[test]
fn dry_run_is_audited_not_enforced_and_draft_is_ignored() {
    let mut trial = spec(
        "trial",
        "package trial\nimport rego.v1\npre_request := {\"action\": \"block\", \"reason\": \"would stop this\"}\n",
    );
    trial.rollout = Rollout::DryRun;
    let mut draft = spec(
        "draft",
        "package draft\nimport rego.v1\npre_request := {\"action\": \"block\", \"reason\": \"draft\"}\n",
    );
    draft.rollout = Rollout::Draft;
    let live = spec(
        "live",
        "package live\nimport rego.v1\npre_request := {\"action\": \"allow\"}\n",
    );
    let e = engine(vec![trial, draft, live]);
    let v = e.evaluate(Stage::PreRequest, "db", &input("{}"));
    assert_eq!(v.action, Action::Allow);
    assert_eq!(v.dry_run.len(), 1);
    assert_eq!(v.dry_run[0].policy, "trial");
    assert_eq!(v.dry_run[0].would, "would_block");
    assert_eq!(v.dry_run[0].reason.as_deref(), Some("would stop this"));
}

#[test]
fn stage_selection_limits_evaluation_and_rejects_missing_rules() {
    let mut only_session = spec("example", EXAMPLE);
    only_session.stages = Some(BTreeSet::from([Stage::Session]));
    let e = engine(vec![only_session]);
    assert!(
        e.evaluate(
            Stage::PreRequest,
            "db",
            &input(r#"{"query": {"type": "drop"}}"#)
        )
        .defaulted
    );

    let mut wrong = spec(
        "no-session",
        "package x\nimport rego.v1\npre_request := {\"action\": \"allow\"}\n",
    );
    wrong.stages = Some(BTreeSet::from([Stage::Session]));
    let errors = PolicyEngine::new(vec![wrong], EngineOptions::default()).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .to_string()
            .contains("is configured for stage session but defines no `session` rule"),
        "{}",
        errors[0]
    );
}

#[test]
fn compile_errors_carry_file_line_and_column_and_are_all_reported() {
    let errors = PolicyEngine::new(
        vec![
            spec("one", "package one\nimport rego.v1\n\npre_request := {\"action\": \n"),
            spec("two", "package two\nimport rego.v1\nsession := {\"action\": \"allow\"} if {\n  input.x ==\n}\n"),
            spec("three", "package three\nimport rego.v1\nhelper := 1\n"),
        ],
        EngineOptions::default(),
    )
    .unwrap_err();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 3, "{text:#?}");
    assert!(
        text[0].starts_with("policy one: one.rego:5:1: "),
        "{}",
        text[0]
    );
    assert!(
        text[1].starts_with("policy two: two.rego:5:1: expecting expression"),
        "{}",
        text[1]
    );
    assert!(
        text[2].contains("defines none of the rules session, pre_request, post_request"),
        "{}",
        text[2]
    );
    assert!(matches!(errors[0], PolicyError::Compile { .. }));
}

#[test]
fn a_pathological_policy_exceeds_its_budget_and_blocks() {
    // A million-iteration nested comprehension: cheap builtins, many instructions.
    let slow = "package slow\nimport rego.v1\npre_request := {\"action\": \"allow\", \"reason\": sprintf(\"%d\", [count([x | some x in numbers.range(1, 1000); some y in numbers.range(1, 1000)])])}\n";
    let e = engine(vec![spec("slow", slow)]);
    let v = e.evaluate(Stage::PreRequest, "db", &input("{}"));
    assert_eq!(v.action, Action::Block);
    assert!(
        v.errors[0]
            .contains("policy slow: evaluation of data.slow.pre_request exceeded its budget"),
        "{:?}",
        v.errors
    );

    // A time budget catches work the instruction budget allows.
    let options = EngineOptions {
        limits: Limits {
            max_instructions: usize::MAX,
            max_duration: Duration::from_millis(5),
            ..Limits::default()
        },
        ..Default::default()
    };
    let e = PolicyEngine::new(vec![spec("slow", slow)], options).unwrap();
    let v = e.evaluate(Stage::PreRequest, "db", &input("{}"));
    assert_eq!(v.action, Action::Block);
    assert!(
        v.errors[0].contains("exceeded its budget"),
        "{:?}",
        v.errors
    );
}

/// A builtin that fails at runtime (here `net.cidr_contains` on a malformed
/// CIDR) is an evaluation error: the policy blocks with the error as its
/// reason, whatever its default (OPA's strict-builtin-errors semantics).
#[test]
fn a_failing_builtin_blocks_even_with_a_default_allow() {
    let e = PolicyEngine::new(
        vec![spec(
            "cidr",
            "package cidr\nimport rego.v1\ndefault session := {\"action\": \"allow\"}\n\
             session := {\"action\": \"block\", \"reason\": \"listed\"} if net.cidr_contains(\"not-a-cidr\", input.ip)\n",
        )],
        EngineOptions { default_action: DefaultAction::Allow, ..Default::default() },
    )
    .unwrap();
    let v = e.evaluate(Stage::Session, "db", &input(r#"{"ip": "10.0.0.1"}"#));
    assert_eq!(v.action, Action::Block, "{v:?}");
    let reason = v.reason.as_deref().unwrap_or_default();
    assert!(
        reason.starts_with("policy error: policy cidr: evaluation of data.cidr.session failed:")
            && reason.contains("not-a-cidr")
            && !reason.contains('\n'),
        "{reason}"
    );
}

#[test]
fn case_insensitive_regexes_work() {
    let e = engine(vec![spec(
        "re",
        "package re\nimport rego.v1\npre_request := {\"action\": \"allow\"} if regex.match(`(?i)\\bwhere\\b`, input.raw)\n",
    )]);
    let v = e.evaluate(
        Stage::PreRequest,
        "db",
        &input(r#"{"raw": "UPDATE t SET a = 1 WHERE id = 2"}"#),
    );
    assert_eq!(v.action, Action::Allow);
}

#[test]
fn the_data_document_is_visible() {
    let options = EngineOptions {
        data: Some(serde_json::json!({"config": {"blocked": ["drop"]}})),
        ..Default::default()
    };
    let e = PolicyEngine::new(
        vec![spec("d", "package d\nimport rego.v1\ndefault pre_request := {\"action\": \"allow\"}\npre_request := {\"action\": \"block\"} if input.t in data.config.blocked\n")],
        options,
    )
    .unwrap();
    assert_eq!(
        e.evaluate(Stage::PreRequest, "db", &input(r#"{"t": "drop"}"#))
            .action,
        Action::Block
    );
    assert_eq!(
        e.evaluate(Stage::PreRequest, "db", &input(r#"{"t": "select"}"#))
            .action,
        Action::Allow
    );
}

#[test]
fn concurrent_evaluation_from_many_threads_gives_correct_answers() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PolicyEngine>();
    let e = Arc::new(engine(vec![spec("example", EXAMPLE)]));
    let drop = input(r#"{"query": {"type": "drop"}}"#);
    let select = input(r#"{"query": {"type": "select"}}"#);
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (e, drop, select) = (e.clone(), drop.clone(), select.clone());
            scope.spawn(move || {
                for i in 0..500 {
                    let is_drop = (i + t) % 2 == 0;
                    let v = e.evaluate(
                        Stage::PreRequest,
                        "db",
                        if is_drop { &drop } else { &select },
                    );
                    assert_eq!(
                        v.action,
                        if is_drop {
                            Action::Block
                        } else {
                            Action::Allow
                        }
                    );
                }
            });
        }
    });
}
