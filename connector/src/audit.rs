//! Audit events: one JSON line per session decision and per statement
//! decision, written to the audit sink (stdout by default) and, when a control
//! plane is configured, handed to the shipper (`control::ship`) as well.

use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Longest statement text kept in an event.
pub const MAX_STATEMENT: usize = 1024;

/// One decision.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    /// UUIDv7; the control plane stores each id once, so retries never duplicate.
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// `session` or `statement`.
    pub kind: &'static str,
    pub identity: String,
    pub resource: String,
    pub client: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub policies: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<gate_policy::DryRunFinding>,
}

impl AuditEvent {
    /// The contract form sent to the control plane.
    pub fn to_proto(&self, connector: &str) -> gate_proto::v1::AuditEvent {
        let stage = match self.kind {
            "session" => "session",
            "statement" => "pre_request",
            _ => "post_request",
        };
        let details = serde_json::json!({"kind": self.kind, "dry_run": self.dry_run});
        gate_proto::v1::AuditEvent {
            id: self.id.clone(),
            time: gate_proto::wire::rfc3339(i64::try_from(self.ts_ms).unwrap_or(i64::MAX)),
            connector: connector.to_owned(),
            identity: self.identity.clone(),
            resource: self.resource.clone(),
            protocol: "postgres".to_owned(),
            client_addr: self.client.clone(),
            stage: stage.to_owned(),
            action: self.action.clone(),
            reason: self.reason.clone().unwrap_or_default(),
            statement: self.statement.clone().unwrap_or_default(),
            policies: self.policies.clone(),
            details_json: details.to_string(),
            ..Default::default()
        }
    }

    /// Now, in milliseconds.
    pub fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// Cut `text` to at most `MAX_STATEMENT` characters.
pub fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_STATEMENT) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Where events go: serialized on the caller's task, written by a
/// background thread that drains the queue every 5 ms and writes the batch,
/// so a busy session never waits on the sink and causes no wakeup per event.
pub struct AuditSink {
    lines: Mutex<std::sync::mpsc::Sender<Vec<u8>>>,
    /// The control-plane shipper's queue and this connector's name.
    shipper: Option<(
        tokio::sync::mpsc::UnboundedSender<gate_proto::v1::AuditEvent>,
        String,
    )>,
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditSink")
    }
}

impl AuditSink {
    /// Events to standard output.
    pub fn stdout() -> Self {
        Self::new(Box::new(std::io::stdout()))
    }

    /// Events to any writer (tests use a file).
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::Builder::new()
            .name("gate-audit".into())
            .spawn(move || {
                // Drain on a short tick rather than waking per event: one
                // wakeup and one write per 5 ms, however busy the sessions.
                let mut out = std::io::BufWriter::new(out);
                loop {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    let mut wrote = false;
                    loop {
                        match rx.try_recv() {
                            Ok(line) => {
                                let _ = out.write_all(&line);
                                wrote = true;
                            }
                            Err(std::sync::mpsc::TryRecvError::Empty) => break,
                            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                                let _ = out.flush();
                                return;
                            }
                        }
                    }
                    if wrote {
                        let _ = out.flush();
                    }
                }
            })
            .ok();
        Self {
            lines: Mutex::new(tx),
            shipper: None,
        }
    }

    /// Also hand every event to the control-plane shipper, as connector `name`.
    pub fn with_shipper(
        mut self,
        queue: tokio::sync::mpsc::UnboundedSender<gate_proto::v1::AuditEvent>,
        name: &str,
    ) -> Self {
        self.shipper = Some((queue, name.to_owned()));
        self
    }

    /// Queue one event as a JSON line.
    pub fn emit(&self, event: &AuditEvent) {
        if let Some((queue, name)) = &self.shipper {
            let _ = queue.send(event.to_proto(name));
        }
        let Ok(mut line) = serde_json::to_vec(event) else {
            return;
        };
        line.push(b'\n');
        if let Ok(tx) = self.lines.lock() {
            let _ = tx.send(line);
        }
    }
}
