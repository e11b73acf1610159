//! The read-only tools, each one `/api/v1` operation of the route table: its description is the
//! route's summary, its input schema is made from the route's path, query (`http::params`) and
//! body (the OpenAPI body schema) definitions, and a call runs `api::dispatch` with the arguments
//! as the path, query and body, so they are checked and answered exactly as over HTTP.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::error::McpError;
use crate::auth::Caller;
use crate::http::api::{Call, Reply, dispatch};
use crate::http::params::{Kind, MAX_PAGE, Param, query_params};
use crate::http::routes::{Access, ROUTES, Route};
use crate::service::ControlPlane;

/// One tool: its name and the operation it runs.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    pub name: &'static str,
    pub operation: &'static str,
    /// What the route's summary leaves out.
    pub hint: &'static str,
}

/// Every tool. Only operations that read (the unit tests check the route table says so).
pub const TOOLS: &[Tool] = &[
    Tool {
        name: "list_resources",
        operation: "ListResources",
        hint: "Every protected system (database, HTTP API, SSH or MCP server) of the caller's organization, with protocol, host, port and labels.",
    },
    Tool {
        name: "list_policies",
        operation: "ListPolicies",
        hint: "Each policy's state (draft, dry_run, active), stages, resource targets, version and Rego source.",
    },
    Tool {
        name: "get_policy",
        operation: "GetPolicy",
        hint: "One policy by its id (the id field of list_policies).",
    },
    Tool {
        name: "list_connectors",
        operation: "ListConnectors",
        hint: "Connectors that registered, with the resources they serve and when they last reported.",
    },
    Tool {
        name: "list_access_requests",
        operation: "ListAccessRequests",
        hint: "Just-in-time access requests with requester, resource, scopes, approver and expiry.",
    },
    Tool {
        name: "query_audit",
        operation: "QueryAudit",
        hint: "Newest first; every argument narrows the result. Pass next_cursor back as cursor for the next page.",
    },
    Tool {
        name: "simulate_policy",
        operation: "SimulatePolicy",
        hint: "Give exactly one of policy_id and rego. Nothing is stored or enforced.",
    },
];

/// The route a tool runs; every tool's operation is in the route table (unit-tested).
fn route(tool: &Tool) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.operation == tool.operation)
}

fn path_params(route: &Route) -> impl Iterator<Item = &'static str> {
    route
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

/// The schema of a route's body as tool arguments. Clients hand tool schemas to models whose
/// APIs refuse a top-level `oneOf`, so the body's choice between fields is said in words instead
/// (and still enforced by the handler).
fn body_schema(body: &str) -> Option<Value> {
    match body {
        "SimulateBody" => {
            let mut schema = crate::http::openapi::simulate_body();
            if let Some(fields) = schema.as_object_mut() {
                fields.remove("oneOf");
            }
            if let Some(policy_id) = schema.pointer_mut("/properties/policy_id") {
                policy_id["description"] = json!("a saved policy's id (or give rego)");
            }
            if let Some(rego) = schema.pointer_mut("/properties/rego") {
                rego["description"] = json!("a policy text to try (or give policy_id)");
            }
            if let Some(input) = schema.pointer_mut("/properties/input") {
                input["description"] = json!(
                    "the policy input document (input.*), e.g. {\"user\": {...}, \"query\": {...}}"
                );
            }
            Some(schema)
        }
        _ => None,
    }
}

/// A tool's input schema: the route's path parameters (required), query parameters and body
/// fields, as one object.
pub fn input_schema(tool: &Tool) -> Value {
    let Some(route) = route(tool) else {
        return json!({"type": "object", "additionalProperties": false});
    };
    let mut properties = Map::new();
    let mut required = Vec::new();
    for name in path_params(route) {
        let description = format!("the {} in {}", name, route.path);
        properties.insert(
            name.to_owned(),
            json!({"type": "string", "minLength": 1, "description": description}),
        );
        required.push(Value::from(name));
    }
    for param in query_params(route.operation) {
        properties.insert(param.name.to_owned(), param.schema());
    }
    if let Some(body) = route.body.and_then(body_schema) {
        if let Some(fields) = body.get("properties").and_then(Value::as_object) {
            properties.extend(fields.clone());
        }
        if let Some(fields) = body.get("required").and_then(Value::as_array) {
            required.extend(fields.iter().cloned());
        }
    }
    let mut schema =
        json!({"type": "object", "properties": properties, "additionalProperties": false});
    if !required.is_empty() {
        schema["required"] = Value::Array(required);
    }
    schema
}

