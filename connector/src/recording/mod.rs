//! Session recordings: the interface SSH (and later MCP) sessions call; this build records nothing — the real asciicast writer lands from the recordings work.

use std::collections::BTreeMap;

/// What a recording is about, known when the shell or exec starts.
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
    /// TERM from the pty request.
    pub term: Option<String>,
    pub env: BTreeMap<String, String>,
}

/// Where recordings go; disabled without `recording.dir`.
#[derive(Clone, Debug, Default)]
pub struct Recordings {
    _disabled: (),
}

impl Recordings {
    /// Record nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Ok(None) when recording is disabled (no `recording.dir`).
    pub fn start(&self, meta: RecordingMeta) -> Result<Option<Recorder>, RecordingError> {
        let _ = meta;
        Ok(None)
    }
}

/// One recording being written.
#[derive(Debug)]
pub struct Recorder {
    _private: (),
}

impl Recorder {
    /// Output the client saw.
    pub fn output(&mut self, data: &[u8]) {
        let _ = data;
    }

    /// Input the client sent (called only when `record_input` is on).
    pub fn input(&mut self, data: &[u8]) {
        let _ = data;
    }

    /// The terminal was resized.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        let _ = (cols, rows);
    }

    /// The session ended with this exit status.
    pub fn finish(self, exit_status: Option<u32>) {
        let _ = exit_status;
    }
}

/// Why a recording could not start.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("recording unavailable: {0}")]
    Unavailable(String),
}
