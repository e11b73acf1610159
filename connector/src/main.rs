//! `gate-connector`: command-line entry point of the data plane.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Gate connector: a protocol-aware proxy that sits between clients and
/// PostgreSQL, MySQL, MongoDB, HTTP, SSH and MCP upstreams, evaluates Rego
/// policies per session and per statement, masks results and audits every
/// decision.
///
/// Status: PostgreSQL with SCRAM login for static identities, session and
/// pre_request policies; masking, TLS, pooling and metrics are not built yet.
#[derive(Debug, Parser)]
#[command(name = "gate-connector", version)]
struct Args {
    /// Path to the connector configuration file (YAML, with ${ENV} expansion).
    #[arg(long, short = 'c', default_value = "config/connector.yaml")]
    config: PathBuf,
    /// Validate the configuration, compile its policies, report every problem and exit
    /// (0: valid, 1: problems found).
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let loaded = match gate_connector::startup::load(&args.config) {
        Ok(loaded) => loaded,
        Err(problems) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            eprintln!(
                "gate-connector: {} configuration problem(s)",
                problems.len()
            );
            return ExitCode::from(1);
        }
    };
    if args.check {
        println!(
            "{}: ok ({} resource(s), {} policy file(s))",
            args.config.display(),
            loaded.config.resources.len(),
            loaded.policies.policy_names().count()
        );
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "gate-connector: the data plane is not implemented yet; only --check works (see README.md)"
    );
    ExitCode::from(2)
}
