//! JSON-lines recordings (`format: jsonl`, MCP exchanges): one JSON object a line, each with its
//! wall-clock `time`, `t_ms` since the recording began and its `kind`, written through as the
//! exchange runs into the same spool as asciicast recordings, and shipped the same way.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value as Json};

use super::spool::Sidecar;
use super::{Inner, RecordingError, Recordings, Written};

/// The `format` of JSON-lines recordings.
pub const JSONL: &str = "jsonl";

/// What a JSON-lines recording is of.
#[derive(Debug, Clone)]
pub struct JsonlMeta {
    pub session_id: String,
    pub resource: String,
    pub identity: String,
    /// `mcp`.
    pub protocol: &'static str,
    /// A one-line summary (shown in recording lists as the command).
    pub summary: Option<String>,
}

impl Recordings {
    /// Start a JSON-lines recording. `Ok(None)` when recording is disabled.
    pub fn start_jsonl(&self, meta: JsonlMeta) -> Result<Option<JsonlRecorder>, RecordingError> {
        let Some(inner) = &self.inner else {
            return Ok(None);
        };
        let id = gate_proto::wire::new_id();
        let sidecar = Sidecar {
            id,
            session_id: meta.session_id,
            resource: meta.resource,
            identity: meta.identity,
            protocol: meta.protocol.to_owned(),
            format: JSONL.to_owned(),
            started_at: gate_proto::wire::rfc3339(gate_proto::wire::now_ms()),
            ended_at: None,
            width: 0,
            height: 0,
            command: meta.summary,
            exit_status: None,
            finished: false,
            interrupted: false,
        };
        let file = inner.open(&sidecar, b"")?;
        let path = super::spool::cast_path(&inner.dir, &sidecar.id);
        Ok(Some(JsonlRecorder {
            inner: Arc::clone(inner),
            out: Written::new(file, path),
            sidecar,
            started: Instant::now(),
            done: false,
        }))
    }
}

/// One JSON-lines recording. Every line is written through (a crash leaves what was written); a
/// write error stops the recording, logged once, never the exchange.
#[derive(Debug)]
pub struct JsonlRecorder {
    inner: Arc<Inner>,
    out: Written,
    sidecar: Sidecar,
    started: Instant,
    done: bool,
}

impl JsonlRecorder {
    /// The recording's id.
    pub fn id(&self) -> &str {
        &self.sidecar.id
    }

    /// Append one event of `kind` with `fields` (an object; anything else goes under `value`).
    pub fn event(&mut self, kind: &str, fields: Json) {
        if self.out.file.is_none() {
            return;
        }
        let mut line = Map::new();
        line.insert(
            "time".into(),
            gate_proto::wire::rfc3339(gate_proto::wire::now_ms()).into(),
        );
        let t_ms = (self.started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        line.insert("t_ms".into(), t_ms.into());
        line.insert("kind".into(), kind.into());
        match fields {
            Json::Object(fields) => line.extend(fields),
            Json::Null => {}
            other => {
                line.insert("value".into(), other);
            }
        }
        let mut bytes = Json::Object(line).to_string().into_bytes();
        bytes.push(b'\n');
        self.out.write(&self.inner, &self.sidecar, &bytes);
    }

    /// The recording is complete.
    pub fn finish(mut self) {
        self.close();
    }

    fn close(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        self.out.close(&self.inner, &self.sidecar);
        self.inner.close(&mut self.sidecar);
    }
}

impl Drop for JsonlRecorder {
    fn drop(&mut self) {
        self.close();
    }
}
