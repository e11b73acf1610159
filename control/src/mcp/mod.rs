//! The control plane's own MCP endpoint at `/mcp` (Streamable HTTP, JSON responses): read-only
//! tools over the `/api/v1` operations, with the same Bearer keys and `X-Org-ID` scoping, in both
//! protocol generations — the handshake era (`initialize`, a signed `Mcp-Session-Id`) and the
//! stateless 2026-07-28 revision (`server/discover`, routing headers checked against the body).
//!
//! ```text
//! POST /mcp ─ authenticate (401 / 403 / 400) ─ Content-Type (415), Accept (406)
//!   ─ message::parse (-32700, -32600) ─ routing headers given once (-32020)
//!   ─ Mcp-Session-Id? yes ─ handshake era: opened for this caller, else 404; its revision =
//!   │                       MCP-Protocol-Version when sent (400); batches for 2024-11-05 and 2025-03-26
//!   └ no ─ initialize ─ a new session id for this caller and revision
//!        ─ 2026-07-28 (header or params._meta) ─ envelope (-32602), routing headers (-32020),
//!        │                                       revision served (-32022)
//!        └ else 400: initialize first, or use the 2026-07-28 envelope
//!   ─ message::check_routing_headers (-32020) ─ methods::answer per request; none: 202
//! GET, DELETE /mcp ─ 405: no server-initiated stream, and sessions are signed ids kept nowhere
//! ```

mod error;
mod methods;
pub mod tools;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gate_mcp::message::{
    self, Body, CLIENT_CAPABILITIES_META, Declared, Message, PROTOCOL_VERSION_META, Routing, codes,
};
use gate_mcp::{HANDSHAKE_VERSIONS, NAME_BEARING_METHODS, STATELESS_VERSIONS};
use serde_json::{Value, json};

use crate::auth::{Caller, Principal};
use crate::error::Code;
use crate::service::ControlPlane;
pub use error::McpError;
use methods::Era;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const METHOD_HEADER: &str = "mcp-method";
const NAME_HEADER: &str = "mcp-name";

/// Handshake-era revisions that allow JSON-RPC batches (2025-06-18 removed them).
const BATCH_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26"];

/// `/mcp`, every HTTP method.
pub async fn serve(
    State(cp): State<Arc<ControlPlane>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        let mut response = McpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            codes::INVALID_REQUEST,
            format!(
                "{method} is not served on /mcp: there is no server-initiated stream, and sessions need no ending (POST only)"
            ),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    post(&cp, &headers, &body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

async fn authenticate(cp: &ControlPlane, headers: &HeaderMap) -> Result<Caller, McpError> {
    let authorization = header_text(headers, header::AUTHORIZATION.as_str());
    let org = header_text(headers, "x-org-id");
    cp.authenticate(authorization, org, "Mcp")
        .await
        .map_err(|e| {
            cp.metrics.request("mcp", "Mcp", e.code.as_str());
            let mut refused = McpError::from_api(e.clone());
            // An unknown X-Org-ID is the request's fault; a 404 would tell handshake-era
            // clients their session ended.
            if e.code == Code::NotFound {
                refused.status = StatusCode::BAD_REQUEST;
                refused.code = codes::INVALID_REQUEST;
            }
            refused
        })
}

/// Who a session id is given to: the key (or system caller) and the organization it acts in.
fn binding(caller: &Caller) -> String {
    let who = match &caller.principal {
        Principal::System => "system".to_owned(),
        Principal::Insecure => "insecure".to_owned(),
        Principal::Key { id, .. } => format!("key:{id}"),
        Principal::Person { subject, .. } => format!("oidc:{subject}"),
    };
    format!("{who}@{}", caller.org_id)
}

/// `Content-Type: application/json`, and an `Accept` (when sent) that takes JSON.
fn content_types(headers: &HeaderMap) -> Result<(), McpError> {
    let given = header_text(headers, header::CONTENT_TYPE.as_str());
    let is_json = given.is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    });
    if !is_json {
        return Err(McpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::INVALID_REQUEST,
            format!(
                "expected Content-Type: application/json, got {}",
                given.unwrap_or("none")
            ),
        ));
    }
    if let Some(accept) = header_text(headers, header::ACCEPT.as_str()) {
        let takes_json = accept.split(',').any(|item| {
            let kind = item.split(';').next().unwrap_or("").trim();
            ["application/json", "application/*", "*/*"]
                .iter()
                .any(|k| kind.eq_ignore_ascii_case(k))
        });
        if !takes_json {
            return Err(McpError::new(
                StatusCode::NOT_ACCEPTABLE,
                codes::INVALID_REQUEST,
                format!("this endpoint answers application/json, which Accept: {accept} refuses"),
            ));
        }
    }
    Ok(())
}

