//! `gate-operator`: command-line entry point of the Kubernetes operator.

use std::process::ExitCode;

use clap::Parser;

/// Gate operator: reconciles `Resource`, `Policy`, `Group` and
/// `AccessRequest` custom resources (gate.dev/v1alpha1) into the Gate control
/// plane and injects connector sidecars.
///
/// Status: the operator is not built yet; this binary only documents its
/// interface.
#[derive(Debug, Parser)]
#[command(name = "gate-operator", version)]
struct Args {
    /// URL of the Gate control plane's gRPC endpoint.
    #[arg(
        long,
        env = "GATE_CONTROL_URL",
        default_value = "http://localhost:8080"
    )]
    control_plane: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    eprintln!(
        "gate-operator: the operator is not implemented yet (control plane {} not contacted); see README.md",
        args.control_plane
    );
    ExitCode::from(2)
}
