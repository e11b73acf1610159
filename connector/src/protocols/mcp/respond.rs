//! The upstream's answer to one MCP exchange: `post_request` decided per request, the session id
//! it opens wrapped for the caller, the body (JSON, or SSE event by event) enforced and recorded,
//! and a stream held under an access grant closed when the grant ends.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use gate_policy::HttpInfo;
use gate_policy::mask::MaskingKey;
use http::Response;
use http::header::{self, HeaderValue};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::enforce::{Enforce, Plan};
use super::exchange::{Call, SESSION_HEADER, input};
use super::grant_end;
use super::message;
use super::pins::ListCheck;
use super::recorded::Recording;
use super::sessions::Declared;
use crate::protocols::http::Body;
use crate::protocols::http::enforce::{StreamKind, Transformed, media_type};
use crate::protocols::http::error::{HttpError, full};
use crate::protocols::http::proxy::{Exchange, collect, header_text};
use crate::protocols::http::records::{Records, Transform};
use crate::protocols::http::request;

/// What `respond` needs of the exchange besides its parts.
pub(super) struct Answered<'c> {
    pub(super) calls: &'c [Call],
    pub(super) messages: Option<&'c message::Body>,
    /// What the session the upstream opens now is bound to (the initialize's clientInfo).
    pub(super) opened_by: Option<&'c Declared>,
    /// Who session ids are bound to (`bound_to`).
    pub(super) bound: &'c str,
    pub(super) recording: Option<Recording>,
}

/// Enforce `post_request` on the upstream's answer.
pub(super) async fn respond(
    x: &Exchange<'_, '_>,
    view: &HttpInfo,
    answered: Answered<'_>,
    response: Response<Incoming>,
) -> Result<Response<Body>, HttpError> {
    let gate = &x.conn.gate;
    let status = response.status();
    let media = media_type(header_text(response.headers(), header::CONTENT_TYPE).as_deref());
    let mut plans = HashMap::new();
    let mut stream_masks = Vec::new();
    for call in answered.calls {
        // Requests get a verdict for their response; a GET stream one for what it carries.
        if call.id.is_none() && answered.messages.is_some() {
            continue;
        }
        let verdict = x.judge_response(
            input(view, &call.info),
            status,
            response.headers(),
            media.clone(),
            call.text.clone(),
            Some(call.details.clone()),
        );
        stream_masks.extend(verdict.masks.iter().cloned());
        if let Some(id) = &call.id {
            let method = call.info.method.clone();
            plans.insert(id.to_string(), Plan { method, verdict });
        }
    }
    if let Some(recording) = &answered.recording {
        record_requests(
            recording,
            answered.messages,
            answered.calls,
            Some(&stream_masks),
            gate.masking_key.as_ref(),
        );
    }
    let (mut parts, incoming) = response.into_parts();
    request::strip_hop_by_hop(&mut parts.headers);
    if let Some(upstream_id) = header_text(&parts.headers, SESSION_HEADER)
        && let Ok(id) = HeaderValue::from_str(&gate.protocols.mcp.key(gate).wrap(
            answered.bound,
            &upstream_id,
            answered.opened_by,
        ))
    {
        parts.headers.insert(SESSION_HEADER, id);
    }
    let enforce = Enforce {
        plans,
        stream_masks,
        grant: x.session.grant.clone(),
        key: gate.masking_key.clone(),
        pins: x.resource.pin_tools.then(|| ListCheck {
            gate: Arc::clone(gate),
            resource: x.resource.name.clone(),
            parties: x.session.parties.clone(),
        }),
        recording: answered.recording.clone(),
    };
    let body = match media.as_deref() {
        Some("application/json") => {
            let raw = collect(incoming, x.resource.max_body_bytes)
                .await
                .map_err(|_| {
                    HttpError::ResponseRefused(
                        "the MCP response is over max_body_bytes or broke off".into(),
                    )
                })?;
            let out = if raw.is_empty() {
                raw.to_vec()
            } else {
                enforce.document(&raw, "response")?.ok_or_else(|| {
                    HttpError::ResponseRefused(
                        "the MCP server's message could not be masked".into(),
                    )
                })?
            };
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
            full(Bytes::from(out))
        }
        Some("text/event-stream") => {
            parts.headers.remove(header::CONTENT_LENGTH);
            let each: Transform = Arc::new(move |doc: &[u8]| {
                Ok(match enforce.document(doc, "event")? {
                    Some(out) => Transformed::Keep(out, 0),
                    None => Transformed::Drop,
                })
            });
            let events = Records::body(
                incoming,
                StreamKind::Events,
                each,
                usize::try_from(x.resource.max_body_bytes).unwrap_or(usize::MAX),
            );
            match &x.session.grant {
                // A stream held under a grant is closed when the grant ends.
                Some(_) => {
                    let recording = answered.recording.clone();
                    grant_end::until_grant_ends(
                        events,
                        Arc::clone(gate),
                        x.resource.name.clone(),
                        x.resource.require_access_grant,
                        x.session.identity().to_owned(),
                        move |reason| {
                            if let Some(recording) = recording {
                                recording
                                    .event("grant_ended", serde_json::json!({"reason": reason}));
                            }
                        },
                    )
                }
                None => events,
            }
        }
        _ if enforce.transforms() => {
            return Err(HttpError::ResponseRefused(format!(
                "a policy masks this MCP response, but it is {}, not JSON or SSE",
                media.as_deref().unwrap_or("untyped")
            )));
        }
        _ => incoming.map_err(Into::into).boxed(),
    };
    Ok(Response::from_parts(parts, body))
}

/// Record the exchange's client messages (a GET or DELETE: its one lifecycle call) with their
/// decisions, arguments under `masks`.
pub(super) fn record_requests(
    recording: &Recording,
    messages: Option<&message::Body>,
    calls: &[Call],
    masks: Option<&[gate_policy::Mask]>,
    key: Option<&MaskingKey>,
) {
    let masks = masks.unwrap_or_default();
    match messages {
        Some(body) => {
            for (m, call) in body.messages.iter().zip(calls) {
                recording.request(m, call.refusal.as_deref(), masks, key);
            }
        }
        None => {
            for call in calls {
                let refused = call.refusal.as_deref();
                recording.event(
                    "request",
                    serde_json::json!({
                        "method": call.info.method,
                        "decision": if refused.is_some() { "block" } else { "forward" },
                        "reason": refused,
                    }),
                );
            }
        }
    }
}
