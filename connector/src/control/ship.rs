//! Audit shipping: events from the sink's queue are batched and sent with `IngestAudit`; when the
//! control plane does not answer, batches go to the spool and are replayed later. Ingest is
//! idempotent by event id, so a batch sent twice is stored once.

use std::time::Duration;

use gate_proto::client::ConnectorClient;
use gate_proto::v1::{AuditEvent, IngestAuditRequest};
use tokio::sync::{mpsc, watch};

use super::spool::Spool;
use crate::metrics::Metrics;

/// Most events per `IngestAudit` call.
const BATCH: usize = 500;
/// How long a call may take before the batch is spooled.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often spooled batches are retried.
const REPLAY_EVERY: Duration = Duration::from_secs(1);

/// Sends batches and keeps the spool.
pub struct Shipper {
    pub(super) client: ConnectorClient,
    pub(super) spool: std::sync::Arc<Spool>,
    pub(super) metrics: std::sync::Arc<Metrics>,
    /// Whether the last call failed (to log an outage once, not per batch).
    pub(super) down: bool,
}

impl Shipper {
    async fn send(&mut self, events: &[AuditEvent]) -> Result<(), String> {
        let request = IngestAuditRequest {
            events: events.to_vec(),
        };
        match tokio::time::timeout(CALL_TIMEOUT, self.client.ingest_audit(request)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(format!("{}: {}", status.code(), status.message())),
            Err(_) => Err("timed out".to_owned()),
        }
    }

    fn outage(&mut self, error: &str) {
        if !self.down {
            tracing::warn!(
                error,
                spool_dir = %self.spool.dir().display(),
                "audit shipping failed; spooling until the control plane answers"
            );
        }
        self.down = true;
    }

    /// Send `batch` now, or spool it (also when older batches wait, to keep them first).
    async fn deliver(&mut self, batch: Vec<AuditEvent>) {
        if batch.is_empty() {
            return;
        }
        let events = batch.len();
        let count = events as f64;
        if self.spool.files().is_empty() {
            match self.send(&batch).await {
                Ok(()) => {
                    self.metrics
                        .add("gate_audit_events_shipped_total", &[], count);
                    return;
                }
                Err(e) => self.outage(&e),
            }
        }
        // fsync off the runtime's threads: a session must not wait for the disk.
        let spool = std::sync::Arc::clone(&self.spool);
        let written = tokio::task::spawn_blocking(move || spool.write(&batch).map(|_| batch.len()))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match written {
            Ok(_) => self
                .metrics
                .add("gate_audit_events_spooled_total", &[], count),
            // Nowhere to put them: say so loudly; the JSON lines on stdout still hold them.
            Err(e) => tracing::error!(
                events,
                spool_dir = %self.spool.dir().display(),
                error = %e,
                "cannot spool audit events"
            ),
        }
    }

    /// Send spooled batches, oldest first, until one fails.
    async fn replay(&mut self) {
        for file in self.spool.files() {
            let (events, bad) = match Spool::read(&file) {
                Ok(read) => read,
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "cannot read spooled audit batch");
                    return;
                }
            };
            for problem in &bad {
                tracing::warn!(problem = %problem, "unreadable spooled audit event kept out of the replay");
            }
            for chunk in events.chunks(BATCH) {
                if let Err(e) = self.send(chunk).await {
                    self.outage(&e);
                    return;
                }
            }
            if !bad.is_empty() {
                let kept = file.with_extension("unreadable");
                let _ = std::fs::rename(&file, &kept);
            } else if let Err(e) = std::fs::remove_file(&file) {
                tracing::warn!(file = %file.display(), error = %e, "cannot remove replayed batch");
                return;
            }
            self.metrics
                .add("gate_audit_events_replayed_total", &[], events.len() as f64);
        }
        if self.down {
            tracing::info!("audit shipping recovered; spool replayed");
            self.down = false;
        }
    }

    /// Run until `stop` turns true, then drain what is queued (send or spool) and return.
    pub async fn run(
        mut self,
        mut queue: mpsc::UnboundedReceiver<AuditEvent>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(REPLAY_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                first = queue.recv() => {
                    let Some(first) = first else { break };
                    // Let a burst gather so a busy connector sends few, large batches.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match queue.try_recv() {
                            Ok(event) => batch.push(event),
                            Err(_) => break,
                        }
                    }
                    self.deliver(batch).await;
                }
                _ = tick.tick() => {
                    if !self.spool.files().is_empty() {
                        self.replay().await;
                    }
                }
                _ = stop.changed() => break,
            }
        }
        let mut rest = Vec::new();
        while let Ok(event) = queue.try_recv() {
            rest.push(event);
        }
        for chunk in rest.chunks(BATCH) {
            self.deliver(chunk.to_vec()).await;
        }
    }
}
