//! Session recordings: [`Recordings`] (the spool in `recording.dir`, shared by every session) starts
//! a [`Recorder`] per recorded channel, which writes asciicast v2 as the session runs (MCP
//! exchanges: a [`jsonl::JsonlRecorder`], JSON lines); the shipper
//! (`ship.rs`) uploads finished recordings to the control plane and deletes them once it has them.
//! See `docs/recordings.md`.

pub mod asciicast;
pub mod jsonl;
pub mod ship;
pub mod spool;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::Notify;

use crate::metrics::Metrics;
use asciicast::{Header, Kind, Utf8Carry};
use spool::Sidecar;

/// The `format` of terminal recordings.
pub const ASCIICAST_V2: &str = "asciicast-v2";

/// What a recording is of; written into its header and metadata.
#[derive(Debug, Clone)]
pub struct RecordingMeta {
    pub session_id: String,
    pub resource: String,
    pub identity: String,
    /// `ssh`, later `mcp`.
    pub protocol: &'static str,
    pub width: u16,
    pub height: u16,
    /// The exec command; `None` for a shell.
    pub command: Option<String>,
    /// `TERM` from the pty request.
    pub term: Option<String>,
    /// Environment the client sent (kept in the header's `env`).
    pub env: BTreeMap<String, String>,
}

/// Why a recording could not be started or kept.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("recording.dir {dir}: {error}")]
    Dir { dir: String, error: std::io::Error },
    #[error("recording {path}: {error}")]
    File { path: String, error: std::io::Error },
}

/// Where recordings go; cheap to clone. [`Recordings::default`] records nothing.
#[derive(Clone, Debug, Default)]
pub struct Recordings {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    metrics: Option<Arc<Metrics>>,
    /// Woken when a recording is finished (the shipper waits on it).
    finished: Arc<Notify>,
}

impl Recordings {
    /// Record nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Record into `dir` (`recording.dir`), creating it if needed.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, RecordingError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|error| RecordingError::Dir {
            dir: dir.display().to_string(),
            error,
        })?;
        Ok(Self {
            inner: Some(Arc::new(Inner {
                dir,
                metrics: None,
                finished: Arc::new(Notify::new()),
            })),
        })
    }

    /// Count what is recorded in `metrics` (`gate_recordings_*`).
    pub fn with_metrics(self, metrics: Arc<Metrics>) -> Self {
        let Some(inner) = self.inner else {
            return self;
        };
        Self {
            inner: Some(Arc::new(Inner {
                dir: inner.dir.clone(),
                metrics: Some(metrics),
                finished: Arc::clone(&inner.finished),
            })),
        }
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The spool directory, when recording.
    pub fn dir(&self) -> Option<&Path> {
        self.inner.as_deref().map(|i| i.dir.as_path())
    }

    /// Resolves when a recording finishes (pending forever when disabled).
    pub async fn finished(&self) {
        match &self.inner {
            Some(inner) => inner.finished.notified().await,
            None => std::future::pending().await,
        }
    }

    /// Start recording a channel. `Ok(None)` when recording is disabled (no `recording.dir`).
    pub fn start(&self, meta: RecordingMeta) -> Result<Option<Recorder>, RecordingError> {
        let Some(inner) = &self.inner else {
            return Ok(None);
        };
        let id = gate_proto::wire::new_id();
        let started_ms = gate_proto::wire::now_ms();
        let path = spool::cast_path(&inner.dir, &id);
        let mut env = meta.env.clone();
        if let Some(term) = &meta.term {
            env.insert("TERM".to_owned(), term.clone());
        }
        let header = Header {
            version: 2,
            width: meta.width,
            height: meta.height,
            timestamp: started_ms.div_euclid(1000),
            env: &env,
            command: meta.command.as_deref(),
            title: Some(meta.resource.as_str()),
        }
        .line();
        let sidecar = Sidecar {
            id: id.clone(),
            session_id: meta.session_id,
            resource: meta.resource,
            identity: meta.identity,
            protocol: meta.protocol.to_owned(),
            format: ASCIICAST_V2.to_owned(),
            started_at: gate_proto::wire::rfc3339(started_ms),
            ended_at: None,
            width: meta.width,
            height: meta.height,
            command: meta.command,
            exit_status: None,
            finished: false,
            interrupted: false,
        };
        let file = inner.open(&sidecar, &header)?;
        Ok(Some(Recorder {
            inner: Arc::clone(inner),
            out: Written::new(file, path),
            sidecar,
            started: Instant::now(),
            output: Utf8Carry::default(),
            input: Utf8Carry::default(),
            line: Vec::with_capacity(1024),
            done: false,
        }))
    }

    /// Close recordings an earlier run left open (it stopped mid-session): they are marked
    /// finished and `interrupted`, ended at their file's last write, and shipped like the others.
    /// Call before serving. Returns how many were closed.
    pub fn recover(&self) -> usize {
        let Some(inner) = &self.inner else {
            return 0;
        };
        let (found, bad) = spool::sidecars(&inner.dir);
        for problem in bad {
            tracing::warn!(problem = %problem, "unreadable recording metadata left in place");
        }
        let mut closed = 0;
        for mut sidecar in found.into_iter().filter(|s| !s.finished) {
            let cast = spool::cast_path(&inner.dir, &sidecar.id);
            let ended_ms = std::fs::metadata(&cast)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or_else(gate_proto::wire::now_ms, |d| {
                    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
                });
            sidecar.ended_at = Some(gate_proto::wire::rfc3339(ended_ms));
            sidecar.finished = true;
            sidecar.interrupted = true;
            match spool::write_sidecar(&inner.dir, &sidecar) {
                Ok(()) => closed += 1,
                Err(e) => {
                    tracing::warn!(id = %sidecar.id, error = %e, "cannot close a recording left open")
                }
            }
        }
        closed
    }
}

