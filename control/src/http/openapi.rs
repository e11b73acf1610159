//! The OpenAPI 3.1 document for `/api/v1`, generated from the route table (so every route is in it)
//! and the query parameters of `params.rs`.

use serde_json::{Map, Value, json};

use super::routes::{Access, ROUTES};

fn access_text(access: Access) -> &'static str {
    match access {
        Access::Read => "Roles: readonly, editor, admin (or a system key).",
        Access::Write => "Roles: editor, admin (or a system key).",
        Access::Admin => "Role: admin (or a system key).",
        Access::Connector => "Role: connector (or a system key).",
        Access::System => "System (root) key only.",
    }
}

fn schema_ref(name: &str) -> Value {
    if name == "JSON lines" {
        return json!({"content": {"application/x-ndjson": {"schema": {"type": "string"}}}});
    }
    if name == "asciicast" {
        return json!({"content": {"application/x-asciicast": {"schema": {"type": "string"}}}});
    }
    json!({"content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}})
}

/// The document served at `/api/v1/openapi.json`.
pub fn document() -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for route in ROUTES {
        let mut parameters = Vec::new();
        for segment in route.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                parameters.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
            }
        }
        for param in super::params::query_params(route.operation) {
            parameters.push(json!({"name": param.name, "in": "query", "required": false, "schema": param.schema()}));
        }
        let error = json!({"$ref": "#/components/responses/Error"});
        let ok = if route.operation.starts_with("Create") {
            "201"
        } else {
            "200"
        };
        let mut operation = json!({
            "operationId": route.operation,
            "summary": route.summary,
            "description": format!("{} Same logic as gRPC `{}`.", access_text(route.access), route.operation),
            "parameters": parameters,
            "responses": {
                ok: schema_ref(route.response),
                "400": error, "401": error, "403": error, "404": error, "409": error,
                "413": error, "415": error, "default": error,
            },
        });
        if let Some(body) = route.body {
            operation["requestBody"] = schema_ref(body);
            add_schema(body, &mut schemas);
            // A body with required fields must be sent; others may be left out.
            let required = schemas
                .get(body)
                .and_then(|schema| schema.get("required"))
                .is_some_and(|r| r.as_array().is_some_and(|r| !r.is_empty()));
            operation["requestBody"]["required"] = json!(required);
        }
        if !matches!(route.response, "JSON lines" | "asciicast") {
            add_schema(route.response, &mut schemas);
        }
        let item = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        item[route.verb.as_str()] = operation;
    }
    schemas.insert(
        "Error".to_owned(),
        json!({
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "enum": crate::error::Code::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"], "description": "The request field at fault"}
            }
        }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Gate control plane", "version": env!("CARGO_PKG_VERSION")},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "Root api_key or an organization API key; system keys may send X-Org-ID"}},
            "schemas": schemas,
            "responses": {"Error": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}
        }
    })
}

/// The schema of `SimulateBody`, the one request body that is not a message.
pub(crate) fn simulate_body() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "description": "Exactly one of policy_id (a saved policy) and rego (a policy text); the input is `input`, or the one the audit event `audit_event_id` recorded (its details.input), not both",
        "properties": {
            "policy_id": {"type": "string"},
            "rego": {"type": "string", "maxLength": 262144},
            "stage": {"type": "string", "enum": ["session", "pre_request", "post_request"]},
            "input": {"type": ["object", "null"]},
            "audit_event_id": {"type": "string", "maxLength": 64}
        },
        "required": ["stage"],
        "oneOf": [
            {"required": ["policy_id"], "properties": {"policy_id": {"minLength": 1}, "rego": {"maxLength": 0}}},
            {"required": ["rego"], "properties": {"rego": {"minLength": 1}, "policy_id": {"maxLength": 0}}}
        ]
    })
}

/// Add the schema of a request or response body by its name.
fn add_schema(name: &'static str, schemas: &mut Map<String, Value>) {
    if name == "SimulateBody" {
        schemas.insert(name.to_owned(), simulate_body());
    } else {
        super::schemas::add_message(name, schemas);
    }
}
