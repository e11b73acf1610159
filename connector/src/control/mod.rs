//! The connector's link to the control plane: registration with backoff and heartbeats, policy
//! sync (a server-streamed watch, polling as the fallback, the last good snapshot on disk) and
//! audit shipping with a spool, and recording shipping (`crate::recording::ship`). The connector
//! serves with its last snapshot whatever happens here.

pub mod ship;
pub mod snapshot;
pub mod spool;

use std::sync::Arc;
use std::time::Duration;

use gate_config::connector::ControlPlaneConfig;
use gate_policy::{EngineOptions, PolicyEngine, PolicySpec};
use gate_proto::client::{ConnectorClient, Credentials};
use gate_proto::v1::connector_service_client::ConnectorServiceClient;
use gate_proto::v1::{
    DeregisterConnectorRequest, FetchSnapshotRequest, HeartbeatRequest, RegisterConnectorRequest,
    ReportToolsRequest, Snapshot, WatchSnapshotRequest,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tonic::transport::Endpoint;

use crate::server::Gate;
use ship::Shipper;
use spool::Spool;

/// Where the spool lives when `delivery.dead_letter_dir` is not set.
pub const DEFAULT_SPOOL_DIR: &str = ".data/connector-deadletters";

/// A running link; [`ControlLink::shutdown`] deregisters and drains the audit queue.
pub struct ControlLink {
    client: ConnectorClient,
    connector_id: watch::Receiver<Option<String>>,
    stop: watch::Sender<bool>,
    shipper: JoinHandle<()>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ControlLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlLink").finish_non_exhaustive()
    }
}

/// The connector's registration name: `control_plane.name`, else the host name.
pub fn connector_name(config: &ControlPlaneConfig) -> String {
    config
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(host_name)
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "gate-connector".to_owned())
}

/// A client that connects on first use and reconnects by itself.
pub fn client(config: &ControlPlaneConfig) -> Result<ConnectorClient, String> {
    let endpoint = Endpoint::from_shared(config.url.clone())
        .map_err(|e| format!("control_plane.url: {e}"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true);
    let credentials = Credentials::new(config.token.as_deref().filter(|t| !t.is_empty()), None)
        .map_err(|e| format!("control_plane.token: {e}"))?;
    Ok(ConnectorServiceClient::with_interceptor(
        endpoint.connect_lazy(),
        credentials,
    ))
}

/// Apply the snapshot saved by an earlier run, if any; returns its version.
pub fn restore(
    gate: &Gate,
    state_dir: &str,
    local: &[PolicySpec],
    options: &EngineOptions,
) -> Option<u64> {
    match snapshot::load(state_dir) {
        Ok(Some(saved)) => apply(gate, &saved, local, options, None).then_some(saved.version),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(state_dir, error = %e, "ignoring the saved snapshot");
            None
        }
    }
}

/// Put `snapshot` in force unless it is the version already in force; saves it to `state_dir`.
fn apply(
    gate: &Gate,
    snapshot: &Snapshot,
    local: &[PolicySpec],
    options: &EngineOptions,
    state_dir: Option<&str>,
) -> bool {
    let current = gate.live.managed().version;
    if snapshot.version == current && current != 0 {
        return false;
    }
    put_in_force(
        gate,
        snapshot,
        snapshot::build(snapshot, local, options),
        state_dir,
    )
}

/// [`apply`] with the policies compiled on a blocking thread: compiling a
/// hostile policy takes up to the engine's compile budget, and must not stall
/// the sessions on the runtime's threads meanwhile.
async fn apply_off_runtime(
    gate: &Gate,
    snapshot: Snapshot,
    local: &[PolicySpec],
    options: &EngineOptions,
    state_dir: &str,
) -> bool {
    let current = gate.live.managed().version;
    if snapshot.version == current && current != 0 {
        return false;
    }
    let (local, options) = (local.to_vec(), options.clone());
    let built = tokio::task::spawn_blocking(move || {
        let built = snapshot::build(&snapshot, &local, &options);
        (snapshot, built)
    })
    .await;
    match built {
        Ok((snapshot, built)) => put_in_force(gate, &snapshot, built, Some(state_dir)),
        Err(e) => {
            tracing::error!(error = %e, "snapshot not applied, the compiler stopped");
            false
        }
    }
}

