//! JSON-RPC 2.0 as MCP uses it: parsing a POST body into messages, what each
//! request means to a policy (`input.mcp`), and JSON-RPC error objects.
//! Pure: no I/O.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gate_policy::McpInfo;
use serde_json::{Value as Json, json};

/// A client's declared `clientInfo`: name and version (empty when not given).
pub type Declared = (String, String);

/// The `params._meta` key carrying a 2026-07-28 request's protocol version.
pub const PROTOCOL_VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";
/// The `params._meta` key carrying a 2026-07-28 request's `clientInfo`.
pub const CLIENT_INFO_META: &str = "io.modelcontextprotocol/clientInfo";
/// The `params._meta` key carrying a 2026-07-28 request's client capabilities.
pub const CLIENT_CAPABILITIES_META: &str = "io.modelcontextprotocol/clientCapabilities";
/// The `result._meta` key naming the server that answers a 2026-07-28 request.
pub const SERVER_INFO_META: &str = "io.modelcontextprotocol/serverInfo";

/// JSON-RPC error codes Gate answers with.
pub mod codes {
    /// The body is not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON is not a JSON-RPC request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The method exists but its params (a tool's arguments) are wrong.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The server failed.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// A 2026-07-28 request names a protocol version the server does not serve; `data`
    /// lists the supported ones.
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
    /// A policy (or the access grant) refused the request.
    pub const REFUSED: i64 = -32001;
    /// The response had to be masked and could not be.
    pub const RESPONSE_REFUSED: i64 = -32002;
    /// A routing header (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`)
    /// disagrees with the body (the 2026-07-28 revision's `HEADER_MISMATCH`).
    pub const HEADER_MISMATCH: i64 = -32020;
}

/// The routing headers of one POST (2026-07-28), as sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Routing<'a> {
    pub version: Option<&'a str>,
    pub method: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// One JSON-RPC message from the client.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Absent for notifications (and for responses to server requests: see `is_response`).
    pub id: Option<Json>,
    /// Empty for responses to server-to-client requests.
    pub method: String,
    pub params: Json,
    /// A response the client sends to a server-to-client request (sampling, elicitation, roots).
    pub is_response: bool,
}

/// A POST body: one message or a batch (2025-03-26 allowed batches).
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub messages: Vec<Message>,
    pub batch: bool,
}

/// Parse a POST body; `Err((code, message))` for what is not JSON-RPC.
pub fn parse(bytes: &[u8]) -> Result<Body, (i64, String)> {
    let json: Json = serde_json::from_slice(bytes)
        .map_err(|e| (codes::PARSE_ERROR, format!("the body is not JSON: {e}")))?;
    match json {
        Json::Array(items) if items.is_empty() => {
            Err((codes::INVALID_REQUEST, "an empty batch".to_owned()))
        }
        Json::Array(items) => Ok(Body {
            messages: items.into_iter().map(message).collect::<Result<_, _>>()?,
            batch: true,
        }),
        single => Ok(Body {
            messages: vec![message(single)?],
            batch: false,
        }),
    }
}

fn message(json: Json) -> Result<Message, (i64, String)> {
    let Json::Object(map) = json else {
        return Err((
            codes::INVALID_REQUEST,
            "a JSON-RPC message must be an object".to_owned(),
        ));
    };
    if map.get("jsonrpc").and_then(Json::as_str) != Some("2.0") {
        return Err((
            codes::INVALID_REQUEST,
            "\"jsonrpc\" must be \"2.0\"".to_owned(),
        ));
    }
    let id = map.get("id").cloned();
    if let Some(id) = &id
        && !(id.is_string() || id.is_i64() || id.is_u64())
    {
        return Err((
            codes::INVALID_REQUEST,
            "\"id\" must be a string or an integer".to_owned(),
        ));
    }
    match map.get("method") {
        Some(Json::String(method)) => Ok(Message {
            id,
            method: method.clone(),
            params: map.get("params").cloned().unwrap_or(Json::Null),
            is_response: false,
        }),
        Some(_) => Err((
            codes::INVALID_REQUEST,
            "\"method\" must be a string".to_owned(),
        )),
        None if id.is_some() && (map.contains_key("result") || map.contains_key("error")) => {
            Ok(Message {
                id,
                method: String::new(),
                params: Json::Null,
                is_response: true,
            })
        }
        None => Err((
            codes::INVALID_REQUEST,
            "a request needs \"method\"".to_owned(),
        )),
    }
}

