//! The OpenAPI 3.1 document for `/api/v1`, generated from the route table (so every route is in it).

use serde_json::{Map, Value, json};

use gate_proto::v1::*;

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
        if matches!(route.operation, "QueryAudit" | "ExportAudit") {
            for name in [
                "from", "to", "identity", "resource", "action", "stage", "limit", "cursor",
            ] {
                parameters.push(json!({"name": name, "in": "query", "required": false, "schema": {"type": "string"}}));
            }
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
            },
        });
        if let Some(body) = route.body {
            operation["requestBody"] = schema_ref(body);
            operation["requestBody"]["required"] = json!(false);
            schemas.insert(body.to_owned(), message_schema(body));
        }
        if route.response != "JSON lines" {
            schemas.insert(route.response.to_owned(), message_schema(route.response));
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

/// A JSON Schema for a value shaped like `sample` (a message serialized with every field at its
/// default): the property names and JSON types are exactly what the handlers read and write.
fn schema_of(sample: &Value) -> Value {
    match sample {
        Value::Object(fields) => {
            let properties: Map<String, Value> = fields
                .iter()
                .map(|(name, value)| (name.clone(), schema_of(value)))
                .collect();
            json!({"type": "object", "properties": properties, "additionalProperties": false})
        }
        Value::Array(_) => json!({"type": "array"}),
        Value::String(_) => json!({"type": "string"}),
        Value::Number(_) => json!({"type": "integer"}),
        Value::Bool(_) => json!({"type": "boolean"}),
        // Optional fields and nested messages.
        Value::Null => json!({"type": ["object", "string", "integer", "null"]}),
    }
}

/// The schema of a request or response body by its message name.
fn message_schema(name: &str) -> Value {
    macro_rules! messages {
        ($($message:ident),* $(,)?) => {
            match name {
                $(stringify!($message) => serde_json::to_value($message::default()).ok(),)*
                _ => None,
            }
        };
    }
    let sample = messages!(
        AccessRequest,
        ApiKey,
        ApproveAccessRequestRequest,
        CreateAccessRequestRequest,
        CreateApiKeyRequest,
        CreateApiKeyResponse,
        CreateOrganizationRequest,
        CreatePolicyRequest,
        DeleteResponse,
        DenyAccessRequestRequest,
        Group,
        HeartbeatResponse,
        Identity,
        IngestAuditRequest,
        IngestAuditResponse,
        IssueIdentityTokenRequest,
        IssueIdentityTokenResponse,
        ListAccessRequestsResponse,
        ListApiKeysResponse,
        ListConnectorsResponse,
        ListGroupsResponse,
        ListIdentitiesResponse,
        ListOrganizationsResponse,
        ListPoliciesResponse,
        ListResourcesResponse,
        Organization,
        Policy,
        PolicyHistory,
        QueryAuditResponse,
        RegisterConnectorRequest,
        RegisterConnectorResponse,
        Resource,
        RevokeAccessRequestRequest,
        SetPolicyStateRequest,
        SimulatePolicyResponse,
        Snapshot,
        UpdatePolicyRequest,
    );
    let mut schema = match (name, sample) {
        ("SimulateBody", _) => json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "policy_id": {"type": "string"},
                "rego": {"type": "string"},
                "stage": {"type": "string", "enum": ["session", "pre_request", "post_request"]},
                "input": {"type": "object"}
            }
        }),
        (_, Some(sample)) => schema_of(&sample),
        (_, None) => json!({"type": "object"}),
    };
    schema["description"] = json!(format!("gate.v1.{name} as JSON (proto field names)"));
    schema
}