/// Replace the engine and managed state with a built snapshot, or report why not.
fn put_in_force(
    gate: &Gate,
    snapshot: &Snapshot,
    built: Result<(PolicyEngine, crate::managed::Managed), Vec<String>>,
    state_dir: Option<&str>,
) -> bool {
    let current = gate.live.managed().version;
    match built {
        Ok((engine, managed)) => {
            gate.live.replace(engine, managed);
            gate.protocols.mcp.pins.apply(&snapshot.tool_pins, true);
            tracing::info!(
                version = snapshot.version,
                managed_policies = snapshot.policies.len(),
                grants = snapshot.grants.len(),
                "snapshot in force"
            );
            if let Some(dir) = state_dir {
                // fsync off the runtime's threads.
                let (dir, snapshot) = (dir.to_owned(), snapshot.clone());
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = snapshot::save(&dir, &snapshot) {
                        tracing::warn!(state_dir = %dir, error = %e, "cannot save the snapshot");
                    }
                });
            }
            true
        }
        Err(errors) => {
            tracing::error!(
                version = snapshot.version,
                keeping = current,
                errors = %errors.join("; "),
                "snapshot not applied, keeping the version in force"
            );
            false
        }
    }
}

impl ControlLink {
    /// Start registration, sync and shipping. `queue` is the audit sink's shipper queue.
    pub fn start(
        gate: Arc<Gate>,
        config: &ControlPlaneConfig,
        spool_dir: &str,
        local: Vec<PolicySpec>,
        queue: mpsc::UnboundedReceiver<gate_proto::v1::AuditEvent>,
    ) -> Result<Self, String> {
        let client = client(config)?;
        let (stop, stopped) = watch::channel(false);
        let (id_tx, connector_id) = watch::channel(None);
        let options = gate.live.engine().options().clone();
        let shipper = Shipper {
            client: client.clone(),
            spool: Arc::new(Spool::new(spool_dir)),
            metrics: gate.metrics.clone(),
            down: false,
        };
        let shipper = tokio::spawn(shipper.run(queue, stopped.clone()));
        let mut tasks = Vec::new();
        if gate.recordings.enabled() {
            let recordings = crate::recording::ship::RecordingShipper::new(
                gate.recordings.clone(),
                client.clone(),
                gate.metrics.clone(),
            )
            .named(connector_name(config));
            tasks.push(tokio::spawn(recordings.run(stopped.clone())));
        }
        if gate.config.resources.iter().any(|r| r.pin_tools) {
            let (reports, queue) = mpsc::unbounded_channel();
            gate.protocols.mcp.pins.report_to(reports);
            tasks.push(tokio::spawn(report_tools(
                gate.clone(),
                client.clone(),
                queue,
                stopped.clone(),
            )));
        }
        let register = tokio::spawn(register_and_beat(
            client.clone(),
            config.clone(),
            gate.config
                .resources
                .iter()
                .map(|r| r.name.clone())
                .collect(),
            id_tx,
            stopped.clone(),
        ));
        let sync = tokio::spawn(sync(
            gate,
            client.clone(),
            config.clone(),
            local,
            options,
            stopped,
        ));
        tasks.extend([register, sync]);
        Ok(Self {
            client,
            connector_id,
            stop,
            shipper,
            tasks,
        })
    }

    /// Stop syncing, deregister, and send or spool every queued audit event.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
        if let Some(id) = self.connector_id.borrow().clone() {
            let request = DeregisterConnectorRequest { connector_id: id };
            match tokio::time::timeout(Duration::from_secs(2), self.client.deregister(request))
                .await
            {
                Ok(Ok(_)) => tracing::info!("deregistered from the control plane"),
                Ok(Err(e)) => {
                    tracing::warn!(code = ?e.code(), error = e.message(), "deregistration failed");
                }
                Err(_) => tracing::warn!("deregistration timed out"),
            }
        }
        if tokio::time::timeout(Duration::from_secs(10), &mut self.shipper)
            .await
            .is_err()
        {
            tracing::warn!("audit shipping did not finish draining in 10 s");
        }
    }
}