/// The `tools/list` entries.
pub fn definitions() -> Vec<Value> {
    TOOLS
        .iter()
        .map(|tool| {
            let summary = route(tool).map_or("", |r| r.summary);
            json!({
                "name": tool.name,
                "title": summary,
                "description": format!("{summary}. {}", tool.hint),
                "inputSchema": input_schema(tool),
                "annotations": {"readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false},
            })
        })
        .collect()
}

/// A JSON value as the error messages show it (long values cut).
fn shown(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// One query argument as the query string's text, checked against its definition.
fn query_value(param: &Param, value: &Value) -> Result<String, McpError> {
    match (param.kind, value) {
        (Kind::Limit, Value::Number(n)) if n.as_u64().is_some() => Ok(n.to_string()),
        (Kind::Limit, other) => Err(McpError::invalid_params(
            param.name,
            format!(
                "expected an integer from 0 to {MAX_PAGE}, got {}",
                shown(other)
            ),
        )),
        (_, Value::String(text)) => Ok(text.clone()),
        (Kind::OneOf(values), other) => Err(McpError::invalid_params(
            param.name,
            format!(
                "expected one of {}, got {}",
                values.join(", "),
                shown(other)
            ),
        )),
        (Kind::Time, other) => Err(McpError::invalid_params(
            param.name,
            format!(
                "expected an RFC 3339 time as a string, got {}",
                shown(other)
            ),
        )),
        (_, other) => Err(McpError::invalid_params(
            param.name,
            format!("expected a string, got {}", shown(other)),
        )),
    }
}

/// What an API call of `route` is made of, from a tool's arguments.
struct Parts {
    params: HashMap<String, String>,
    query: HashMap<String, String>,
    body: Vec<u8>,
}

fn parts(route: &Route, mut arguments: Map<String, Value>) -> Result<Parts, McpError> {
    // A null argument is a left-out one (some clients send every property).
    arguments.retain(|_, v| !v.is_null());
    let mut params = HashMap::new();
    for name in path_params(route) {
        match arguments.remove(name) {
            Some(Value::String(text)) if !text.is_empty() => {
                params.insert(name.to_owned(), text);
            }
            Some(other) => {
                return Err(McpError::invalid_params(
                    name,
                    format!("expected a non-empty string, got {}", shown(&other)),
                ));
            }
            None => return Err(McpError::invalid_params(name, "required")),
        }
    }
    let mut query = HashMap::new();
    for param in query_params(route.operation) {
        if let Some(value) = arguments.remove(param.name) {
            query.insert(param.name.to_owned(), query_value(param, &value)?);
        }
    }
    let body = if route.body.is_some() {
        // The rest is the body; the handler names unknown or mistyped fields.
        serde_json::to_vec(&arguments).unwrap_or_default()
    } else if let Some(unknown) = arguments.keys().next() {
        let mut known: Vec<&str> = path_params(route).collect();
        known.extend(query_params(route.operation).iter().map(|p| p.name));
        let expected = if known.is_empty() {
            "this tool takes no arguments".to_owned()
        } else {
            format!("expected {}", known.join(", "))
        };
        return Err(McpError::invalid_params(
            unknown,
            format!("unknown argument; {expected}"),
        ));
    } else {
        Vec::new()
    };
    Ok(Parts {
        params,
        query,
        body,
    })
}

/// Run `tools/call` with `params` (`{name, arguments}`) for `caller`: the API's JSON answer.
pub async fn call(cp: &ControlPlane, caller: &Caller, params: &Value) -> Result<Value, McpError> {
    let name = params.get("name").and_then(Value::as_str).ok_or_else(|| {
        McpError::invalid_params("params.name", "expected the tool's name as a string")
    })?;
    let Some((tool, route)) = TOOLS
        .iter()
        .find(|t| t.name == name)
        .and_then(|t| Some((t, route(t)?)))
    else {
        let names: Vec<&str> = TOOLS.iter().map(|t| t.name).collect();
        return Err(McpError::invalid_params(
            "params.name",
            format!("no tool {name:?}; the tools are {}", names.join(", ")),
        ));
    };
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(fields)) => fields.clone(),
        Some(other) => {
            return Err(McpError::invalid_params(
                "params.arguments",
                format!("expected an object, got {}", shown(other)),
            ));
        }
    };
    let parts = parts(route, arguments)?;
    let call = Call {
        params: parts.params,
        query: parts.query,
        body: &parts.body,
    };
    let result = dispatch(cp, caller, tool.operation, &call).await;
    let code = result.as_ref().map_or_else(|e| e.code.as_str(), |_| "ok");
    cp.metrics.request("mcp", tool.operation, code);
    match result {
        Ok(Reply::Json(value)) => Ok(value),
        Ok(_) => Err(McpError::from_api(crate::error::ApiError::new(
            crate::error::Code::Internal,
            format!("{} does not answer with JSON", tool.operation),
        ))),
        Err(e) => Err(McpError::from_api(e)),
    }
}

