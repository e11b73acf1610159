//! `gate-policy`: evaluate, test and check Gate policies from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gate_policy::{DefaultAction, EngineOptions, PolicyEngine, PolicySpec, Stage, Value};

/// Evaluate, test and check Gate's Rego policies.
#[derive(Debug, Parser)]
#[command(name = "gate-policy", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Evaluate a stage and print the combined decision as JSON.
    ///
    /// Exit 0 with a decision, 1 when a policy fails to load or produces an
    /// error (the decision is then a block), 2 on usage errors.
    Eval {
        /// session, pre_request or post_request.
        #[arg(long)]
        stage: Stage,
        /// The input document (JSON file, or - for stdin).
        #[arg(long)]
        input: PathBuf,
        /// A JSON file used as the `data` document.
        #[arg(long)]
        data: Option<PathBuf>,
        /// The resource name the request targets.
        #[arg(long, default_value = "test-resource")]
        resource: String,
        /// What to do when no policy has an opinion.
        #[arg(long, value_parser = parse_default_action, default_value = "block")]
        default_action: DefaultAction,
        /// Policy files; each is one policy named after its file stem.
        #[arg(required = true)]
        policies: Vec<PathBuf>,
    },
    /// Run Rego `test_*` rules and YAML case files; prints "N passed, N failed".
    Test {
        /// Files or directories (searched recursively); default: the current directory.
        paths: Vec<PathBuf>,
    },
    /// Compile policies and report every error with file:line:col.
    Check {
        #[arg(required = true)]
        policies: Vec<PathBuf>,
    },
}

fn parse_default_action(s: &str) -> Result<DefaultAction, String> {
    match s {
        "allow" => Ok(DefaultAction::Allow),
        "block" => Ok(DefaultAction::Block),
        other => Err(format!("expected allow or block, got {other:?}")),
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Eval {
            stage,
            input,
            data,
            resource,
            default_action,
            policies,
        } => eval(
            stage,
            &input,
            data.as_deref(),
            &resource,
            default_action,
            &policies,
        ),
        Command::Test { paths } => test(paths),
        Command::Check { policies } => check(&policies),
    }
}

fn read_json(path: &std::path::Path, what: &str) -> Result<serde_json::Value, String> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| format!("{what}: cannot read stdin: {e}"))?
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| format!("{what}: cannot read {}: {e}", path.display()))?
    };
    serde_json::from_str(&text)
        .map_err(|e| format!("{what}: {} is not valid JSON: {e}", path.display()))
}

fn load(policies: &[PathBuf]) -> Result<Vec<PolicySpec>, Vec<String>> {
    let mut specs = Vec::new();
    let mut errors = Vec::new();
    for path in policies {
        match PolicySpec::from_file(path) {
            Ok(spec) => specs.push(spec),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(specs)
    } else {
        Err(errors)
    }
}

fn eval(
    stage: Stage,
    input: &std::path::Path,
    data: Option<&std::path::Path>,
    resource: &str,
    default_action: DefaultAction,
    policies: &[PathBuf],
) -> ExitCode {
    let input = match read_json(input, "--input") {
        Ok(v) => v,
        Err(e) => {
            eprintln!("gate-policy: {e}");
            return ExitCode::from(2);
        }
    };
    if !input.is_object() {
        eprintln!("gate-policy: --input: expected a JSON object, got {input}");
        return ExitCode::from(2);
    }
    let data = match data.map(|d| read_json(d, "--data")).transpose() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("gate-policy: {e}");
            return ExitCode::from(2);
        }
    };
    let specs = match load(policies) {
        Ok(s) => s,
        Err(errors) => {
            errors.iter().for_each(|e| eprintln!("{e}"));
            return ExitCode::from(1);
        }
    };
    let options = EngineOptions {
        default_action,
        data,
        ..Default::default()
    };
    let engine = match PolicyEngine::new(specs, options) {
        Ok(engine) => engine,
        Err(errors) => {
            errors.iter().for_each(|e| eprintln!("{e}"));
            return ExitCode::from(1);
        }
    };
    let mut input = Value::from(input);
    if let Ok(object) = input.as_object_mut() {
        object.insert(Value::from("stage"), Value::from(stage.as_str()));
    }
    let verdict = engine.evaluate(stage, resource, &input);
    match serde_json::to_string_pretty(&verdict) {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("gate-policy: cannot print the decision: {e}");
            return ExitCode::from(1);
        }
    }
    if verdict.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        verdict.errors.iter().for_each(|e| eprintln!("{e}"));
        ExitCode::from(1)
    }
}

fn test(mut paths: Vec<PathBuf>) -> ExitCode {
    if paths.is_empty() {
        paths.push(PathBuf::from("."));
    }
    let report = match gate_policy::cases::run_paths(&paths) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gate-policy: {e}");
            return ExitCode::from(2);
        }
    };
    for failure in &report.failures {
        println!("FAIL {failure}");
    }
    println!("{} passed, {} failed", report.passed, report.failures.len());
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn check(policies: &[PathBuf]) -> ExitCode {
    let specs = match load(policies) {
        Ok(s) => s,
        Err(errors) => {
            errors.iter().for_each(|e| eprintln!("{e}"));
            return ExitCode::from(1);
        }
    };
    let mut failed = 0;
    for spec in specs {
        let name = spec.name.clone();
        match PolicyEngine::new(vec![spec], EngineOptions::default()) {
            Ok(_) => println!("ok {name}"),
            Err(errors) => {
                failed += 1;
                errors.iter().for_each(|e| eprintln!("{e}"));
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
