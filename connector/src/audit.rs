//! Audit events: one JSON line per session decision and per statement
//! decision, written to the audit sink (stdout by default) and, when a control
//! plane is configured, handed to the shipper (`control::ship`) as well.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use gate_policy::{DryRunFinding, McpClient, Verdict};
use serde::Serialize;

/// Longest statement text kept in an event.
pub const MAX_STATEMENT: usize = 1024;

/// Who a session's events are about; built once per session and shared by
/// its events (a reference count, not three string copies per event).
#[derive(Debug, Clone)]
pub struct Parties {
    /// The protocol the session speaks (`postgres`, `mysql`, …).
    pub protocol: &'static str,
    pub identity: Arc<str>,
    /// What the identity is: `user`, `workload` (a sidecar's pod), `api_key`; empty: not known.
    pub identity_kind: &'static str,
    pub resource: Arc<str>,
    /// The client's address (`ip:port`).
    pub client: Arc<str>,
}

/// What an MCP request's events add: the JSON-RPC method, what it targets,
/// and the client as it declared itself (agent provenance, not verified).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct McpAudit {
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub client: McpClient,
}

/// One decision.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// UUIDv7; the control plane stores each id once, so retries never duplicate.
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: u64,
    /// `session`, `statement` or `result`.
    pub kind: &'static str,
    pub parties: Parties,
    /// The statement, cut to [`MAX_STATEMENT`] characters.
    pub statement: Option<String>,
    /// The decision: action, reason, deciding policies, dry-run findings.
    pub verdict: Arc<Verdict>,
    /// Rows the request returned or affected (0 for sessions and refusals).
    pub rows: u64,
    /// How long the request took, upstream included, in microseconds.
    pub duration_us: u64,
    /// HTTP: the response status and the body bytes sent to the client.
    pub response: Option<(u16, u64)>,
    /// MCP: the request's method, target and client.
    pub mcp: Option<Arc<McpAudit>>,
}

/// The JSON line of an event.
#[derive(Serialize)]
struct Line<'a> {
    id: &'a str,
    ts_ms: u64,
    kind: &'a str,
    protocol: &'a str,
    identity: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    identity_kind: &'a str,
    resource: &'a str,
    client: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    statement: Option<&'a str>,
    action: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    policies: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    dry_run: &'a [DryRunFinding],
    #[serde(skip_serializing_if = "Option::is_none")]
    mcp: Option<&'a McpAudit>,
}

impl Serialize for AuditEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Line {
            id: &self.id,
            ts_ms: self.ts_ms,
            kind: self.kind,
            protocol: self.parties.protocol,
            identity: &self.parties.identity,
            identity_kind: self.parties.identity_kind,
            resource: &self.parties.resource,
            client: &self.parties.client,
            statement: self.statement.as_deref(),
            action: self.verdict.action.as_str(),
            reason: self.verdict.reason.as_deref(),
            rows: (self.kind != "session").then_some(self.rows),
            duration_us: (self.kind != "session").then_some(self.duration_us),
            status: self.response.map(|(status, _)| status),
            bytes: self.response.map(|(_, bytes)| bytes),
            policies: &self.verdict.policies,
            dry_run: &self.verdict.dry_run,
            mcp: self.mcp.as_deref(),
        }
        .serialize(serializer)
    }
}

impl AuditEvent {
    /// A new event, stamped now with a fresh id.
    pub fn new(
        kind: &'static str,
        parties: &Parties,
        statement: Option<&str>,
        verdict: Arc<Verdict>,
    ) -> Self {
        Self::at(Self::now_ms(), kind, parties, statement, verdict)
    }

    /// A new event for a decision taken at `ts_ms`, with a fresh id of that time.
    pub fn at(
        ts_ms: u64,
        kind: &'static str,
        parties: &Parties,
        statement: Option<&str>,
        verdict: Arc<Verdict>,
    ) -> Self {
        Self {
            id: gate_proto::wire::new_id_at(ts_ms),
            ts_ms,
            kind,
            parties: parties.clone(),
            statement: statement.map(truncate),
            verdict,
            rows: 0,
            duration_us: 0,
            response: None,
            mcp: None,
        }
    }