/// Every tool runs an operation that reads.
pub fn only_reads() -> bool {
    TOOLS.iter().all(|tool| {
        route(tool).is_some_and(|r| {
            r.access == Access::Read
                && (r.verb == crate::http::routes::Verb::Get || r.operation == "SimulatePolicy")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_reads_through_a_route_of_the_table() {
        assert!(only_reads());
        for tool in TOOLS {
            assert!(route(tool).is_some(), "{}", tool.operation);
        }
    }

    #[test]
    fn schemas_come_from_the_api_definitions() {
        let audit = TOOLS.iter().find(|t| t.name == "query_audit").unwrap();
        let schema = input_schema(audit);
        assert_eq!(schema["properties"]["limit"]["maximum"], 1000);
        assert_eq!(schema["properties"]["from"]["format"], "date-time");
        assert_eq!(schema["additionalProperties"], false);
        let get = TOOLS.iter().find(|t| t.name == "get_policy").unwrap();
        assert_eq!(input_schema(get)["required"], json!(["id"]));
        let simulate = TOOLS.iter().find(|t| t.name == "simulate_policy").unwrap();
        let schema = input_schema(simulate);
        assert_eq!(schema["required"], json!(["stage"]));
        assert!(schema.get("oneOf").is_none());
        assert_eq!(
            schema["properties"]["stage"]["enum"],
            json!(["session", "pre_request", "post_request"])
        );
    }

    #[test]
    fn arguments_are_checked_against_their_definitions() {
        let audit = ROUTES.iter().find(|r| r.operation == "QueryAudit").unwrap();
        let args = |v: Value| v.as_object().unwrap().clone();
        let ok = parts(
            audit,
            args(json!({"limit": 5, "identity": "alice", "to": null})),
        )
        .unwrap();
        assert_eq!(ok.query["limit"], "5");
        assert!(!ok.query.contains_key("to"));
        let e = parts(audit, args(json!({"limit": "ten"}))).err().unwrap();
        assert_eq!(
            e.message,
            "limit: expected an integer from 0 to 1000, got \"ten\""
        );
        let e = parts(audit, args(json!({"who": "x"}))).err().unwrap();
        assert!(
            e.message
                .starts_with("who: unknown argument; expected from, to,"),
            "{}",
            e.message
        );
        let get = ROUTES.iter().find(|r| r.operation == "GetPolicy").unwrap();
        assert_eq!(
            parts(get, Map::new()).err().unwrap().message,
            "id: required"
        );
        let list = ROUTES
            .iter()
            .find(|r| r.operation == "ListResources")
            .unwrap();
        let e = parts(list, args(json!({"x": 1}))).err().unwrap();
        assert_eq!(
            e.message,
            "x: unknown argument; this tool takes no arguments"
        );
    }
}
