//! Recording shipping: finished recordings in `recording.dir` are uploaded with the
//! `UploadRecording` stream (metadata, then the file in chunks) and deleted only once the control
//! plane answered. A failure leaves them in place and is retried with backoff; recordings left
//! from before a restart go first. Uploads are idempotent by recording id. A recording the control
//! plane refuses for what it is (invalid metadata, too large) is set aside as `*.rejected`, so it
//! cannot hold up the ones behind it.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gate_proto::client::ConnectorClient;
use gate_proto::v1::{Recording, UploadRecordingRequest};
use tokio::sync::{mpsc, watch};

use super::Recordings;
use super::spool::{self, Sidecar};
use crate::metrics::Metrics;

/// Bytes per upload message.
const CHUNK: usize = 256 * 1024;
/// Longest wait between attempts while the control plane is failing.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often the spool is looked at when nothing woke the shipper.
const SCAN_EVERY: Duration = Duration::from_secs(30);

/// Uploads finished recordings.
pub struct RecordingShipper {
    pub recordings: Recordings,
    pub client: ConnectorClient,
    pub metrics: Arc<Metrics>,
    /// This connector's registration name, sent with every recording.
    pub connector: String,
    /// Whether the last attempt failed (an outage is logged once, not per recording).
    down: bool,
}

impl std::fmt::Debug for RecordingShipper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingShipper")
            .field("dir", &self.recordings.dir())
            .finish_non_exhaustive()
    }
}

/// Metadata as the control plane takes it.
fn recording(sidecar: &Sidecar, connector: &str) -> Recording {
    Recording {
        connector: connector.to_owned(),
        id: sidecar.id.clone(),
        session_id: sidecar.session_id.clone(),
        identity: sidecar.identity.clone(),
        resource: sidecar.resource.clone(),
        protocol: sidecar.protocol.clone(),
        started_at: sidecar.started_at.clone(),
        ended_at: sidecar.ended_at.clone().unwrap_or_default(),
        format: sidecar.format.clone(),
        width: u32::from(sidecar.width),
        height: u32::from(sidecar.height),
        command: sidecar.command.clone().unwrap_or_default(),
        exit_status: sidecar.exit_status,
        interrupted: sidecar.interrupted,
        ..Recording::default()
    }
}

/// Read `path` in chunks into `tx`, the first message carrying `first`.
fn feed(
    path: &Path,
    first: Recording,
    tx: &mpsc::Sender<UploadRecordingRequest>,
) -> Result<(), String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut first = Some(first);
    loop {
        let mut data = vec![0u8; CHUNK];
        let n = file
            .read(&mut data)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        data.truncate(n);
        if n == 0 && first.is_none() {
            return Ok(());
        }
        let message = UploadRecordingRequest {
            recording: first.take(),
            data,
        };
        if tx.blocking_send(message).is_err() {
            return Err("the upload stream closed".to_owned());
        }
        if n == 0 {
            return Ok(());
        }
    }
}

impl RecordingShipper {
    pub fn new(recordings: Recordings, client: ConnectorClient, metrics: Arc<Metrics>) -> Self {
        Self {
            recordings,
            client,
            metrics,
            connector: String::new(),
            down: false,
        }
    }

    /// Send `name` as the connector of every recording.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.connector = name.into();
        self
    }

    /// Upload one recording; `Ok` once the control plane has stored it (now or before). The
    /// error says whether trying again could help.
    async fn upload(&mut self, dir: &Path, sidecar: &Sidecar) -> Result<(), (String, bool)> {
        self.try_upload(dir, sidecar).await.map_err(|(e, code)| {
            let permanent = matches!(
                code,
                Some(
                    tonic::Code::InvalidArgument
                        | tonic::Code::ResourceExhausted
                        | tonic::Code::OutOfRange
                )
            );
            (e, permanent)
        })
    }

    async fn try_upload(
        &mut self,
        dir: &Path,
        sidecar: &Sidecar,
    ) -> Result<(), (String, Option<tonic::Code>)> {
        let path = spool::cast_path(dir, &sidecar.id);
        let size = std::fs::metadata(&path)
            .map_err(|e| (format!("{}: {e}", path.display()), None))?
            .len();
        let (tx, rx) = mpsc::channel(4);
        let first = recording(sidecar, &self.connector);
        let reader = tokio::task::spawn_blocking(move || feed(&path, first, &tx));
        // A generous deadline: 30 s plus a second per MiB.
        let deadline = Duration::from_secs(30 + size / (1024 * 1024));
        let call = self
            .client
            .upload_recording(tokio_stream::wrappers::ReceiverStream::new(rx));
        let answer = tokio::time::timeout(deadline, call).await;
        let read = reader.await.unwrap_or_else(|e| Err(e.to_string()));
        match answer {
            Ok(Ok(_)) => read.map_err(|e| (e, None)),
            Ok(Err(status)) => Err((
                format!("{}: {}", status.code(), status.message()),
                Some(status.code()),
            )),
            Err(_) => Err((format!("no answer within {} s", deadline.as_secs()), None)),
        }
    }

    /// Ship every finished recording, oldest first; stop at the first failure.
    pub async fn ship_all(&mut self) -> Result<usize, String> {
        let Some(dir) = self.recordings.dir().map(Path::to_path_buf) else {
            return Ok(0);
        };
        let (found, _bad) = spool::sidecars(&dir);
        let mut shipped = 0;
        for sidecar in found.into_iter().filter(|s| s.finished) {
            if !spool::cast_path(&dir, &sidecar.id).exists() {
                // Shipped, and stopped before the metadata was removed.
                let _ = std::fs::remove_file(spool::sidecar_path(&dir, &sidecar.id));
                continue;
            }
            if let Err((e, permanent)) = self.upload(&dir, &sidecar).await {
                self.metrics
                    .add("gate_recordings_ship_failures_total", &[], 1.0);
                if permanent {
                    tracing::error!(
                        id = %sidecar.id,
                        error = %e,
                        dir = %dir.display(),
                        "the control plane refused this recording; kept as *.rejected"
                    );
                    spool::reject(&dir, &sidecar.id);
                    continue;
                }
                if !self.down {
                    tracing::warn!(
                        id = %sidecar.id,
                        error = %e,
                        dir = %dir.display(),
                        "recording upload failed; keeping recordings until the control plane takes them"
                    );
                }
                self.down = true;
                return Err(e);
            }
            if let Err(e) = spool::remove(&dir, &sidecar.id) {
                tracing::warn!(id = %sidecar.id, error = %e, "shipped recording not removed");
            }
            self.metrics.add("gate_recordings_shipped_total", &[], 1.0);
            shipped += 1;
        }
        if self.down {
            tracing::info!("recording shipping recovered");
            self.down = false;
        }
        Ok(shipped)
    }

    /// Ship now, then whenever a recording finishes (and every 30 s), backing off from 1 s to
    /// 60 s while uploads fail, until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let wait = match self.ship_all().await {
                Ok(_) => {
                    backoff = Duration::from_secs(1);
                    SCAN_EVERY
                }
                Err(_) => {
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            };
            tokio::select! {
                () = self.recordings.finished(), if !self.down => {}
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
