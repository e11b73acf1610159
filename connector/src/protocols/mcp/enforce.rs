//! What comes back from the upstream, enforced message by message (a JSON body, or each event of
//! an SSE stream): responses to the client's requests get their `post_request` verdict (refusal,
//! list narrowing, pins, masks); server-to-client requests and notifications, and responses
//! nobody in this exchange asked for (a GET stream's), get the stream's masks. What the client is
//! sent is what a recording keeps.

use std::collections::HashMap;
use std::sync::Arc;

use gate_policy::json::mask_json;
use gate_policy::mask::MaskingKey;
use gate_policy::{Action, GrantInfo, Mask, Verdict};
use serde_json::Value as Json;

use super::message::{self, codes};
use super::pins::ListCheck;
use super::recorded::Recording;
use super::results;
use crate::protocols::http::error::HttpError;

/// What each answered request's response gets: its verdict and method.
#[derive(Clone)]
pub(super) struct Plan {
    pub(super) method: String,
    pub(super) verdict: Arc<Verdict>,
}

/// The enforcement of one exchange's responses, owned so a stream can carry it.
pub(super) struct Enforce {
    /// By request id (its JSON text).
    pub(super) plans: HashMap<String, Plan>,
    /// The masks for messages no plan covers: every verdict's of this exchange (a GET stream:
    /// its `stream/open` verdict's).
    pub(super) stream_masks: Vec<Mask>,
    pub(super) grant: Option<GrantInfo>,
    pub(super) key: Option<MaskingKey>,
    /// `pin_tools`: `tools/list` results checked against the pins.
    pub(super) pins: Option<ListCheck>,
    pub(super) recording: Option<Recording>,
}

impl Enforce {
    pub(super) fn transforms(&self) -> bool {
        self.grant.is_some() || self.pins.is_some() || !self.stream_masks.is_empty()
    }

    /// One JSON-RPC message or batch of them, enforced; `None` when nothing of it may be sent
    /// (a server message that cannot be masked). `kind` names it in the recording.
    pub(super) fn document(&self, raw: &[u8], kind: &str) -> Result<Option<Vec<u8>>, HttpError> {
        let mut doc: Json = serde_json::from_slice(raw).map_err(|e| {
            HttpError::ResponseRefused(format!(
                "the MCP server sent a message that is not JSON ({e})"
            ))
        })?;
        let keep = match &mut doc {
            Json::Array(items) => {
                items.retain_mut(|m| self.message(m));
                !items.is_empty()
            }
            one => self.message(one),
        };
        if let Some(recording) = &self.recording {
            let fields = if keep {
                serde_json::json!({"message": &doc})
            } else {
                serde_json::json!({"dropped": "a server message that could not be masked"})
            };
            recording.event(kind, fields);
        }
        if !keep {
            return Ok(None);
        }
        serde_json::to_vec(&doc)
            .map(Some)
            .map_err(|e| HttpError::Internal(format!("cannot encode the response: {e}")))
    }

    /// Enforce one message in place; false when it must not be sent at all.
    fn message(&self, m: &mut Json) -> bool {
        if m.get("method").is_some() {
            return self.server_message(m);
        }
        let id = m.get("id").cloned().unwrap_or(Json::Null);
        let Some(plan) = self.plans.get(&id.to_string()) else {
            // A response this exchange did not ask for (a GET stream's, after a resumption).
            let failed = m.get_mut("result").and_then(|result| {
                results::mask_result(result, &self.stream_masks, self.key.as_ref()).err()
            });
            if let Some(reason) = failed {
                *m = message::error(Some(&id), codes::RESPONSE_REFUSED, &reason);
            }
            return true;
        };
        let verdict = &plan.verdict;
        let refusal = if verdict.is_blocked() {
            Some((
                codes::REFUSED,
                verdict
                    .reason
                    .clone()
                    .unwrap_or_else(|| "response refused by policy".into()),
            ))
        } else if !verdict.filters.is_empty() || verdict.action == Action::Rewrite {
            Some((codes::RESPONSE_REFUSED, "a policy returned filters or a rewrite for an MCP response; protocol mcp supports only masks at post_request".to_owned()))
        } else if let Some(result) = m.get_mut("result") {
            results::filter_list(&plan.method, result, self.grant.as_ref());
            if plan.method == "tools/list"
                && let Some(pins) = &self.pins
            {
                pins.list(result);
            }
            results::mask_result(result, &verdict.masks, self.key.as_ref())
                .err()
                .map(|reason| (codes::RESPONSE_REFUSED, reason))
        } else {
            None
        };
        if let Some((code, reason)) = refusal {
            *m = message::error(Some(&id), code, &reason);
        }
        true
    }

    /// A server-to-client request or notification: its `params` masked like a result (fields
    /// anywhere by name, JSON inside `text` items); one that cannot be masked is not sent.
    fn server_message(&self, m: &mut Json) -> bool {
        if self.stream_masks.is_empty() {
            return true;
        }
        let Some(params) = m.get_mut("params") else {
            return true;
        };
        let masked = mask_json(params, &self.stream_masks, self.key.as_ref())
            .map_err(|_| {
                "a policy masks with strategy hash, but no masking.hash_key is configured"
                    .to_owned()
            })
            .and_then(|()| results::mask_result(params, &self.stream_masks, self.key.as_ref()));
        match masked {
            Ok(()) => true,
            Err(reason) => {
                let method = m.get("method").and_then(Json::as_str).unwrap_or("?");
                tracing::warn!(%method, %reason, "an MCP server message was not sent: it could not be masked");
                false
            }
        }
    }
}
