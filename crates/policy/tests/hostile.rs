//! Hostile policies (tests/hostile/*.rego): each is refused at compile time
//! with a precise error, or blocks at evaluation with the error as its reason,
//! whatever its default. The first line of each file says which:
//! `# expect: compile|block|limit <text the error contains>`.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::path::{Path, PathBuf};

use gate_policy::{
    Action, DefaultAction, EngineOptions, MAX_RULE_CHAIN, PolicyEngine, PolicySpec, Rollout, Stage,
    Value,
};

fn hostile_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile")
}

fn hostile_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(hostile_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rego"))
        .collect();
    files.sort();
    files
}

fn expectation(source: &str) -> (&str, &str) {
    let line = source.lines().next().unwrap();
    let rest = line.strip_prefix("# expect: ").unwrap();
    rest.split_once(' ').unwrap()
}

fn delete_input() -> Value {
    Value::from_json_str(r#"{"query": {"type": "delete", "raw": "delete from orders"}}"#).unwrap()
}

fn allow_by_default() -> EngineOptions {
    let mut options = EngineOptions {
        default_action: DefaultAction::Allow,
        ..Default::default()
    };
    // The wall-clock budget is not what these files test: on a loaded machine it
    // could trip before the limit a file expects (instructions, builtin output).
    options.limits.max_duration = std::time::Duration::from_secs(10);
    options
}

#[test]
fn every_hostile_policy_is_refused_or_blocks_with_its_error() {
    let files = hostile_files();
    assert!(files.len() >= 15, "{files:?}");
    for path in files {
        let source = std::fs::read_to_string(&path).unwrap();
        let (kind, wanted) = expectation(&source);
        let spec = PolicySpec::from_file(&path).unwrap();
        let compiled = PolicyEngine::new(vec![spec], allow_by_default());
        match kind {
            "compile" => {
                let errors = compiled
                    .err()
                    .unwrap_or_else(|| panic!("{path:?} compiled"));
                let text = errors[0].to_string();
                assert!(text.contains(wanted), "{path:?}: {text}");
                // The error names the file and the place, as OPA's do.
                let file = path.file_name().unwrap().to_string_lossy();
                assert!(text.contains(&format!("{file}:")), "{path:?}: {text}");
            }
            "block" | "limit" => {
                let engine = compiled.unwrap_or_else(|e| panic!("{path:?}: {e:?}"));
                let verdict = engine.evaluate(Stage::PreRequest, "db", &delete_input());
                assert_eq!(verdict.action, Action::Block, "{path:?}: {verdict:?}");
                let reason = verdict.reason.clone().unwrap_or_default();
                let class = if kind == "limit" {
                    "exceeded its budget"
                } else {
                    "failed:"
                };
                assert!(
                    reason.starts_with("policy error: ")
                        && reason.contains(class)
                        && reason.contains(wanted),
                    "{path:?}: {reason}"
                );
                assert_eq!(verdict.errors.len(), 1, "{path:?}: {verdict:?}");
                // A second evaluation (on a fresh VM: the failed one is
                // dropped) decides the same.
                let again = engine.evaluate(Stage::PreRequest, "db", &delete_input());
                assert_eq!(again.action, Action::Block, "{path:?}");
                assert!(
                    again.reason.unwrap_or_default().contains(wanted),
                    "{path:?}"
                );
            }
            other => panic!("{path:?}: unknown expectation {other}"),
        }
    }
}

#[test]
fn a_dry_run_policy_with_an_error_is_reported_not_enforced() {
    let path = hostile_dir().join("divide_by_zero.rego");
    let mut spec = PolicySpec::from_file(&path).unwrap();
    spec.rollout = Rollout::DryRun;
    let engine = PolicyEngine::new(vec![spec], allow_by_default()).unwrap();
    let verdict = engine.evaluate(Stage::PreRequest, "db", &delete_input());
    assert_eq!(verdict.action, Action::Allow, "{verdict:?}");
    assert!(
        verdict.errors.iter().any(|e| e.contains("Cannot divide")),
        "{verdict:?}"
    );
}

/// The longest chain compile allows evaluates on a thread with the stack
/// of a tokio worker (2 MiB), so no accepted policy can overflow it.
#[test]
fn the_longest_allowed_rule_chain_evaluates_on_a_small_stack() {
    let mut source = String::from("package chain\nimport rego.v1\n");
    // pre_request -> r0 -> … -> r{n-1}: MAX_RULE_CHAIN rules in all.
    let n = MAX_RULE_CHAIN - 1;
    for i in 0..n - 1 {
        source.push_str(&format!("r{i} := r{} + 1\n", i + 1));
    }
    source.push_str(&format!("r{} := 1\n", n - 1));
    source.push_str(
        "pre_request := {\"action\": \"block\", \"reason\": sprintf(\"%d\", [r0])} if r0 > 0\n",
    );
    let engine = PolicyEngine::new(
        vec![PolicySpec::from_source(
            "chain",
            "chain.rego",
            source.clone(),
        )],
        allow_by_default(),
    )
    .unwrap();
    let verdict = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || engine.evaluate(Stage::PreRequest, "db", &delete_input()))
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(
        verdict.reason.as_deref(),
        Some(n.to_string().as_str()),
        "{verdict:?}"
    );

    // One more link is refused at compile time.
    let longer = source.replace("r0 := r1 + 1", "r0 := rx + 1\nrx := r1 + 1");
    let errors = PolicyEngine::new(
        vec![PolicySpec::from_source("chain", "chain.rego", longer)],
        allow_by_default(),
    )
    .unwrap_err();
    assert!(
        errors[0].to_string().contains("over the limit of 32"),
        "{errors:?}"
    );
}

#[test]
fn names_declared_locally_are_not_recursion() {
    let source = r#"package local
import rego.v1
default pre_request := {"action": "allow"}
deny contains reason if { some deny_reason in ["a"]; reason := deny_reason }
pre_request := {"action": "block", "reason": r} if { some r in deny; r == "b" }
f(pre_request) := pre_request
g(x) := y if { y := x; every g in [1] { g > 0 } }
"#;
    let engine = PolicyEngine::new(
        vec![PolicySpec::from_source("local", "local.rego", source)],
        allow_by_default(),
    );
    assert!(engine.is_ok(), "{:?}", engine.err());
}

#[test]
fn the_policy_library_compiles_under_the_limits() {
    let library = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let mut specs = Vec::new();
    for entry in std::fs::read_dir(library).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rego") {
            specs.push(PolicySpec::from_file(&path).unwrap());
        }
    }
    assert!(specs.len() >= 5);
    let engine = PolicyEngine::new(specs, EngineOptions::default());
    assert!(engine.is_ok(), "{:?}", engine.err());
}