    /// The contract form sent to the control plane.
    pub fn to_proto(&self, connector: &str) -> gate_proto::v1::AuditEvent {
        let stage = match self.kind {
            "session" => "session",
            "statement" => "pre_request",
            _ => "post_request",
        };
        let mut details = serde_json::json!({"kind": self.kind, "dry_run": self.verdict.dry_run});
        if let (Some((status, bytes)), Some(map)) = (self.response, details.as_object_mut()) {
            map.insert("status".into(), status.into());
            map.insert("bytes".into(), bytes.into());
        }
        if let (false, Some(map)) = (
            self.parties.identity_kind.is_empty(),
            details.as_object_mut(),
        ) {
            map.insert("identity_kind".into(), self.parties.identity_kind.into());
        }
        if let (Some(mcp), Some(map)) = (&self.mcp, details.as_object_mut()) {
            map.insert(
                "mcp".into(),
                serde_json::to_value(mcp.as_ref()).unwrap_or_default(),
            );
        }
        gate_proto::v1::AuditEvent {
            id: self.id.clone(),
            time: gate_proto::wire::rfc3339(i64::try_from(self.ts_ms).unwrap_or(i64::MAX)),
            connector: connector.to_owned(),
            identity: self.parties.identity.to_string(),
            resource: self.parties.resource.to_string(),
            protocol: self.parties.protocol.to_owned(),
            client_addr: self.parties.client.to_string(),
            stage: stage.to_owned(),
            action: self.verdict.action.as_str().to_owned(),
            reason: self.verdict.reason.clone().unwrap_or_default(),
            statement: self.statement.clone().unwrap_or_default(),
            policies: self.verdict.policies.clone(),
            rows: self.rows,
            duration_us: self.duration_us,
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

/// Where events go: queued by the caller's task, serialized and written by
/// a background thread that drains the queue every 5 ms, so a busy session
/// never waits on the sink, spends no time on JSON, and causes no wakeup
/// per event.
pub struct AuditSink {
    events: Mutex<std::sync::mpsc::Sender<AuditEvent>>,
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
        let (tx, rx) = std::sync::mpsc::channel::<AuditEvent>();
        std::thread::Builder::new()
            .name("gate-audit".into())
            .spawn(move || {
                // Drain on a short tick rather than waking per event: one
                // wakeup and one write per 5 ms, however busy the sessions.
                let mut out = std::io::BufWriter::new(out);
                let mut line = Vec::with_capacity(512);
                loop {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    let mut wrote = false;
                    loop {
                        match rx.try_recv() {
                            Ok(event) => {
                                line.clear();
                                if serde_json::to_writer(&mut line, &event).is_ok() {
                                    line.push(b'\n');
                                    let _ = out.write_all(&line);
                                    wrote = true;
                                }
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
            events: Mutex::new(tx),
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

    /// Queue one event (written as a JSON line, and shipped when a control
    /// plane is configured).
    pub fn emit(&self, event: AuditEvent) {
        if let Some((queue, name)) = &self.shipper {
            let _ = queue.send(event.to_proto(name));
        }
        if let Ok(tx) = self.events.lock() {
            let _ = tx.send(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parties() -> Parties {
        Parties {
            protocol: "postgres",
            identity: "alice".into(),
            identity_kind: "user",
            resource: "primary-db".into(),
            client: "127.0.0.1:5000".into(),
        }
    }

    #[test]
    fn an_event_is_one_json_object_with_the_decision_fields() {
        let mut verdict = Verdict::refusal();
        verdict.reason = Some("no drops".into());
        verdict.policies = vec!["example".into()];
        let event = AuditEvent::new(
            "statement",
            &parties(),
            Some("drop table t"),
            Arc::new(verdict),
        );
        let json: serde_json::Value =
            serde_json::from_slice(&serde_json::to_vec(&event).unwrap_or_default())
                .unwrap_or_default();
        assert_eq!(json["id"], event.id.as_str());
        assert_eq!(json["kind"], "statement");
        assert_eq!(json["protocol"], "postgres");
        assert_eq!(json["rows"], 0);
        assert_eq!(json["identity"], "alice");
        assert_eq!(json["resource"], "primary-db");
        assert_eq!(json["client"], "127.0.0.1:5000");
        assert_eq!(json["statement"], "drop table t");
        assert_eq!(json["action"], "block");
        assert_eq!(json["reason"], "no drops");
        assert_eq!(json["policies"], serde_json::json!(["example"]));
        // Absent parts are left out, not written as null.
        let keys: Vec<&String> = json
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert!(!keys.iter().any(|k| *k == "dry_run"), "{keys:?}");
        assert!(!keys.iter().any(|k| *k == "mcp"), "{keys:?}");
    }

    #[test]
    fn mcp_events_carry_method_target_and_client_to_both_sinks() {
        let mut event = AuditEvent::new(
            "statement",
            &parties(),
            Some("tools/call lookup"),
            Arc::new(Verdict::refusal()),
        );
        event.mcp = Some(Arc::new(McpAudit {
            method: "tools/call".into(),
            operation: Some("tool".into()),
            target: Some("lookup".into()),
            client: McpClient {
                name: Some("agent-x".into()),
                version: Some("2".into()),
                user_agent: Some("ua/1".into()),
            },
        }));
        let line: serde_json::Value =
            serde_json::from_slice(&serde_json::to_vec(&event).unwrap_or_default())
                .unwrap_or_default();
        assert_eq!(line["mcp"]["target"], "lookup");
        assert_eq!(line["mcp"]["client"]["user_agent"], "ua/1");
        let shipped = event.to_proto("c1");
        let details: serde_json::Value =
            serde_json::from_str(&shipped.details_json).unwrap_or_default();
        assert_eq!(details["mcp"]["operation"], "tool");
        assert_eq!(details["mcp"]["client"]["name"], "agent-x");
    }

    #[test]
    fn long_statements_are_cut() {
        let long = "x".repeat(MAX_STATEMENT + 10);
        let event = AuditEvent::new(
            "statement",
            &parties(),
            Some(&long),
            Arc::new(Verdict::refusal()),
        );
        let kept = event.statement.unwrap_or_default();
        assert_eq!(
            kept.chars().count(),
            MAX_STATEMENT + 1,
            "cut plus an ellipsis"
        );
        assert!(kept.ends_with('…'));
    }
}