impl Inner {
    /// Write `sidecar` (first: a file in the spool always has its metadata), then create the
    /// recording's file starting with `header`; counted as a started recording.
    fn open(&self, sidecar: &Sidecar, header: &[u8]) -> Result<BufWriter<File>, RecordingError> {
        let path = spool::cast_path(&self.dir, &sidecar.id);
        let file_error = |error| RecordingError::File {
            path: path.display().to_string(),
            error,
        };
        spool::write_sidecar(&self.dir, sidecar).map_err(file_error)?;
        let opened = File::create(&path).and_then(|file| {
            let mut file = BufWriter::with_capacity(16 * 1024, file);
            file.write_all(header).and_then(|()| file.flush())?;
            Ok(file)
        });
        let file = match opened {
            Ok(file) => file,
            Err(error) => {
                let _ = spool::remove(&self.dir, &sidecar.id);
                return Err(file_error(error));
            }
        };
        self.count(sidecar, "gate_recordings_started_total", 1.0);
        self.count(sidecar, "gate_recordings_bytes_total", header.len() as f64);
        Ok(file)
    }

    fn count(&self, sidecar: &Sidecar, metric: &'static str, value: f64) {
        if let Some(metrics) = &self.metrics {
            let labels = [
                ("protocol", sidecar.protocol.as_str()),
                ("resource", sidecar.resource.as_str()),
            ];
            metrics.add(metric, &labels, value);
        }
    }

    /// Mark `sidecar` finished (now) and wake the shipper.
    fn close(&self, sidecar: &mut Sidecar) {
        sidecar.ended_at = Some(gate_proto::wire::rfc3339(gate_proto::wire::now_ms()));
        sidecar.finished = true;
        if let Err(e) = spool::write_sidecar(&self.dir, sidecar) {
            tracing::error!(id = %sidecar.id, error = %e, "cannot finish the recording's metadata");
            return;
        }
        self.finished.notify_one();
    }
}

/// A recording's file as it is written: write-through, its bytes counted in batches, stopped
/// for good by a write error (logged once; the session goes on).
#[derive(Debug)]
struct Written {
    file: Option<BufWriter<File>>,
    path: PathBuf,
    /// Bytes written since the metrics were last told.
    uncounted: u64,
}

impl Written {
    fn new(file: BufWriter<File>, path: PathBuf) -> Self {
        Self {
            file: Some(file),
            path,
            uncounted: 0,
        }
    }

    fn write(&mut self, inner: &Inner, sidecar: &Sidecar, bytes: &[u8]) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        match file.write_all(bytes).and_then(|()| file.flush()) {
            Ok(()) => {
                self.uncounted += bytes.len() as u64;
                if self.uncounted >= 64 * 1024 {
                    self.count(inner, sidecar);
                }
            }
            Err(e) => {
                tracing::error!(
                    file = %self.path.display(),
                    error = %e,
                    "cannot write the recording; it stops here"
                );
                self.file = None;
            }
        }
    }

    fn count(&mut self, inner: &Inner, sidecar: &Sidecar) {
        inner.count(
            sidecar,
            "gate_recordings_bytes_total",
            self.uncounted as f64,
        );
        self.uncounted = 0;
    }

    fn close(&mut self, inner: &Inner, sidecar: &Sidecar) {
        self.count(inner, sidecar);
        self.file = None;
    }
}

/// One channel's recording. Every call writes through to the file (a crash leaves a playable
/// recording); a write error stops the recording, logged once, and never the session.
#[derive(Debug)]
pub struct Recorder {
    inner: Arc<Inner>,
    out: Written,
    sidecar: Sidecar,
    started: Instant,
    output: Utf8Carry,
    input: Utf8Carry,
    /// The event being written (reused).
    line: Vec<u8>,
    done: bool,
}

impl Recorder {
    /// The recording's id (its file is `<id>.cast` in `recording.dir`).
    pub fn id(&self) -> &str {
        &self.sidecar.id
    }

    /// Whether the file is still being written (false after a write error).
    pub fn healthy(&self) -> bool {
        self.out.file.is_some()
    }

    /// Bytes the client's terminal showed.
    pub fn output(&mut self, data: &[u8]) {
        let text = self.output.decode(data);
        self.event(Kind::Output, &text);
    }

    /// Bytes the client typed (only called when `record_input` is on).
    pub fn input(&mut self, data: &[u8]) {
        let text = self.input.decode(data);
        self.event(Kind::Input, &text);
    }

    /// The terminal was resized.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.event(Kind::Resize, &asciicast::size(cols, rows));
    }

    /// The session ended with `exit_status` (if it reported one).
    pub fn finish(mut self, exit_status: Option<u32>) {
        self.close(exit_status);
    }

    fn event(&mut self, kind: Kind, text: &str) {
        if text.is_empty() {
            return;
        }
        if self.out.file.is_none() {
            return;
        }
        self.line.clear();
        asciicast::event_line(self.started.elapsed(), kind, text, &mut self.line);
        self.out.write(&self.inner, &self.sidecar, &self.line);
    }

    fn close(&mut self, exit_status: Option<u32>) {
        if self.done {
            return;
        }
        self.done = true;
        let rest = self.output.finish();
        self.event(Kind::Output, &rest);
        let rest = self.input.finish();
        self.event(Kind::Input, &rest);
        self.out.close(&self.inner, &self.sidecar);
        self.sidecar.exit_status = exit_status;
        self.inner.close(&mut self.sidecar);
    }
}

impl Drop for Recorder {
    /// A recorder dropped without [`Recorder::finish`] (the session task ended early) is
    /// finished without an exit status.
    fn drop(&mut self) {
        self.close(None);
    }
}
