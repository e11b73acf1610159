//! Policy tests as data: YAML case files (`note`, `stage`, `input`, `want`)
//! and Rego `test_*` rules, run by `gate-policy test` and by `make test`.
//!
//! ```yaml
//! policies: [../example.rego]          # relative to this file; or {path, rollout, targets, stages}
//! data: {allowed_cidrs: [10.0.0.0/8]}  # optional `data` document
//! default_action: block                # optional
//! cases:
//!   - note: drop is refused
//!     stage: pre_request
//!     resource: primary-db             # optional, default "test-resource"
//!     input: {query: {type: drop}}
//!     want: {action: block, reason: destructive queries are not allowed}
//!   - note: a broken decision is an error
//!     stage: session
//!     input: {}
//!     want_error: unknown action
//! ```
//! `want` is matched as a subset of the verdict's JSON: every key given must
//! be equal; arrays must have the same length, element by element.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use regorus::{Engine, Value};
use serde::Deserialize;

use crate::combine::{DefaultAction, Rollout};
use crate::engine::{EngineOptions, PolicyEngine, PolicySpec, render_engine_error};
use crate::input::Stage;

/// Passed and failed tests, with a message per failure.
#[derive(Debug, Default)]
pub struct TestReport {
    pub passed: usize,
    pub failures: Vec<String>,
}

impl TestReport {
    fn merge(&mut self, other: TestReport) {
        self.passed += other.passed;
        self.failures.extend(other.failures);
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    policies: Vec<PolicyRef>,
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(default)]
    default_action: Option<String>,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PolicyRef {
    Path(String),
    Detailed(DetailedPolicyRef),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DetailedPolicyRef {
    path: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    rollout: Option<String>,
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    stages: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    note: String,
    stage: String,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    input: serde_json::Value,
    #[serde(default)]
    want: Option<serde_json::Value>,
    #[serde(default)]
    want_error: Option<String>,
}

/// Find `.rego` files and YAML case files (those with a top-level `cases:`) under `paths`.
pub fn discover(paths: &[PathBuf]) -> std::io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut rego = Vec::new();
    let mut cases = Vec::new();
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
            continue;
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("rego") => rego.push(path),
            Some("yaml" | "yml") => {
                let text = std::fs::read_to_string(&path)?;
                if text.lines().any(|l| l.starts_with("cases:")) {
                    cases.push(path);
                }
            }
            _ => {}
        }
    }
    rego.sort();
    cases.sort();
    Ok((rego, cases))
}

/// Run everything under `paths`: Rego `test_*` rules, then YAML cases.
pub fn run_paths(paths: &[PathBuf]) -> std::io::Result<TestReport> {
    let (rego, cases) = discover(paths)?;
    let mut report = run_rego_tests(&rego);
    for file in cases {
        report.merge(run_case_file(&file));
    }
    Ok(report)
}

/// Load every file into one engine (like `opa test`) and evaluate each `test_*` rule; true passes.
pub fn run_rego_tests(files: &[PathBuf]) -> TestReport {
    let mut report = TestReport::default();
    let mut engine = Engine::new();
    engine.set_strict_builtin_errors(true);
    let mut tests = Vec::new();
    for file in files {
        let source = match std::fs::read_to_string(file) {
            Ok(s) => s,
            Err(e) => {
                report
                    .failures
                    .push(format!("{}: cannot read: {e}", file.display()));
                continue;
            }
        };
        match engine.add_policy(file.display().to_string(), source.clone()) {
            Ok(package) => {
                let names: BTreeSet<&str> = source
                    .lines()
                    .filter_map(|l| {
                        let name: &str = l
                            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                            .next()?;
                        name.starts_with("test_").then_some(name)
                    })
                    .collect();
                tests.extend(
                    names
                        .into_iter()
                        .map(|n| (file.clone(), format!("{package}.{n}"))),
                );
            }
            Err(e) => report.failures.push(render_engine_error(&e.to_string())),
        }
    }
    for (file, rule) in tests {
        let mut run = engine.clone();
        match run.eval_rule(rule.clone()) {
            Ok(Value::Bool(true)) => report.passed += 1,
            Ok(other) => report.failures.push(format!(
                "{}: {rule}: got {}",
                file.display(),
                crate::decision::describe(&other)
            )),
            Err(e) => report.failures.push(format!(
                "{}: {rule}: {}",
                file.display(),
                render_engine_error(&e.to_string())
            )),
        }
    }
    report
}