/// What a request is to a policy: `tools/call` of `customer_lookup` is
/// namespace `tools`, action `call`, operation `tool`, target the tool.
pub fn describe(message: &Message) -> McpInfo {
    let method = message.method.as_str();
    let (namespace, action) = match method.split_once('/') {
        Some((ns, action)) => (Some(ns.to_owned()), Some(action.to_owned())),
        None => (None, Some(method.to_owned())),
    };
    let param = |name: &str| {
        message
            .params
            .get(name)
            .and_then(Json::as_str)
            .map(str::to_owned)
    };
    let (operation, tool_name, resource_uri, prompt_name) = match method {
        "tools/call" => ("tool", param("name"), None, None),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            ("resource", None, param("uri"), None)
        }
        "prompts/get" => ("prompt", None, None, param("name")),
        "tools/list" | "resources/list" | "resources/templates/list" | "prompts/list" => {
            ("list", None, None, None)
        }
        "initialize" | "notifications/initialized" | "ping" | "server/discover" => {
            ("lifecycle", None, None, None)
        }
        "completion/complete" => ("completion", None, None, None),
        "logging/setLevel" => ("logging", None, None, None),
        m if m.starts_with("notifications/") => ("notification", None, None, None),
        "" if message.is_response => ("response", None, None, None),
        _ => ("unknown", None, None, None),
    };
    let target = tool_name
        .clone()
        .or_else(|| resource_uri.clone())
        .or_else(|| prompt_name.clone());
    let arguments = match method {
        "tools/call" | "prompts/get" => message.params.get("arguments").cloned(),
        _ => None,
    };
    McpInfo {
        method: method.to_owned(),
        namespace,
        action,
        operation: Some(operation.to_owned()),
        target,
        tool_name,
        resource_uri,
        prompt_name,
        arguments,
        client: None,
    }
}

/// The 2026-07-28 routing headers must say what the body says, so a policy
/// (which reads the body) can never be shown one method, tool or protocol
/// version while an upstream that routes by header acts on another: a body
/// whose `params._meta` declares a protocol version needs an equal
/// `MCP-Protocol-Version` header; `Mcp-Method` and `Mcp-Name`, when present,
/// describe exactly one request and must be its method and target
/// (`Mcp-Name` may be `=?base64?…?=`-encoded).
pub fn check_routing_headers(body: &Body, headers: Routing<'_>) -> Result<(), (i64, String)> {
    let mismatch = |reason: String| Err((codes::HEADER_MISMATCH, reason));
    for message in &body.messages {
        let Some(declared) = message
            .params
            .get("_meta")
            .and_then(|meta| meta.get(PROTOCOL_VERSION_META))
        else {
            continue;
        };
        let declared_text = declared
            .as_str()
            .map_or_else(|| declared.to_string(), |v| format!("{v:?}"));
        match headers.version {
            Some(header) if declared.as_str() == Some(header) => {}
            Some(header) => {
                return mismatch(format!(
                    "the MCP-Protocol-Version header says {header:?} but the body's params._meta[{PROTOCOL_VERSION_META:?}] is {declared_text}"
                ));
            }
            None => {
                return mismatch(format!(
                    "the body's params._meta[{PROTOCOL_VERSION_META:?}] is {declared_text} but the request has no MCP-Protocol-Version header"
                ));
            }
        }
    }
    if headers.method.is_none() && headers.name.is_none() {
        return Ok(());
    }
    let [message] = body.messages.as_slice() else {
        return mismatch(
            "the Mcp-Method and Mcp-Name headers describe one request, but the body is a batch"
                .to_owned(),
        );
    };
    if let Some(header) = headers.method
        && header != message.method
    {
        return mismatch(format!(
            "the Mcp-Method header says {header:?} but the body's method is {:?}",
            message.method
        ));
    }
    if let Some(header) = headers.name {
        let decoded = decode_header_value(header);
        let target = describe(message).target;
        if decoded.is_none() || target != decoded {
            return mismatch(format!(
                "the Mcp-Name header says {header:?} but the body names {}",
                target.map_or("nothing".to_owned(), |t| format!("{t:?}"))
            ));
        }
    }
    Ok(())
}

/// A header value as the 2026-07-28 revision encodes it: verbatim, or
/// `=?base64?<standard base64 of UTF-8>?=`; `None` when that is malformed.
pub fn decode_header_value(value: &str) -> Option<String> {
    let Some(payload) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Some(value.to_owned());
    };
    String::from_utf8(STANDARD.decode(payload).ok()?).ok()
}

/// A JSON-RPC error response for `id`.
pub fn error(id: Option<&Json>, code: i64, message: &str) -> Json {
    json!({
        "jsonrpc": "2.0",
        "id": id.cloned().unwrap_or(Json::Null),
        "error": {"code": code, "message": message},
    })
}

/// A JSON-RPC error response for `id` with a `data` member.
pub fn error_with_data(id: Option<&Json>, code: i64, message: &str, data: Json) -> Json {
    let mut reply = error(id, code, message);
    reply["error"]["data"] = data;
    reply
}