/// A routing header sent twice could be read either way: refused.
fn routing_headers_once(headers: &HeaderMap) -> Result<(), McpError> {
    for name in [VERSION_HEADER, METHOD_HEADER, NAME_HEADER, SESSION_HEADER] {
        if headers.get_all(name).iter().count() > 1 {
            return Err(McpError::bad_request(
                codes::HEADER_MISMATCH,
                format!("the {name} header appears more than once"),
            ));
        }
    }
    Ok(())
}

fn declared_version(message: &Message) -> Option<&Value> {
    message.params.get("_meta")?.get(PROTOCOL_VERSION_META)
}

fn unsupported(requested: &str) -> McpError {
    let supported: Vec<&str> = HANDSHAKE_VERSIONS
        .iter()
        .chain(STATELESS_VERSIONS)
        .copied()
        .collect();
    McpError::bad_request(
        codes::UNSUPPORTED_PROTOCOL_VERSION,
        format!(
            "protocol revision {requested:?} is not served; stateless: {}; with initialize: {}",
            STATELESS_VERSIONS.join(", "),
            HANDSHAKE_VERSIONS.join(", ")
        ),
    )
    .with_data(json!({"supported": supported, "requested": requested}))
}

fn not_a_batch() -> McpError {
    McpError::bad_request(
        codes::INVALID_REQUEST,
        "a 2026-07-28 POST carries one JSON-RPC message, not a batch",
    )
}

