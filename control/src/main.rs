//! `gate-control`: command-line entry point of the control plane.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gate_config::ControlConfig;

/// Gate control plane: holds organizations, API keys, resources, policies,
/// identities, groups, connectors and audit events; serves the admin UI, HTTP
/// `/api/v1`, a read-only MCP endpoint at `/mcp` and gRPC
/// (`gate.v1.ControlPlaneService`, `gate.v1.ConnectorService`) on one listener.
///
/// With no `database.dsn` it uses embedded SQLite at `.data/gate.db`.
#[derive(Debug, Parser)]
#[command(name = "gate-control", version)]
struct Args {
    /// Path to the control-plane configuration file (YAML, with ${ENV} expansion).
    #[arg(long, short = 'c', default_value = "config/control.yaml")]
    config: PathBuf,
    /// Allow starting without an `api_key`: every request is served unauthenticated and logged at
    /// warn. Local development only.
    #[arg(long, env = "GATE_INSECURE")]
    insecure: bool,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config: ControlConfig = match gate_config::load_file(&args.config) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!("{}: ok", args.config.display());
        return ExitCode::SUCCESS;
    }
    // From here on every line goes through `tracing` (control/src/logging.rs) to stderr.
    if let Err(e) = gate_control::logging::init(&config.logging.level, &config.logging.format) {
        eprintln!("gate-control: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config, args.insecure))
}

async fn run(config: ControlConfig, insecure: bool) -> ExitCode {
    // Watched before the listener answers: a SIGTERM once /health answers is a graceful stop.
    let stop = signals();
    let running = match gate_control::server::start(&config, insecure).await {
        Ok(running) => running,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    let store = if config
        .database
        .dsn
        .as_deref()
        .is_some_and(|d| !d.is_empty())
    {
        "postgres".to_owned()
    } else {
        format!("sqlite {}", config.database.sqlite_path)
    };
    tracing::info!(
        addr = %running.addr,
        store = %store,
        insecure = running.control.insecure(),
        "gate-control listening (HTTP /api/v1, /mcp, gRPC, admin UI)"
    );
    if running.control.insecure() {
        tracing::warn!("no api_key: running insecure, every request is unauthenticated");
    }
    stop.await;
    tracing::info!("gate-control shutting down");
    match running.stop().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "shutdown failed");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C or SIGTERM, watched from the moment this is called (not only once awaited).
fn signals() -> impl std::future::Future<Output = ()> {
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot watch SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