/// Register with backoff (1 s doubling to 30 s), then heartbeat; re-register when forgotten.
async fn register_and_beat(
    mut client: ConnectorClient,
    config: ControlPlaneConfig,
    resources: Vec<String>,
    id_tx: watch::Sender<Option<String>>,
    mut stop: watch::Receiver<bool>,
) {
    let name = connector_name(&config);
    let mut backoff = Duration::from_secs(1);
    loop {
        let request = RegisterConnectorRequest {
            name: name.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            resources: resources.clone(),
            host: host_name(),
            labels: config.labels.clone().into_iter().collect(),
        };
        let (id, interval) = match client.register(request).await {
            Ok(reply) => {
                let reply = reply.into_inner();
                let id = reply.connector.map(|c| c.id).unwrap_or_default();
                tracing::info!(name = %name, id = %id, "registered with the control plane");
                backoff = Duration::from_secs(1);
                (
                    id,
                    Duration::from_secs(u64::from(reply.heartbeat_interval_seconds.max(1))),
                )
            }
            Err(status) => {
                tracing::warn!(
                    url = %config.url,
                    code = ?status.code(),
                    error = status.message(),
                    retry_in_s = backoff.as_secs(),
                    "registration failed; retrying, serving with the last snapshot"
                );
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        let _ = id_tx.send(Some(id.clone()));
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            match client
                .heartbeat(HeartbeatRequest {
                    connector_id: id.clone(),
                })
                .await
            {
                Ok(_) => {}
                Err(status) if status.code() == tonic::Code::NotFound => break,
                Err(status) => {
                    tracing::warn!(code = ?status.code(), error = status.message(), "heartbeat failed");
                }
            }
        }
    }
}

/// Watch for snapshots; when the stream fails, poll every `sync_interval` (+ jitter) and try again.
/// Send what `pin_tools` resources listed (`ReportTools`), retrying for a while when the control
/// plane does not answer; its answer (the authoritative pins) is put in force at once.
async fn report_tools(
    gate: Arc<Gate>,
    mut client: ConnectorClient,
    mut queue: mpsc::UnboundedReceiver<ReportToolsRequest>,
    mut stopped: watch::Receiver<bool>,
) {
    const ATTEMPTS: u32 = 10;
    loop {
        let request = tokio::select! {
            next = queue.recv() => match next { Some(r) => r, None => return },
            _ = stopped.changed() => return,
        };
        let mut delay = Duration::from_millis(200);
        for attempt in 1..=ATTEMPTS {
            let call = client.report_tools(request.clone());
            match tokio::time::timeout(Duration::from_secs(5), call).await {
                Ok(Ok(reply)) => {
                    gate.protocols
                        .mcp
                        .pins
                        .apply(&reply.into_inner().pins, false);
                    break;
                }
                Ok(Err(status)) if status.code() == tonic::Code::InvalidArgument => {
                    tracing::warn!(resource = %request.resource, error = status.message(), "the control plane refused a tool report");
                    break;
                }
                outcome => {
                    let error = match outcome {
                        Ok(Err(status)) => status.message().to_owned(),
                        _ => "timed out".to_owned(),
                    };
                    if attempt == ATTEMPTS {
                        tracing::warn!(resource = %request.resource, error, "tool report not delivered; the pins hold here until the next report");
                    } else {
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        }
    }
}

async fn sync(
    gate: Arc<Gate>,
    mut client: ConnectorClient,
    config: ControlPlaneConfig,
    local: Vec<PolicySpec>,
    options: EngineOptions,
    mut stop: watch::Receiver<bool>,
) {
    let state_dir = config.state_dir.clone();
    loop {
        let known_version = gate.live.managed().version;
        match client
            .watch_snapshot(WatchSnapshotRequest {
                connector_id: String::new(),
                known_version,
                labels: config.labels.clone().into_iter().collect(),
            })
            .await
        {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                loop {
                    tokio::select! {
                        message = stream.message() => match message {
                            Ok(Some(snapshot)) => {
                                apply_off_runtime(&gate, snapshot, &local, &options, &state_dir).await;
                            }
                            Ok(None) => break,
                            Err(status) => {
                                tracing::warn!(code = ?status.code(), error = status.message(), "snapshot watch ended");
                                break;
                            }
                        },
                        _ = stop.changed() => return,
                    }
                }
            }
            Err(status) => tracing::warn!(
                code = ?status.code(),
                error = status.message(),
                every = ?config.sync_interval,
                "cannot watch snapshots; polling"
            ),
        }
        let wait = config.sync_interval + jitter(config.sync_jitter);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        let known_version = gate.live.managed().version;
        if let Ok(reply) = client
            .fetch_snapshot(FetchSnapshotRequest {
                connector_id: String::new(),
                known_version,
                labels: config.labels.clone().into_iter().collect(),
            })
            .await
        {
            apply_off_runtime(&gate, reply.into_inner(), &local, &options, &state_dir).await;
        }
    }
}

/// A random delay in `[0, max)`.
fn jitter(max: Duration) -> Duration {
    let mut bytes = [0u8; 8];
    if max.is_zero() || getrandom::fill(&mut bytes).is_err() {
        return Duration::ZERO;
    }
    let nanos = u64::from_le_bytes(bytes) % (max.as_nanos().max(1) as u64);
    Duration::from_nanos(nanos)
}