/// The 2026-07-28 checks of a POST without a session: one message; for a request, the
/// `params._meta` envelope and routing headers that say what the body says; a served revision.
fn stateless(body: &Body, routing: Routing<'_>) -> Result<&'static str, McpError> {
    let [message] = body.messages.as_slice() else {
        return Err(not_a_batch());
    };
    if body.batch {
        return Err(not_a_batch());
    }
    if message.is_response {
        return Err(McpError::bad_request(
            codes::INVALID_REQUEST,
            "this server sends no requests, so there is nothing to respond to",
        ));
    }
    let served = |version: &str| STATELESS_VERSIONS.iter().find(|v| **v == version).copied();
    if message.id.is_none() {
        let version = routing
            .version
            .or_else(|| declared_version(message).and_then(Value::as_str))
            .unwrap_or("");
        return served(version).ok_or_else(|| unsupported(version));
    }
    let meta = message.params.get("_meta").and_then(Value::as_object);
    let missing: Vec<&str> = [PROTOCOL_VERSION_META, CLIENT_CAPABILITIES_META]
        .into_iter()
        .filter(|key| !meta.is_some_and(|m| m.contains_key(*key)))
        .collect();
    if !missing.is_empty() {
        return Err(McpError::invalid_params(
            "params._meta",
            format!(
                "a 2026-07-28 request carries {}; missing: {}",
                [PROTOCOL_VERSION_META, CLIENT_CAPABILITIES_META].join(" and "),
                missing.join(", ")
            ),
        ));
    }
    let declared = declared_version(message)
        .and_then(Value::as_str)
        .ok_or_else(|| {
            McpError::invalid_params(
                &format!("params._meta[{PROTOCOL_VERSION_META:?}]"),
                "expected a protocol revision as a string",
            )
        })?;
    let needs = |header: &str, what: String| {
        McpError::bad_request(
            codes::HEADER_MISMATCH,
            format!("a 2026-07-28 request needs the {header} header ({what})"),
        )
    };
    if routing.version.is_none() {
        return Err(needs(
            "MCP-Protocol-Version",
            format!("the body declares {declared:?}"),
        ));
    }
    if routing.method.is_none() {
        return Err(needs(
            "Mcp-Method",
            format!("the body's method is {:?}", message.method),
        ));
    }
    if let Some((_, field)) = NAME_BEARING_METHODS
        .iter()
        .find(|(m, _)| *m == message.method)
        && let Some(named) = message.params.get(*field).and_then(Value::as_str)
        && routing.name.is_none()
    {
        return Err(needs("Mcp-Name", format!("the body names {named:?}")));
    }
    message::check_routing_headers(body, routing)
        .map_err(|(code, reason)| McpError::bad_request(code, reason))?;
    served(declared).ok_or_else(|| unsupported(declared))
}

/// The era of a POST, the client it declares, and for an `initialize` the new session's id.
fn classify(
    cp: &ControlPlane,
    caller: &Caller,
    body: &Body,
    routing: Routing<'_>,
    session: Option<&str>,
) -> Result<(Era, Option<String>), McpError> {
    let keys = cp.tokens.mcp_sessions();
    if let Some(presented) = session {
        let opened = keys
            .unwrap(&binding(caller), presented)
            .and_then(|(version, _)| HANDSHAKE_VERSIONS.iter().find(|v| **v == version).copied());
        let Some(version) = opened else {
            return Err(McpError::new(
                StatusCode::NOT_FOUND,
                codes::INVALID_REQUEST,
                "no such session for this key: send initialize without Mcp-Session-Id to start one",
            ));
        };
        if let Some(header) = routing.version
            && header != version
        {
            return Err(McpError::bad_request(
                codes::INVALID_REQUEST,
                format!(
                    "the MCP-Protocol-Version header says {header:?} but this session negotiated {version:?}"
                ),
            ));
        }
        if body.batch && !BATCH_VERSIONS.contains(&version) {
            return Err(McpError::bad_request(
                codes::INVALID_REQUEST,
                format!(
                    "revision {version} takes one JSON-RPC message per POST; batches were removed after 2025-03-26"
                ),
            ));
        }
        return Ok((Era::Handshake(version), None));
    }
    if let Some(init) = body.messages.iter().find(|m| m.method == "initialize") {
        if body.batch {
            return Err(McpError::bad_request(
                codes::INVALID_REQUEST,
                "initialize must be sent on its own, not in a batch",
            ));
        }
        let (version, _) = methods::initialize(&init.params)?;
        let client: Option<Declared> = message::declared_client(init);
        let id = keys.wrap(&binding(caller), version, client.as_ref());
        return Ok((Era::Handshake(version), Some(id)));
    }
    let modern = routing
        .version
        .is_some_and(|v| !HANDSHAKE_VERSIONS.contains(&v))
        || body.messages.iter().any(|m| declared_version(m).is_some());
    if modern {
        return Ok((Era::Stateless(stateless(body, routing)?), None));
    }
    Err(McpError::bad_request(
        codes::INVALID_REQUEST,
        "missing Mcp-Session-Id: send initialize first (revisions 2024-11-05 to 2025-11-25), or \
         send 2026-07-28 requests (MCP-Protocol-Version and Mcp-Method headers, params._meta)",
    ))
}

async fn post(cp: &ControlPlane, headers: &HeaderMap, body: &[u8]) -> Result<Response, McpError> {
    let caller = authenticate(cp, headers).await?;
    content_types(headers)?;
    let parsed =
        message::parse(body).map_err(|(code, reason)| McpError::bad_request(code, reason))?;
    // Refusals of a single request name its id.
    let single_id = match parsed.messages.as_slice() {
        [only] if !parsed.batch => only.id.clone(),
        _ => None,
    };
    let refuse = |e: McpError| e.into_response_for(single_id.as_ref());
    if let Err(e) = routing_headers_once(headers) {
        return Ok(refuse(e));
    }
    let routing = Routing {
        version: header_text(headers, VERSION_HEADER),
        method: header_text(headers, METHOD_HEADER),
        name: header_text(headers, NAME_HEADER),
    };
    let session = header_text(headers, SESSION_HEADER);
    let (era, new_session) = match classify(cp, &caller, &parsed, routing, session) {
        Ok(classified) => classified,
        Err(e) => return Ok(refuse(e)),
    };
    if matches!(era, Era::Handshake(_))
        && let Err((code, reason)) = message::check_routing_headers(&parsed, routing)
    {
        return Ok(refuse(McpError::bad_request(code, reason)));
    }
    let mut replies = Vec::new();
    let mut status = StatusCode::OK;
    for request in parsed
        .messages
        .iter()
        .filter(|m| m.id.is_some() && !m.is_response)
    {
        let reply = if request.method == "initialize" && new_session.is_some() {
            let (_, result) = match methods::initialize(&request.params) {
                Ok(settled) => settled,
                Err(e) => return Ok(refuse(e)),
            };
            message::response(request.id.as_ref().unwrap_or(&Value::Null), result)
        } else {
            match methods::answer(cp, &caller, era, request).await {
                Ok(reply) => reply,
                Err((reply, e)) => {
                    // 2026-07-28 gives errors an HTTP status; the handshake era answers 200.
                    if matches!(era, Era::Stateless(_)) && !parsed.batch {
                        status = e.status;
                    }
                    reply
                }
            }
        };
        replies.push(reply);
    }
    if replies.is_empty() {
        return Ok(StatusCode::ACCEPTED.into_response());
    }
    let body = if parsed.batch {
        Value::Array(replies)
    } else {
        replies.pop().unwrap_or(Value::Null)
    };
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(id) = new_session.and_then(|id| HeaderValue::from_str(&id).ok()) {
        response.headers_mut().insert(SESSION_HEADER, id);
    }
    Ok(response)
}
