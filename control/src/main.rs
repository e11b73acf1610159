//! `gate-control`: command-line entry point of the control plane.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Gate control plane: holds resources, policies, identities, groups,
/// organizations, API keys, webhooks, access requests and recordings, serves
/// the admin UI, HTTP `/api/v1` and gRPC, and syncs connectors.
///
/// Status: the control plane is not built yet; this binary only documents its
/// interface.
#[derive(Debug, Parser)]
#[command(name = "gate-control", version)]
struct Args {
    /// Path to the control-plane configuration file (YAML, with ${ENV} expansion).
    #[arg(long, short = 'c', default_value = "config/control.yaml")]
    config: PathBuf,
    /// Allow starting without an `api_key` (local development only).
    #[arg(long, env = "GATE_INSECURE")]
    insecure: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    eprintln!(
        "gate-control: the control plane is not implemented yet (config {} not read, insecure={}); see README.md",
        args.config.display(),
        args.insecure
    );
    ExitCode::from(2)
}
