//! `gate-connector`: command-line entry point of the data plane.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Gate connector: a protocol-aware proxy that sits between clients and
/// PostgreSQL, MySQL, MongoDB, HTTP, SSH and MCP upstreams, evaluates Rego
/// policies per session and per statement, masks results and audits every
/// decision.
///
/// Serves PostgreSQL, MySQL/MariaDB, MongoDB, HTTP APIs, MCP servers and SSH
/// (per-protocol guides in docs/), on a shared listener with protocol
/// detection and on resources' own ports; session recordings into
/// `recording.dir`; metrics and health on `health_addr`.
///
/// `--sidecar`: the Kubernetes sidecar the operator injects (docs/kubernetes.md).
/// No configuration file: GATE_CONTROL_URL, GATE_CONTROL_TOKEN, POD_NAMESPACE,
/// POD_SERVICE_ACCOUNT and GATE_SIDECAR_RESOURCES (`name:port,…`) are required;
/// GATE_HEALTH_ADDR (0.0.0.0:9090), GATE_STATE_DIR (/var/lib/gate),
/// GATE_CREDENTIALS_DIR (/var/run/gate/credentials), GATE_TOKEN_ISSUER,
/// GATE_JWKS_URL, GATE_TOKEN_AUDIENCE, GATE_LOG_LEVEL and GATE_DEFAULT_ACTION
/// are optional. Each named resource, as the control plane defines it, is
/// served on 127.0.0.1:port; a client that presents no token is the workload
/// `system:serviceaccount:NS:NAME`.
///
/// Environment: GATE_WORKER_THREADS sets the number of runtime worker
/// threads (default: half the cores, at least one).
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
    /// Kubernetes sidecar mode: configured from the environment (above), `--config` is ignored.
    #[arg(long)]
    sidecar: bool,
}

/// Where the configuration comes from.
enum Source {
    File(Box<gate_connector::startup::Loaded>),
    Sidecar(Box<gate_connector::sidecar::SidecarEnv>),
}

