//! `record: true` on an MCP resource: each exchange (a POST, the GET stream, a DELETE) becomes a
//! JSON-lines recording of the client's messages with their decisions, what Gate answered or
//! streamed (after masking: what the client saw), and the timing; shipped like SSH recordings.
//! Request arguments are masked with the response's masks too, so a masked value never lands in
//! a recording.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use gate_policy::Mask;
use gate_policy::json::mask_json;
use gate_policy::mask::MaskingKey;
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

use super::message::Message;
use crate::protocols::http::proxy::Exchange;
use crate::recording::jsonl::{JsonlMeta, JsonlRecorder};

/// One exchange's recording; clones share it, and the last one dropped ends it.
#[derive(Clone)]
pub(super) struct Recording(Arc<Mutex<Live>>);

struct Live {
    recorder: JsonlRecorder,
    started: Instant,
}

impl Drop for Live {
    fn drop(&mut self) {
        let duration_ms = (self.started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        self.recorder
            .event("end", json!({"duration_ms": duration_ms}));
    }
}

impl Recording {
    /// A recording of this exchange, when its resource has `record: true` and the connector a
    /// `recording.dir`. `mcp_session` (the upstream's session id) groups a session's exchanges.
    pub(super) fn start(
        x: &Exchange<'_, '_>,
        http_method: &str,
        summary: &str,
        mcp_session: Option<&str>,
    ) -> Option<Self> {
        if !x.resource.record {
            return None;
        }
        let identity = x.session.identity().to_owned();
        let session_id = match mcp_session {
            Some(upstream) => {
                let digest = Sha256::digest(format!("{identity}\0{upstream}").as_bytes());
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                format!("mcp-{hex}")
            }
            None => String::new(),
        };
        let meta = JsonlMeta {
            session_id,
            resource: x.resource.name.clone(),
            identity,
            protocol: "mcp",
            summary: Some(format!("{http_method} {summary}")),
        };
        match x.conn.gate.recordings.start_jsonl(meta) {
            Ok(Some(mut recorder)) => {
                recorder.event(
                    "exchange",
                    json!({"http_method": http_method, "client": x.session.parties.client.as_ref()}),
                );
                Some(Self(Arc::new(Mutex::new(Live {
                    recorder,
                    started: Instant::now(),
                }))))
            }
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, resource = %x.resource.name, "cannot record this MCP exchange");
                None
            }
        }
    }

    pub(super) fn event(&self, kind: &str, fields: Json) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recorder
            .event(kind, fields);
    }

    /// A client message and its decision; its arguments masked with `masks`.
    pub(super) fn request(
        &self,
        m: &Message,
        refusal: Option<&str>,
        masks: &[Mask],
        key: Option<&MaskingKey>,
    ) {
        let mut params = m.params.clone();
        if let Some(arguments) = params.get_mut("arguments")
            && mask_json(arguments, masks, key).is_err()
        {
            // A hash mask without a key: keep nothing of the arguments.
            *arguments = Json::String("***".into());
        }
        let mut fields = json!({
            "decision": if refusal.is_some() { "block" } else { "forward" },
            "method": m.method,
            "params": params,
        });
        if let Some(id) = &m.id {
            fields["id"] = id.clone();
        }
        if m.is_response {
            fields["response"] = true.into();
        }
        if let Some(reason) = refusal {
            fields["reason"] = reason.into();
        }
        self.event("request", fields);
    }
}
