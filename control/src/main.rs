//! `gate-control`: command-line entry point of the control plane.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use gate_config::ControlConfig;

/// Gate control plane: holds organizations, API keys, resources, policies,
/// identities, groups, connectors and audit events; serves the admin UI, HTTP
/// `/api/v1` and gRPC (`gate.v1.ControlPlaneService`, `gate.v1.ConnectorService`)
/// on one listener.
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
    gate_control::log::configure(&config.logging.level, &config.logging.format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("gate-control: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config, args.insecure))
}

async fn run(config: ControlConfig, insecure: bool) -> ExitCode {
    let running = match gate_control::server::start(&config, insecure).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("gate-control: {e}");
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
    let addr = running.addr.to_string();
    gate_control::log::info(
        "gate-control listening (HTTP /api/v1, gRPC, admin UI)",
        &[
            ("addr", &addr),
            ("store", &store),
            (
                "insecure",
                if running.control.insecure() {
                    "true"
                } else {
                    "false"
                },
            ),
        ],
    );
    if running.control.insecure() {
        gate_control::log::warn(
            "no api_key: running insecure, every request is unauthenticated",
            &[],
        );
    }
    wait_for_signal().await;
    gate_control::log::info("gate-control shutting down", &[]);
    match running.stop().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gate-control: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            eprintln!("gate-control: cannot watch SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