/// A JSON-RPC success response for `id`.
pub fn response(id: &Json, result: Json) -> Json {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// The `clientInfo` a message declares: an `initialize`'s
/// `params.clientInfo`, or a 2026-07-28 request's
/// `params._meta["io.modelcontextprotocol/clientInfo"]`. Declared by the
/// client, never verified.
pub fn declared_client(message: &Message) -> Option<Declared> {
    let info = match message.method.as_str() {
        "initialize" => message.params.get("clientInfo"),
        _ => message
            .params
            .get("_meta")
            .and_then(|meta| meta.get(CLIENT_INFO_META)),
    }?;
    Some((
        info.get("name")?.as_str()?.to_owned(),
        info.get("version")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_calls_are_described_with_their_arguments() {
        let body = parse(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"customer_lookup","arguments":{"customer_id":42}}}"#).unwrap();
        assert!(!body.batch);
        let info = describe(&body.messages[0]);
        assert_eq!(info.operation.as_deref(), Some("tool"));
        assert_eq!(info.namespace.as_deref(), Some("tools"));
        assert_eq!(info.action.as_deref(), Some("call"));
        assert_eq!(info.target.as_deref(), Some("customer_lookup"));
        assert_eq!(info.arguments, Some(json!({"customer_id": 42})));
        let read = parse(
            br#"{"jsonrpc":"2.0","id":"a","method":"resources/read","params":{"uri":"file:///x"}}"#,
        )
        .unwrap();
        assert_eq!(
            describe(&read.messages[0]).resource_uri.as_deref(),
            Some("file:///x")
        );
        let odd = parse(br#"{"jsonrpc":"2.0","id":1,"method":"vendor/thing"}"#).unwrap();
        assert_eq!(
            describe(&odd.messages[0]).operation.as_deref(),
            Some("unknown")
        );
    }

    #[test]
    fn routing_headers_must_agree_with_the_body() {
        let call =
            parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup"}}"#)
                .unwrap();
        let headers = |method, name| Routing {
            version: None,
            method,
            name,
        };
        assert!(check_routing_headers(&call, headers(None, None)).is_ok());
        assert!(check_routing_headers(&call, headers(Some("tools/call"), Some("lookup"))).is_ok());
        let (code, reason) =
            check_routing_headers(&call, headers(Some("tools/list"), None)).unwrap_err();
        assert_eq!(code, codes::HEADER_MISMATCH);
        assert!(reason.contains("\"tools/list\""), "{reason}");
        assert!(
            check_routing_headers(&call, headers(Some("tools/call"), Some("delete_all"))).is_err()
        );
        let encoded = "=?base64?bG9va3Vw?="; // "lookup"
        assert!(check_routing_headers(&call, headers(None, Some(encoded))).is_ok());
        assert!(check_routing_headers(&call, headers(None, Some("=?base64?!!?="))).is_err());
        let read = parse(
            br#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///a"}}"#,
        )
        .unwrap();
        assert!(check_routing_headers(&read, headers(None, Some("file:///a"))).is_ok());
        assert!(check_routing_headers(&read, headers(None, Some("file:///b"))).is_err());
        let ping = parse(br#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#).unwrap();
        assert!(
            check_routing_headers(&ping, headers(None, Some("x"))).is_err(),
            "a name for a request that names nothing"
        );
        let batch = parse(br#"[{"jsonrpc":"2.0","id":4,"method":"ping"},{"jsonrpc":"2.0","id":5,"method":"ping"}]"#).unwrap();
        assert!(check_routing_headers(&batch, headers(Some("ping"), None)).is_err());
    }

    #[test]
    fn the_protocol_version_header_must_match_the_envelope() {
        let modern = parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"agent-x","version":"3"}}}}"#).unwrap();
        let version = |version| Routing {
            version,
            ..Routing::default()
        };
        assert!(check_routing_headers(&modern, version(Some("2026-07-28"))).is_ok());
        let (code, reason) =
            check_routing_headers(&modern, version(Some("2025-06-18"))).unwrap_err();
        assert_eq!(code, codes::HEADER_MISMATCH);
        assert!(
            reason.contains("\"2025-06-18\"") && reason.contains("\"2026-07-28\""),
            "{reason}"
        );
        assert!(check_routing_headers(&modern, version(None)).is_err());
        let legacy = parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap();
        assert!(check_routing_headers(&legacy, version(Some("2025-06-18"))).is_ok());
        assert_eq!(
            declared_client(&modern.messages[0]),
            Some(("agent-x".into(), "3".into()))
        );
        let init = parse(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"clientInfo":{"name":"cli"}}}"#).unwrap();
        assert_eq!(
            declared_client(&init.messages[0]),
            Some(("cli".into(), String::new()))
        );
        assert_eq!(declared_client(&legacy.messages[0]), None);
    }

    #[test]
    fn what_is_not_json_rpc_gets_its_code() {
        assert_eq!(parse(b"{nope").unwrap_err().0, codes::PARSE_ERROR);
        assert_eq!(parse(b"[]").unwrap_err().0, codes::INVALID_REQUEST);
        assert_eq!(
            parse(br#"{"id":1,"method":"ping"}"#).unwrap_err().0,
            codes::INVALID_REQUEST
        );
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#)
                .unwrap_err()
                .0,
            codes::INVALID_REQUEST
        );
        let batch = parse(br#"[{"jsonrpc":"2.0","method":"notifications/cancelled"},{"jsonrpc":"2.0","id":3,"result":{}}]"#).unwrap();
        assert!(batch.batch);
        assert!(batch.messages[1].is_response);
        assert_eq!(
            describe(&batch.messages[0]).operation.as_deref(),
            Some("notification")
        );
    }
}
