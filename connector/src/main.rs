//! `gate-connector`: command-line entry point of the data plane.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Gate connector: a protocol-aware proxy that sits between clients and
/// PostgreSQL, MySQL, MongoDB, HTTP, SSH and MCP upstreams, evaluates Rego
/// policies per session and per statement, masks results and audits every
/// decision.
///
/// Status: the data plane is not built yet; this binary only documents its
/// interface.
#[derive(Debug, Parser)]
#[command(name = "gate-connector", version)]
struct Args {
    /// Path to the connector configuration file (YAML, with ${ENV} expansion).
    #[arg(long, short = 'c', default_value = "config/connector.yaml")]
    config: PathBuf,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    eprintln!(
        "gate-connector: the data plane is not implemented yet (config {} not read); see README.md",
        args.config.display()
    );
    ExitCode::from(2)
}