/// Run one YAML case file.
pub fn run_case_file(file: &Path) -> TestReport {
    let mut report = TestReport::default();
    let shown = file.display();
    let parsed: Result<CaseFile, String> = std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|t| yaml_serde::from_str(&t).map_err(|e| e.to_string()));
    let case_file = match parsed {
        Ok(c) => c,
        Err(e) => {
            report.failures.push(format!("{shown}: {e}"));
            return report;
        }
    };
    let engine = match build_engine(file, &case_file) {
        Ok(engine) => engine,
        Err(e) => {
            report.failures.push(format!("{shown}: {e}"));
            return report;
        }
    };
    for case in &case_file.cases {
        match run_case(&engine, case) {
            Ok(()) => report.passed += 1,
            Err(message) => report
                .failures
                .push(format!("{shown}: {}: {message}", case.note)),
        }
    }
    report
}

fn build_engine(file: &Path, case_file: &CaseFile) -> Result<PolicyEngine, String> {
    let base = file.parent().unwrap_or(Path::new("."));
    let mut specs = Vec::new();
    for policy in &case_file.policies {
        let detailed = match policy {
            PolicyRef::Path(path) => DetailedPolicyRef {
                path: path.clone(),
                ..Default::default()
            },
            PolicyRef::Detailed(d) => d.clone(),
        };
        let mut spec =
            PolicySpec::from_file(&base.join(&detailed.path)).map_err(|e| e.to_string())?;
        if let Some(name) = detailed.name {
            spec.name = name;
        }
        spec.rollout = match detailed.rollout.as_deref() {
            None | Some("active") => Rollout::Active,
            Some("dry_run") => Rollout::DryRun,
            Some("draft") => Rollout::Draft,
            Some(other) => {
                return Err(format!(
                    "policies: unknown rollout {other:?} (expected draft, dry_run or active)"
                ));
            }
        };
        spec.targets = detailed.targets;
        if let Some(stages) = detailed.stages {
            spec.stages = Some(
                stages
                    .iter()
                    .map(|s| s.parse::<Stage>())
                    .collect::<Result<_, _>>()?,
            );
        }
        specs.push(spec);
    }
    let default_action = match case_file.default_action.as_deref() {
        None | Some("block") => DefaultAction::Block,
        Some("allow") => DefaultAction::Allow,
        Some(other) => {
            return Err(format!(
                "default_action: expected allow or block, got {other:?}"
            ));
        }
    };
    let options = EngineOptions {
        default_action,
        data: case_file.data.clone(),
        ..Default::default()
    };
    PolicyEngine::new(specs, options).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })
}

fn run_case(engine: &PolicyEngine, case: &Case) -> Result<(), String> {
    let stage: Stage = case.stage.parse()?;
    let mut input = Value::from(case.input.clone());
    if let Ok(object) = input.as_object_mut() {
        object.insert(Value::from("stage"), Value::from(stage.as_str()));
    }
    let resource = case.resource.as_deref().unwrap_or("test-resource");
    let verdict = engine.evaluate(stage, resource, &input);
    let got = serde_json::to_value(&verdict).map_err(|e| e.to_string())?;
    if let Some(fragment) = &case.want_error {
        if !verdict.errors.iter().any(|e| e.contains(fragment.as_str())) {
            return Err(format!("want an error containing {fragment:?}, got {got}"));
        }
    } else if !verdict.errors.is_empty() {
        return Err(format!(
            "unexpected policy error: {}",
            verdict.errors.join("; ")
        ));
    }
    if let Some(want) = &case.want {
        if let Err(path) = subset(want, &got, "") {
            return Err(format!("mismatch at {path}: want {want}, got {got}"));
        }
    } else if case.want_error.is_none() {
        return Err("the case has neither want nor want_error".to_owned());
    }
    Ok(())
}

/// Whether `want` is contained in `got`; on mismatch, the path where they differ.
fn subset(want: &serde_json::Value, got: &serde_json::Value, path: &str) -> Result<(), String> {
    use serde_json::Value as J;
    match (want, got) {
        (J::Object(w), J::Object(g)) => {
            for (key, wv) in w {
                let sub = format!("{path}.{key}");
                match g.get(key) {
                    Some(gv) => subset(wv, gv, &sub)?,
                    None if wv.is_null() => {}
                    None => return Err(sub),
                }
            }
            Ok(())
        }
        (J::Array(w), J::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                subset(wv, gv, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (J::Number(a), J::Number(b)) if a.as_f64() == b.as_f64() => Ok(()),
        _ if want == got => Ok(()),
        _ => Err(if path.is_empty() {
            ".".to_owned()
        } else {
            path.to_owned()
        }),
    }
}
