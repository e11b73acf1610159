//! What each JSON-RPC method answers, in either generation: `initialize` (handshake era),
//! `server/discover` (2026-07-28), `ping`, `tools/list` and `tools/call`; everything else is
//! `-32601`. 2026-07-28 results carry `resultType`, the server's identity in `_meta`, and cache
//! hints on lists.

use gate_mcp::message::{self, Message, SERVER_INFO_META, codes};
use gate_mcp::{HANDSHAKE_VERSIONS, STATELESS_VERSIONS};
use serde_json::{Value, json};

use super::error::McpError;
use super::tools;
use crate::auth::Caller;
use crate::service::ControlPlane;

/// How long a client may keep the tool list and the discovery answer: they change only with
/// the control plane's version.
const LIST_TTL_MS: u64 = 300_000;

/// The protocol generation a request is served in, with its revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Era {
    /// Negotiated by `initialize`, carried by the session id.
    Handshake(&'static str),
    /// Stateless: every request says its revision.
    Stateless(&'static str),
}

const INSTRUCTIONS: &str = "Gate's control plane, read-only: list resources, policies, connectors \
and access requests, query the audit log, and simulate a policy against an input. Everything is \
scoped to the organization of the API key in use.";

fn server_info() -> Value {
    json!({"name": "gate-control", "version": env!("CARGO_PKG_VERSION")})
}

fn capabilities() -> Value {
    json!({"tools": {"listChanged": false}})
}

/// The revision to answer an `initialize` asking for `requested`: the same when served, else
/// the newest handshake revision (the client then decides whether it can speak it).
pub(crate) fn negotiate(requested: &str) -> &'static str {
    HANDSHAKE_VERSIONS
        .iter()
        .find(|v| **v == requested)
        .or(HANDSHAKE_VERSIONS.last())
        .copied()
        .unwrap_or("2025-11-25")
}

/// The `initialize` result for `params`, with the revision it settles on.
pub(crate) fn initialize(params: &Value) -> Result<(&'static str, Value), McpError> {
    let requested = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            McpError::invalid_params(
                "params.protocolVersion",
                format!(
                    "expected a protocol revision as a string, one of {}",
                    HANDSHAKE_VERSIONS.join(", ")
                ),
            )
        })?;
    let version = negotiate(requested);
    let result = json!({
        "protocolVersion": version,
        "capabilities": capabilities(),
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
    });
    Ok((version, result))
}

/// Finish a result for its era: 2026-07-28 results say they are complete and who answered.
fn finish(era: Era, mut result: Value) -> Value {
    if let (Era::Stateless(_), Some(fields)) = (era, result.as_object_mut()) {
        fields.insert("resultType".to_owned(), json!("complete"));
        let meta = fields.entry("_meta").or_insert_with(|| json!({}));
        meta[SERVER_INFO_META] = server_info();
    }
    result
}

/// Cache hints of a 2026-07-28 list or discovery result. `private`: an answer is only ever
/// given to an authenticated caller.
fn cacheable(era: Era, mut result: Value) -> Value {
    if matches!(era, Era::Stateless(_)) {
        result["ttlMs"] = json!(LIST_TTL_MS);
        result["cacheScope"] = json!("private");
    }
    result
}

async fn result(
    cp: &ControlPlane,
    caller: &Caller,
    era: Era,
    request: &Message,
) -> Result<Value, McpError> {
    match (request.method.as_str(), era) {
        ("ping", _) => Ok(json!({})),
        ("server/discover", Era::Stateless(_)) => Ok(cacheable(
            era,
            json!({
                "supportedVersions": STATELESS_VERSIONS,
                "capabilities": capabilities(),
                "instructions": INSTRUCTIONS,
            }),
        )),
        ("initialize", Era::Handshake(version)) => Err(McpError::bad_request(
            codes::INVALID_REQUEST,
            format!(
                "this session is already initialized (revision {version}); send initialize without Mcp-Session-Id to start another"
            ),
        )),
        ("initialize", Era::Stateless(version)) => Err(McpError::bad_request(
            codes::INVALID_REQUEST,
            format!("revision {version} has no initialize handshake; send server/discover"),
        )),
        ("tools/list", _) => {
            if let Some(cursor) = request.params.get("cursor").filter(|c| !c.is_null()) {
                return Err(McpError::invalid_params(
                    "params.cursor",
                    format!(
                        "this server lists every tool on one page and issued no cursor, got {cursor}"
                    ),
                ));
            }
            Ok(cacheable(era, json!({"tools": tools::definitions()})))
        }
        ("tools/call", _) => {
            let answer = tools::call(cp, caller, &request.params).await?;
            let text = answer.to_string();
            Ok(json!({
                "content": [{"type": "text", "text": text}],
                "structuredContent": answer,
                "isError": false,
            }))
        }
        (method, _) => Err(McpError::new(
            axum::http::StatusCode::NOT_FOUND,
            codes::METHOD_NOT_FOUND,
            format!(
                "method {method:?} is not served here; this endpoint serves tools/list, tools/call and ping ({})",
                match era {
                    Era::Handshake(_) => "after initialize",
                    Era::Stateless(_) => "and server/discover",
                }
            ),
        )),
    }
}

/// The JSON-RPC response to `request` (which has an id).
pub(crate) async fn answer(
    cp: &ControlPlane,
    caller: &Caller,
    era: Era,
    request: &Message,
) -> Result<Value, (Value, McpError)> {
    let id = request.id.clone().unwrap_or(Value::Null);
    match result(cp, caller, era, request).await {
        Ok(value) => Ok(message::response(&id, finish(era, value))),
        Err(e) => Err((e.to_json(Some(&id)), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initialize_settles_on_a_served_revision() {
        for version in HANDSHAKE_VERSIONS {
            assert_eq!(negotiate(version), *version);
        }
        assert_eq!(negotiate("2023-01-01"), "2025-11-25");
        assert_eq!(negotiate("2026-07-28"), "2025-11-25");
        let (version, result) = initialize(&json!({"protocolVersion": "2025-03-26"})).unwrap();
        assert_eq!(version, "2025-03-26");
        assert_eq!(result["capabilities"]["tools"]["listChanged"], false);
        let e = initialize(&json!({})).unwrap_err();
        assert!(
            e.message.starts_with("params.protocolVersion: expected"),
            "{}",
            e.message
        );
    }

    #[test]
    fn stateless_results_say_they_are_complete() {
        let done = finish(Era::Stateless("2026-07-28"), json!({"tools": []}));
        assert_eq!(done["resultType"], "complete");
        assert_eq!(done["_meta"][SERVER_INFO_META]["name"], "gate-control");
        let legacy = finish(Era::Handshake("2025-06-18"), json!({"tools": []}));
        assert_eq!(legacy, json!({"tools": []}));
    }
}
