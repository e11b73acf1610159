//! One MCP POST/GET/DELETE: session id, JSON-RPC decisions per message,
//! forwarding, and enforcement of what comes back (JSON or SSE).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use gate_policy::mask::MaskingKey;
use gate_policy::{Action, GrantInfo, HttpInfo, McpClient, McpInfo, PolicyInput, Verdict};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value as Json;

use super::message::{self, Message, Routing, codes};
use super::pins::ListCheck;
use super::results;
use super::sessions::Declared;
use crate::audit::McpAudit;
use crate::protocols::http::Body;
use crate::protocols::http::enforce::{StreamKind, Transformed, media_type};
use crate::protocols::http::error::{HttpError, full};
use crate::protocols::http::proxy::{Exchange, collect, header_text};
use crate::protocols::http::records::{Records, Transform};
use crate::protocols::http::request::{self, Forwarding};
use crate::session::{AuditId, AuditText, Decision};

const SESSION_HEADER: &str = "mcp-session-id";

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
    let session = match header_text(request.headers(), SESSION_HEADER) {
        Some(presented) => Some(
            key.unwrap(x.session.identity(), &presented)
                .ok_or_else(|| {
                    HttpError::NotFound(
                        "unknown MCP session: this Mcp-Session-Id was not issued to you".into(),
                    )
                })?,
        ),
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
    if calls.iter().any(|c| c.refusal.is_some()) {
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
        return Ok(finish(x, &calls, reply));
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
        Err(error) => return Ok(finish(x, &calls, error.into_response())),
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
    let reply = respond(x, &view, &calls, opened_by.as_ref(), response)
        .await
        .unwrap_or_else(HttpError::into_response);
    Ok(finish(x, &calls, reply))
}

/// One decided message.
struct Call {
    id: Option<Json>,
    info: McpInfo,
    audit: AuditId,
    /// What its audit events say of it.
    text: Arc<str>,
    details: Arc<McpAudit>,
    refusal: Option<String>,
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

fn input(view: &HttpInfo, info: &McpInfo) -> PolicyInput {
    PolicyInput {
        http: Some(view.clone()),
        mcp: Some(info.clone()),
        ..Default::default()
    }
}

/// What each answered request's response gets: its verdict, method and grant.
#[derive(Clone)]
struct Plan {
    method: String,
    verdict: Arc<Verdict>,
}

/// Enforce `post_request` on the upstream's answer.
async fn respond(
    x: &Exchange<'_, '_>,
    view: &HttpInfo,
    calls: &[Call],
    opened_by: Option<&Declared>,
    response: Response<Incoming>,
) -> Result<Response<Body>, HttpError> {
    let gate = &x.conn.gate;
    let status = response.status();
    let media = media_type(header_text(response.headers(), header::CONTENT_TYPE).as_deref());
    let mut plans = HashMap::new();
    for call in calls {
        let Some(id) = &call.id else { continue };
        let verdict = x.judge_response(
            input(view, &call.info),
            status,
            response.headers(),
            media.clone(),
            call.text.clone(),
            Some(call.details.clone()),
        );
        plans.insert(
            id.to_string(),
            Plan {
                method: call.info.method.clone(),
                verdict,
            },
        );
    }
    let (mut parts, incoming) = response.into_parts();
    request::strip_hop_by_hop(&mut parts.headers);
    if let Some(upstream_id) = header_text(&parts.headers, SESSION_HEADER)
        && let Ok(id) = HeaderValue::from_str(&gate.protocols.mcp.key(gate).wrap(
            x.session.identity(),
            &upstream_id,
            opened_by,
        ))
    {
        parts.headers.insert(SESSION_HEADER, id);
    }
    let enforce = Enforce {
        plans: Arc::new(plans),
        grant: x.session.grant.clone(),
        key: gate.masking_key.clone(),
        pins: x.resource.pin_tools.then(|| ListCheck {
            gate: Arc::clone(gate),
            resource: x.resource.name.clone(),
            parties: x.session.parties.clone(),
        }),
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
                enforce.document(&raw)?
            };
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
            full(Bytes::from(out))
        }
        Some("text/event-stream") => {
            parts.headers.remove(header::CONTENT_LENGTH);
            let each: Transform = Arc::new(move |doc: &[u8]| {
                enforce.document(doc).map(|out| Transformed::Keep(out, 0))
            });
            Records::body(
                incoming,
                StreamKind::Events,
                each,
                usize::try_from(x.resource.max_body_bytes).unwrap_or(usize::MAX),
            )
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

/// The enforcement of one POST's responses, owned so a stream can carry it.
struct Enforce {
    plans: Arc<HashMap<String, Plan>>,
    grant: Option<GrantInfo>,
    key: Option<MaskingKey>,
    /// `pin_tools`: `tools/list` results checked against the pins.
    pins: Option<ListCheck>,
}

impl Enforce {
    fn transforms(&self) -> bool {
        self.grant.is_some()
            || self.pins.is_some()
            || self.plans.values().any(|p| !p.verdict.masks.is_empty())
    }

    /// One JSON-RPC message or batch of them, enforced.
    fn document(&self, raw: &[u8]) -> Result<Vec<u8>, HttpError> {
        let mut doc: Json = serde_json::from_slice(raw).map_err(|e| {
            HttpError::ResponseRefused(format!(
                "the MCP server sent a message that is not JSON ({e})"
            ))
        })?;
        match &mut doc {
            Json::Array(items) => items.iter_mut().for_each(|m| self.message(m)),
            one => self.message(one),
        }
        serde_json::to_vec(&doc)
            .map_err(|e| HttpError::Internal(format!("cannot encode the response: {e}")))
    }

    fn message(&self, m: &mut Json) {
        // Server-to-client requests and notifications pass as they are.
        if m.get("method").is_some() {
            return;
        }
        let id = m.get("id").cloned().unwrap_or(Json::Null);
        let Some(plan) = self.plans.get(&id.to_string()) else {
            return;
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
fn finish(x: &Exchange<'_, '_>, calls: &[Call], reply: Response<Body>) -> Response<Body> {
    let status = reply.status().as_u16();
    for call in calls {
        x.session.set_response(call.audit, status, 0);
        x.session.complete(call.audit, x.started.elapsed());
    }
    x.session.record_duration(x.started);
    x.session.flush();
    reply
}
