//! One MCP POST/GET/DELETE: session id, JSON-RPC decisions per message,
//! forwarding, and enforcement of what comes back (JSON or SSE).

use std::sync::Arc;

use bytes::Bytes;
use gate_policy::{HttpInfo, McpClient, McpInfo, PolicyInput};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::Value as Json;

use super::message::{self, Message, Routing, codes};
use super::recorded::Recording;
use super::respond::{Answered, record_requests, respond};
use super::results;
use super::sessions::Declared;
use crate::audit::McpAudit;
use crate::protocols::http::Body;
use crate::protocols::http::error::{HttpError, full};
use crate::protocols::http::proxy::{Exchange, collect, header_text};
use crate::protocols::http::request::{self, Forwarding};
use crate::session::{AuditId, AuditText, Decision};

pub(super) const SESSION_HEADER: &str = "mcp-session-id";

/// Longest `User-Agent` kept for policies and audit (longer ones are cut).
const MAX_USER_AGENT: usize = 256;

/// Serve one request to an MCP resource.
pub(crate) async fn run(
    x: &Exchange<'_, '_>,
    request: Request<Incoming>,
    traceparent: Option<&str>,
) -> Result<Response<Body>, HttpError> {
    let endpoint = x.resource.endpoint_path.as_deref().unwrap_or("/mcp");
    if request.uri().path() != endpoint {
        return Err(HttpError::NotFound(format!(
            "the MCP endpoint is {endpoint}"
        )));
    }
    let gate = &x.conn.gate;
    let key = gate.protocols.mcp.key(gate);
    // In a session, the client is what its `initialize` declared (signed
    // into the session id); a later message cannot claim to be another.
    let bound = bound_to(x);
    let session = match header_text(request.headers(), SESSION_HEADER) {
        Some(presented) => Some(key.unwrap(&bound, &presented).ok_or_else(|| {
            HttpError::NotFound(
                "unknown MCP session: this Mcp-Session-Id was not issued to you, or the access \
                 grant it was opened under ended; initialize a new session"
                    .into(),
            )
        })?),
        None => None,
    };
    let (upstream_session, session_client) = match session {
        Some((upstream, client)) => (Some(upstream), Some(client)),
        None => (None, None),
    };
    let user_agent = header_text(request.headers(), header::USER_AGENT)
        .map(|ua| ua.chars().take(MAX_USER_AGENT).collect::<String>());
    let provenance = |declared: Option<Declared>| {
        let (name, version) = declared.map_or((None, None), |(n, v)| (Some(n), Some(v)));
        McpClient {
            name,
            version: version.filter(|v| !v.is_empty()),
            user_agent: user_agent.clone(),
        }
    };
    let (mut parts, incoming) = request.into_parts();
    let view = request::policy_view(
        &parts.method,
        &parts.uri,
        &parts.headers,
        x.host.clone(),
        None,
    );
    let body = match parts.method {
        Method::POST => {
            let limit = x.resource.max_body_bytes;
            collect(incoming, limit).await.map_err(|too_big| {
                if too_big {
                    HttpError::PayloadTooLarge(limit)
                } else {
                    HttpError::BadRequest("the request body could not be read".into())
                }
            })?
        }
        Method::GET | Method::DELETE => Bytes::new(),
        _ => {
            return Err(HttpError::BadRequest(
                "an MCP endpoint takes POST, GET and DELETE".into(),
            ));
        }
    };
    let messages = if parts.method == Method::POST {
        let parsed = message::parse(&body).and_then(|parsed| {
            let text = |name| header_text(&parts.headers, name);
            let (version, method, name) = (
                text("mcp-protocol-version"),
                text("mcp-method"),
                text("mcp-name"),
            );
            let routing = Routing {
                version: version.as_deref(),
                method: method.as_deref(),
                name: name.as_deref(),
            };
            message::check_routing_headers(&parsed, routing).map(|()| parsed)
        });
        match parsed {
            Ok(parsed) => Some(parsed),
            Err((code, reason)) => {
                return Ok(rpc_reply(
                    StatusCode::BAD_REQUEST,
                    message::error(None, code, &reason),
                ));
            }
        }
    } else {
        None
    };
    let stream_info = McpInfo {
        method: if parts.method == Method::GET {
            "stream/open"
        } else {
            "session/end"
        }
        .into(),
        operation: Some("lifecycle".into()),
        client: Some(provenance(session_client.clone().flatten())),
        ..Default::default()
    };
    let calls: Vec<Call> = match &messages {
        Some(body) => body
            .messages
            .iter()
            .map(|m| {
                let declared = match &session_client {
                    Some(client) => client.clone(),
                    None => message::declared_client(m),
                };
                decide(x, &view, m, provenance(declared), traceparent)
            })
            .collect(),
        None => vec![Call::of(x, &view, None, stream_info, traceparent)],
    };
    let batch = messages.as_ref().is_some_and(|b| b.batch);
    let summary: Vec<&str> = calls.iter().map(|c| &*c.text).collect();
    let recording = Recording::start(
        x,
        parts.method.as_str(),
        &summary.join(", "),
        upstream_session.as_deref(),
    );
    if calls.iter().any(|c| c.refusal.is_some()) {
        if let Some(recording) = &recording {
            record_requests(recording, messages.as_ref(), &calls, None, None);
        }
        // Nothing is forwarded: each request gets its refusal (or, in a batch,
        // the reason the batch was refused).
        let errors: Vec<Json> = calls
            .iter()
            .filter(|c| c.id.is_some())
            .map(|c| {
                let reason = c
                    .refusal
                    .as_deref()
                    .unwrap_or("refused: another request in this batch was refused");
                message::error(c.id.as_ref(), codes::REFUSED, reason)
            })
            .collect();
        if let Some(recording) = &recording {
            recording.event("response", serde_json::json!({"message": &errors}));
        }
        let reply = match (errors.len(), batch) {
            (0, _) => Response::builder()
                .status(StatusCode::ACCEPTED)
                .body(full(Bytes::new()))
                .unwrap_or_else(|_| Response::new(full(Bytes::new()))),
            (_, true) => rpc_reply(StatusCode::OK, Json::Array(errors)),
            _ => rpc_reply(
                StatusCode::OK,
                errors.into_iter().next().unwrap_or(Json::Null),
            ),
        };
        return Ok(finish(x, &calls, reply, recording.as_ref()));
    }
    let upstream = gate
        .protocols
        .http
        .upstream(x.resource)
        .map_err(|e| HttpError::Internal(format!("upstream TLS: {e}")))?;
    let target = match parts.uri.query() {
        Some(q) => format!("{endpoint}?{q}"),
        None => endpoint.to_owned(),
    };
    let mut headers = std::mem::take(&mut parts.headers);
    request::upstream_headers(
        &mut headers,
        &Forwarding {
            resource: x.resource,
            client: &x.conn.client,
            trusted: x.trusted,
            tls: x.conn.tls,
            host: x.host.as_deref(),
            upgrade: None,
        },
    );
    headers.remove(SESSION_HEADER);
    if let Some(id) = upstream_session
        .as_deref()
        .and_then(|id| HeaderValue::from_str(id).ok())
    {
        headers.insert(SESSION_HEADER, id);
    }
    if let Ok(authority) = HeaderValue::from_str(&upstream.authority) {
        headers.insert(header::HOST, authority);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let mut forward = Request::builder()
        .method(parts.method.clone())
        .uri(upstream.uri(&target)?);
    if let Some(h) = forward.headers_mut() {
        *h = headers;
    }
    let forward = forward
        .body(full(body))
        .map_err(|e| HttpError::BadRequest(format!("the request cannot be forwarded: {e}")))?;
    let response = match upstream.send(forward).await {
        Ok(response) => response,
        Err(error) => {
            if let Some(recording) = &recording {
                record_requests(recording, messages.as_ref(), &calls, None, None);
            }
            return Ok(finish(x, &calls, error.into_response(), recording.as_ref()));
        }
    };
    // A session the upstream opens now is bound to what this POST's
    // `initialize` declared (or, in a session, to what it already carried).
    let opened_by = match (&session_client, &messages) {
        (Some(client), _) => client.clone(),
        (None, Some(body)) => body
            .messages
            .iter()
            .find(|m| m.method == "initialize")
            .and_then(message::declared_client),
        (None, None) => None,
    };
    let answered = Answered {
        calls: &calls,
        messages: messages.as_ref(),
        opened_by: opened_by.as_ref(),
        bound: &bound,
        recording: recording.clone(),
    };
    let reply = respond(x, &view, answered, response)
        .await
        .unwrap_or_else(HttpError::into_response);
    Ok(finish(x, &calls, reply, recording.as_ref()))
}

/// One decided message.
pub(super) struct Call {
    pub(super) id: Option<Json>,
    pub(super) info: McpInfo,
    audit: AuditId,
    /// What its audit events say of it.
    pub(super) text: Arc<str>,
    pub(super) details: Arc<McpAudit>,
    pub(super) refusal: Option<String>,
}

impl Call {
    fn of(
        x: &Exchange<'_, '_>,
        view: &HttpInfo,
        id: Option<Json>,
        info: McpInfo,
        traceparent: Option<&str>,
    ) -> Self {
        let grant_refusal = match (info.operation.as_deref(), info.target.as_deref()) {
            (Some(op @ ("tool" | "resource" | "prompt")), Some(target)) => {
                results::outside_grant(x.session.grant.as_ref(), op, target)
            }
            _ => None,
        }
        .or_else(|| pinned_refusal(x, &info));
        let text: Arc<str> = match &info.target {
            Some(target) => format!("{} {target}", info.method).into(),
            None => info.method.as_str().into(),
        };
        let decided = x.session.decide(
            input(view, &info),
            &info.method,
            AuditText::Text(text.clone()),
            "request refused by policy",
            traceparent,
        );
        let details = Arc::new(McpAudit {
            method: info.method.clone(),
            operation: info.operation.clone(),
            target: info.target.clone(),
            client: info.client.clone().unwrap_or_default(),
        });
        x.session.set_mcp(decided.audit, details.clone());
        let refusal = grant_refusal.or(match decided.decision {
            Decision::Forward => None,
            Decision::Block(reason) => Some(reason),
            Decision::Rewrite(_) => Some(
                "a policy tried to rewrite an MCP request; protocol mcp does not support rewrite"
                    .into(),
            ),
        });
        Self {
            id,
            info,
            audit: decided.audit,
            text,
            details,
            refusal,
        }
    }
}

/// A `tools/call` of a tool whose definition changed since it was pinned.
fn pinned_refusal(x: &Exchange<'_, '_>, info: &McpInfo) -> Option<String> {
    if !x.resource.pin_tools || info.method != "tools/call" {
        return None;
    }
    let tool = info.target.as_deref()?;
    x.conn
        .gate
        .protocols
        .mcp
        .pins
        .refusal(&x.resource.name, tool)
}

fn decide(
    x: &Exchange<'_, '_>,
    view: &HttpInfo,
    m: &Message,
    client: McpClient,
    traceparent: Option<&str>,
) -> Call {
    let id = (!m.is_response).then(|| m.id.clone()).flatten();
    let mut info = message::describe(m);
    info.client = Some(client);
    Call::of(x, view, id, info, traceparent)
}

pub(super) fn input(view: &HttpInfo, info: &McpInfo) -> PolicyInput {
    PolicyInput {
        http: Some(view.clone()),
        mcp: Some(info.clone()),
        ..Default::default()
    }
}

/// Who this caller's session ids are bound to: its identity and, when it holds one, its access
/// grant, so a session ends with the grant it was opened under.
fn bound_to(x: &Exchange<'_, '_>) -> String {
    match &x.session.grant {
        Some(grant) => format!("{}\0grant:{}", x.session.identity(), grant.id),
        None => x.session.identity().to_owned(),
    }
}

fn rpc_reply(status: StatusCode, body: Json) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Complete every call's audit event with the reply's status and timing.
fn finish(
    x: &Exchange<'_, '_>,
    calls: &[Call],
    reply: Response<Body>,
    recording: Option<&Recording>,
) -> Response<Body> {
    let status = reply.status().as_u16();
    if let Some(recording) = recording {
        let content_type = header_text(reply.headers(), header::CONTENT_TYPE);
        recording.event(
            "reply",
            serde_json::json!({"status": status, "content_type": content_type}),
        );
    }
    for call in calls {
        x.session.set_response(call.audit, status, 0);
        x.session.complete(call.audit, x.started.elapsed());
    }
    x.session.record_duration(x.started);
    x.session.flush();
    reply
}