fn report(problems: &[String]) -> ExitCode {
    for problem in problems {
        eprintln!("{problem}");
    }
    eprintln!(
        "gate-connector: {} configuration problem(s)",
        problems.len()
    );
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (source, base) = if args.sidecar {
        let env = match gate_connector::sidecar::SidecarEnv::from_process() {
            Ok(env) => env,
            Err(problems) => return report(&problems),
        };
        // Without resources: logging, telemetry and the control plane are known before the snapshot.
        let base = match env.config(Vec::new()) {
            Ok(base) => base,
            Err(problems) => return report(&problems),
        };
        if !env.accepts_tokens() {
            eprintln!(
                "gate-connector: GATE_JWKS_URL {} is plain http off loopback: clients cannot present identity tokens (set an https:// URL)",
                env.jwks_url
            );
        }
        if args.check {
            println!(
                "--sidecar environment: ok ({} resource(s) named)",
                env.resources.len()
            );
            return ExitCode::SUCCESS;
        }
        (Source::Sidecar(Box::new(env)), base)
    } else {
        let loaded = match gate_connector::startup::load(&args.config) {
            Ok(loaded) => loaded,
            Err(problems) => return report(&problems),
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
        let base = loaded.config.clone();
        (Source::File(Box::new(loaded)), base)
    };
    // Worker threads: GATE_WORKER_THREADS, else half the cores (at least one).
    // A proxy shares its machine with clients and servers; on 2 cores one
    // worker costs ~25% less CPU per query than two (docs/benchmarks.md).
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let workers = std::env::var("GATE_WORKER_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(cores / 2)
        .max(1);
    // One worker: a current-thread runtime (no work-stealing scheduler, no cross-thread wakeups).
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("gate-connector: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // OTLP trace export (`telemetry:`): built inside the runtime, whose tasks
    // carry its gRPC channel, and installed beside the log output.
    let telemetry = {
        let _runtime = runtime.enter();
        gate_connector::telemetry::layer(base.telemetry.as_ref())
    };
    let (extra, guard) = match telemetry {
        Ok(Some((layer, guard))) => (
            Some(Box::new(layer) as gate_connector::logging::Extra),
            Some(guard),
        ),
        Ok(None) => (None, None),
        Err(e) => {
            eprintln!("gate-connector: {e}");
            return ExitCode::from(1);
        }
    };
    // From here on every line goes through `tracing` (connector/src/logging.rs) to stderr.
    if let Err(e) =
        gate_connector::logging::init_with(&base.logging.level, &base.logging.format, extra)
    {
        eprintln!("gate-connector: {e}");
        return ExitCode::from(1);
    }
    runtime.block_on(async move {
        let code = match source {
            Source::File(loaded) => run(*loaded, None).await,
            Source::Sidecar(env) => match sidecar_loaded(&env, &base).await {
                Ok(loaded) => run(loaded, Some(env.workload())).await,
                Err(problems) => {
                    for problem in &problems {
                        tracing::error!(problem = %problem, "cannot serve the sidecar's resources");
                    }
                    ExitCode::from(1)
                }
            },
        };
        // Send the spans still queued; off the worker thread, which must keep
        // driving the gRPC channel meanwhile.
        if let Some(guard) = guard {
            let _ = tokio::task::spawn_blocking(move || guard.shutdown()).await;
        }
        code
    })
}

/// Sidecar mode: wait until the control plane defines every named resource, then load them.
async fn sidecar_loaded(
    env: &gate_connector::sidecar::SidecarEnv,
    base: &gate_config::ConnectorConfig,
) -> Result<gate_connector::startup::Loaded, Vec<String>> {
    use gate_connector::sidecar;
    let resources = sidecar::wait_for_resources(env, base).await;
    let config = env.config(sidecar::resolve(env, &resources)?)?;
    tracing::info!(
        namespace = %env.namespace,
        service_account = %env.service_account,
        resources = %env.resources.iter().map(|(n, p)| format!("{n}:{p}")).collect::<Vec<_>>().join(","),
        "sidecar mode: resources defined by the control plane"
    );
    gate_connector::startup::prepare(config, "--sidecar environment")
}

/// Bind every listener, serve until Ctrl-C or SIGTERM; `workload` is who a loopback client
/// without a token is (sidecar mode).
async fn run(
    loaded: gate_connector::startup::Loaded,
    workload: Option<gate_policy::UserInfo>,
) -> ExitCode {
    use std::sync::Arc;

    use gate_connector::audit::AuditSink;
    use gate_connector::server::{Gate, Serves, bind_all, serve_bound};

    // Watched before anything is bound: a SIGTERM once /readyz answers is a graceful stop.
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(e) => {
                tracing::error!(error = %e, "cannot watch SIGTERM");
                return ExitCode::from(1);
            }
        };
    let listeners = match bind_all(&loaded.config).await {
        Ok(listeners) => listeners,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen");
            return ExitCode::from(1);
        }
    };
    let health_addr = match gate_config::connector::parse_listen_addr(&loaded.config.health_addr) {
        Ok(addr) => addr,
        Err(e) => {
            tracing::error!(error = %e, "health_addr is not a listen address");
            return ExitCode::from(1);
        }
    };
    let health_listener = match tokio::net::TcpListener::bind(health_addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(addr = %health_addr, error = %e, "cannot listen on health_addr");
            return ExitCode::from(1);
        }
    };
    let control_plane = loaded.config.control_plane.clone();
    let spool_dir = loaded
        .config
        .delivery
        .as_ref()
        .and_then(|d| d.dead_letter_dir.clone())
        .unwrap_or_else(|| gate_connector::control::DEFAULT_SPOOL_DIR.to_owned());
    let mut sink = AuditSink::stdout();
    let mut queue = None;
    if let Some(cp) = &control_plane {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        sink = sink.with_shipper(tx, &gate_connector::control::connector_name(cp));
        queue = Some(rx);
    }
    let options = loaded.policies.options().clone();
    let recordings = match &loaded.config.recording {
        None => gate_connector::recording::Recordings::disabled(),
        Some(dir) => match gate_connector::recording::Recordings::new(&dir.dir) {
            Ok(recordings) => {
                let closed = recordings.recover();
                if closed > 0 {
                    tracing::warn!(closed, dir = %dir.dir, "closed recordings an earlier run left open");
                }
                if control_plane.is_none() {
                    tracing::info!(dir = %dir.dir, "recording; no control plane, recordings stay in recording.dir");
                }
                recordings
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot record sessions");
                return ExitCode::from(1);
            }
        },
    };
    let gate = Arc::new(
        Gate::new(loaded.config, loaded.policies, sink)
            .with_tls(loaded.tls)
            .with_jwt(loaded.jwt)
            .with_recordings(recordings)
            .with_workload(workload),
    );
    if let Err(e) = gate_connector::protocols::ssh::load_if_served(&gate) {
        tracing::error!(error = %e, "cannot serve ssh");
        return ExitCode::from(1);
    }
    // Keys of issuers given by URL: fetched before the first client, then kept fresh.
    if let Some(jwt) = gate.jwt.as_ref().filter(|j| j.fetches()) {
        for problem in jwt.refresh().await {
            tracing::warn!(
                problem = %problem,
                "JWKS not loaded: tokens of that issuer are refused until it answers"
            );
        }
        let gate = gate.clone();
        tokio::spawn(async move {
            if let Some(jwt) = &gate.jwt {
                jwt.refresh_forever(std::time::Duration::from_secs(300))
                    .await;
            }
        });
    }
    let mut link = None;
    if let (Some(cp), Some(queue)) = (&control_plane, queue) {
        // The last good snapshot is in force before the first client arrives.
        if let Some(version) =
            gate_connector::control::restore(&gate, &cp.state_dir, &loaded.local_specs, &options)
        {
            tracing::info!(version, state_dir = %cp.state_dir, "restored the saved snapshot");
        }
        match gate_connector::control::ControlLink::start(
            gate.clone(),
            cp,
            &spool_dir,
            loaded.local_specs.clone(),
            queue,
        ) {
            Ok(started) => link = Some(started),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the control-plane link");
                return ExitCode::from(1);
            }
        }
        tracing::info!(url = %cp.url, spool_dir = %spool_dir, "control plane configured");
    }
    tracing::info!(addr = %health_addr, "health and metrics listening (/healthz, /readyz, /metrics)");
    tokio::spawn(gate_connector::health::serve(
        health_listener,
        gate.health.clone(),
        gate.metrics.clone(),
    ));
    for (addr, listener, serves) in listeners {
        match serves {
            Serves::Detected => {
                // A resource's own port is named by its protocol; the shared listener detects.
                let protocol = gate
                    .config
                    .resources
                    .iter()
                    .find(|r| r.listen_port == Some(u32::from(addr.port())))
                    .map_or("postgres", |r| r.protocol.as_str());
                tracing::info!(addr = %addr, protocol, "listening");
            }
            Serves::Http(index) => tracing::info!(
                addr = %addr,
                protocol = "http",
                resource = gate.config.resources.get(index).map_or("", |r| r.name.as_str()),
                "listening"
            ),
            Serves::Ssh(index) => tracing::info!(
                addr = %addr,
                protocol = "ssh",
                resource = gate.config.resources.get(index).map_or("", |r| r.name.as_str()),
                "listening"
            ),
        }
        tokio::spawn(serve_bound(listener, serves, gate.clone()));
    }
    gate.health.set_ready();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
    if let Some(link) = link {
        link.shutdown().await;
    }
    ExitCode::SUCCESS
}
