//! The query parameters of the `/api/v1` operations that take any, defined once: the handlers
//! accept exactly these, the OpenAPI document lists them, and the control-plane MCP tools'
//! input schemas and argument checks are made from them.

use serde_json::{Value, json};

use crate::service::access::STATUSES;
use crate::store::DELIVERY_STATES;

/// Largest page a listing returns (`limit`); 0 asks for the default page.
pub const MAX_PAGE: u64 = 1000;

/// What a parameter's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An RFC 3339 time.
    Time,
    /// Any text.
    Text,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// A page size from 0 to [`MAX_PAGE`].
    Limit,
    /// The `next_cursor` of the previous page.
    Cursor,
}

/// One query parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub description: &'static str,
}

impl Param {
    /// The parameter's JSON Schema.
    pub fn schema(&self) -> Value {
        let mut schema = match self.kind {
            Kind::Time => json!({"type": "string", "format": "date-time"}),
            Kind::Text | Kind::Cursor => json!({"type": "string"}),
            Kind::OneOf(values) => json!({"type": "string", "enum": values}),
            Kind::Limit => json!({"type": "integer", "minimum": 0, "maximum": MAX_PAGE}),
        };
        schema["description"] = Value::from(self.description);
        schema
    }
}

const fn param(name: &'static str, kind: Kind, description: &'static str) -> Param {
    Param {
        name,
        kind,
        description,
    }
}

const LIMIT: Param = param(
    "limit",
    Kind::Limit,
    "page size, at most 1000 (0 or absent: 100)",
);
const CURSOR: Param = param("cursor", Kind::Cursor, "next_cursor of the previous page");

/// `QueryAudit` and `ExportAudit`.
const AUDIT: &[Param] = &[
    param(
        "from",
        Kind::Time,
        "events at or after this time (RFC 3339)",
    ),
    param("to", Kind::Time, "events before this time (RFC 3339)"),
    param(
        "identity",
        Kind::Text,
        "who acted, exactly as the event names them",
    ),
    param("resource", Kind::Text, "the resource's name"),
    param(
        "action",
        Kind::Text,
        "the decision: allow, block, rewrite, mask or filter",
    ),
    param("stage", Kind::Text, "session, pre_request or post_request"),
    param(
        "operation",
        Kind::Text,
        "what an MCP event acted on: tool, resource, prompt, list, …",
    ),
    param(
        "target",
        Kind::Text,
        "the tool, resource URI or prompt an MCP event named",
    ),
    param(
        "protocol",
        Kind::OneOf(crate::service::resources::PROTOCOLS),
        "the resource's protocol",
    ),
    param("id", Kind::Text, "one event by its id"),
    LIMIT,
    CURSOR,
];

const RECORDINGS: &[Param] = &[
    param("resource", Kind::Text, "the resource's name"),
    param("identity", Kind::Text, "who was recorded"),
    param(
        "protocol",
        Kind::OneOf(crate::service::resources::PROTOCOLS),
        "the resource's protocol",
    ),
    param(
        "since",
        Kind::Time,
        "recordings started at or after this time (RFC 3339)",
    ),
    param(
        "until",
        Kind::Time,
        "recordings started before this time (RFC 3339)",
    ),
    LIMIT,
    CURSOR,
];

const ACCESS_REQUESTS: &[Param] = &[param(
    "status",
    Kind::OneOf(STATUSES),
    "only requests in this state",
)];

const DELIVERIES: &[Param] = &[
    param(
        "state",
        Kind::OneOf(DELIVERY_STATES),
        "only deliveries in this state",
    ),
    LIMIT,
];

const TOOL_PINS: &[Param] = &[param("resource", Kind::Text, "the MCP resource's name")];

/// The query parameters `operation` (a route-table name) accepts; none for most.
pub fn query_params(operation: &str) -> &'static [Param] {
    match operation {
        "QueryAudit" | "ExportAudit" => AUDIT,
        "ListRecordings" => RECORDINGS,
        "ListAccessRequests" => ACCESS_REQUESTS,
        "ListDeliveries" => DELIVERIES,
        // MCP tool pins (not on every branch yet).
        "ListToolPins" => TOOL_PINS,
        _ => &[],
    }
}

/// The names of `operation`'s query parameters.
pub fn names(operation: &str) -> Vec<&'static str> {
    query_params(operation).iter().map(|p| p.name).collect()
}

/// A parameter that takes one of some words must be one of them when given (even empty: the
/// OpenAPI document says so, and an empty choice is a client's mistake, not "any").
pub fn one_of_given(
    operation: &str,
    query: &std::collections::HashMap<String, String>,
) -> crate::error::ApiResult<()> {
    for param in query_params(operation) {
        if let Kind::OneOf(values) = param.kind
            && let Some(value) = query.get(param.name)
            && !values.contains(&value.as_str())
        {
            return Err(crate::error::ApiError::invalid(
                param.name,
                format!("expected one of {}, got {value:?}", values.join(", ")),
            ));
        }
    }
    Ok(())
}
