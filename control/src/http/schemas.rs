//! JSON Schemas of the `gate.v1` messages for the OpenAPI document: shapes from
//! the generated field table (`gate_proto::fields`), constraints from what the
//! service functions enforce (`control/src/service/`), listed here once;
//! `AuditEvent` in its HTTP shape (`details` an object, `audit_json.rs`).

use std::collections::BTreeMap;

use gate_proto::fields::{Element, FIELDS, FieldKind};
use serde_json::{Map, Value, json};

use crate::auth::Role;
use crate::service::access::OPERATIONS;
use crate::service::audit::ACTIONS;
use crate::service::identities::KINDS;
use crate::service::policies::{STAGES, STATES};
use crate::service::resources::{ORIGINS, PROTOCOLS};
use crate::service::webhooks::WEBHOOK_URL;
use crate::store::EVENT_TYPES;

/// Object names (`validate::name`).
fn name() -> Value {
    json!({"type": "string", "pattern": "^[A-Za-z0-9._@-]{1,128}$"})
}

fn text(max: usize) -> Value {
    json!({"type": "string", "maxLength": max})
}

fn one_of(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

/// A resource name or shell glob (`validate::targets`): 1–128 characters,
/// every `[` closed by a `]` before the next `[`.
fn target() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 128, "pattern": r"^[^\[\]]*(\[[^\[\]]*\][^\[\]]*)*$"})
}

/// An MCP tool name: 1–256 characters, no control characters.
fn tool_name() -> Value {
    json!({"type": "string", "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,256}$"})
}

/// A SHA-256 digest in lowercase hex.
fn digest() -> Value {
    json!({"type": "string", "pattern": "^[0-9a-f]{64}$"})
}

fn read_only() -> Value {
    json!({"readOnly": true})
}

/// `values`, or the empty string (a field the service fills in when left out).
fn one_of_or_empty(values: &[&str]) -> Value {
    let mut allowed = vec![""];
    allowed.extend_from_slice(values);
    one_of(&allowed)
}

/// A webhook URL (the service enforces the same pattern, then the SSRF guard).
fn webhook_url() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 2048, "pattern": WEBHOOK_URL})
}

/// A label map (`validate::labels`): keys are names, also joined by `/`
/// (`gate.dev/zone`); values up to 256 characters.
fn label_map() -> Value {
    json!({
        "propertyNames": {"pattern": "^[A-Za-z0-9._@-]{1,128}(/[A-Za-z0-9._@-]{1,128})*$"},
        "additionalProperties": {"type": "string", "maxLength": 256},
    })
}

/// Constraints per (message, field), merged into the field's schema.
fn constraints() -> Vec<(&'static str, &'static str, Value)> {
    let server_set = ["id", "org_id", "created_at", "updated_at"];
    let mut list = Vec::new();
    for message in [
        "Resource",
        "Identity",
        "Group",
        "Policy",
        "Organization",
        "ApiKey",
        "Webhook",
        "Delivery",
    ] {
        for field in server_set {
            list.push((message, field, read_only()));
        }
    }
    list.extend([
        ("CreateOrganizationRequest", "name", name()),
        ("CreateApiKeyRequest", "name", name()),
        (
            "CreateApiKeyRequest",
            "role",
            one_of(&Role::ALL.map(Role::as_str)),
        ),
        ("Resource", "name", name()),
        ("Resource", "protocol", one_of(PROTOCOLS)),
        ("Resource", "host", json!({"type": "string", "minLength": 1, "maxLength": 253})),
        ("Resource", "port", json!({"minimum": 1, "maximum": 65535})),
        ("Resource", "database", text(128)),
        ("Resource", "origin", one_of_or_empty(ORIGINS)),
        ("Resource", "owner", text(256)),
        ("Resource", "labels", label_map()),
        ("Resource", "connector_selector", label_map()),
        ("RegisterConnectorRequest", "labels", label_map()),
        ("Identity", "name", name()),
        ("Identity", "email", json!({"type": "string", "maxLength": 254, "pattern": "^$|@"})),
        ("Identity", "kind", one_of_or_empty(KINDS)),
        ("Identity", "origin", one_of_or_empty(ORIGINS)),
        ("Identity", "groups", read_only()),
        ("Identity", "ssh_keys", ssh_keys()),
        ("Group", "name", name()),
        ("Group", "description", text(1024)),
        ("Group", "origin", one_of_or_empty(ORIGINS)),
        ("Group", "owner", text(256)),
        ("Group", "members", read_only()),
        ("CreatePolicyRequest", "name", name()),
        ("CreatePolicyRequest", "description", text(1024)),
        ("CreatePolicyRequest", "rego", json!({"type": "string", "minLength": 1, "maxLength": 262144})),
        ("CreatePolicyRequest", "state", one_of_or_empty(STATES)),
        ("CreatePolicyRequest", "origin", one_of_or_empty(ORIGINS)),
        ("CreatePolicyRequest", "owner", text(256)),
        ("UpdatePolicyRequest", "description", json!({"maxLength": 1024})),
        ("UpdatePolicyRequest", "rego", json!({"minLength": 1, "maxLength": 262144})),
        ("SetPolicyStateRequest", "state", one_of(STATES)),
        ("SetPolicyStateRequest", "version", json!({"minimum": 1})),
        ("IssueIdentityTokenRequest", "ttl_seconds", json!({"maximum": 86400})),
        ("IssueIdentityTokenRequest", "identity_id", read_only()),
        ("CreateAccessRequestRequest", "subject", name()),
        ("CreateAccessRequestRequest", "resource_id", json!({"minLength": 1})),
        ("CreateAccessRequestRequest", "reason", text(1024)),
        ("CreateAccessRequestRequest", "requested_by", text(254)),
        ("CreateAccessRequestRequest", "duration_seconds", json!({"minimum": 1, "maximum": 604800})),
        ("GrantScope", "operation", one_of(OPERATIONS)),
        ("GrantScope", "target", target()),
        ("ApproveAccessRequestRequest", "approved_by", text(254)),
        ("DenyAccessRequestRequest", "denied_by", text(254)),
        ("RevokeAccessRequestRequest", "revoked_by", text(254)),
        ("Resource", "approver_groups", json!({"items": name()})),
        ("CreateWebhookRequest", "url", webhook_url()),
        ("CreateWebhookRequest", "events", json!({"minItems": 1, "items": one_of(EVENT_TYPES)})),
        ("CreateWebhookRequest", "description", text(1024)),
        ("UpdateWebhookRequest", "id", read_only()),
        ("UpdateWebhookRequest", "url", webhook_url()),
        ("UpdateWebhookRequest", "events", json!({"minItems": 1, "items": one_of(EVENT_TYPES)})),
        ("UpdateWebhookRequest", "description", text(1024)),
        ("RegisterConnectorRequest", "name", name()),
        ("RegisterConnectorRequest", "resources", json!({"items": name()})),
        ("RegisterConnectorRequest", "version", text(64)),
        ("RegisterConnectorRequest", "host", text(253)),
        ("IngestAuditRequest", "events", json!({"maxItems": 5000})),
        ("ReportToolsRequest", "resource", name()),
        ("ReportToolsRequest", "tools", json!({"maxItems": 1000})),
        ("ToolDefinition", "name", tool_name()),
        ("ToolDefinition", "digest", digest()),
        ("ToolDefinition", "definition", text(65536)),
        ("ApproveToolPinRequest", "resource", read_only()),
        ("ApproveToolPinRequest", "tool", read_only()),
        ("ApproveToolPinRequest", "digest", digest()),
        (
            "AuditEvent",
            "id",
            json!({"type": "string", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"}),
        ),
        ("AuditEvent", "time", json!({"type": "string", "format": "date-time"})),
        ("AuditEvent", "stage", one_of_or_empty(STAGES)),
        ("AuditEvent", "action", one_of(ACTIONS)),
        ("AuditEvent", "protocol", one_of_or_empty(PROTOCOLS)),
        ("AuditEvent", "statement", text(16384)),
    ]);
    for message in ["CreatePolicyRequest", "UpdatePolicyRequest"] {
        list.push((message, "stages", json!({"items": one_of(STAGES)})));
        list.push((message, "targets", json!({"items": target()})));
    }
    list
}

/// Fields a request must carry (non-empty), per message.
fn required() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        ("CreateOrganizationRequest", &["name"][..]),
        ("CreateApiKeyRequest", &["name", "role"][..]),
        ("Resource", &["name", "protocol", "host", "port"][..]),
        ("Identity", &["name"][..]),
        ("Group", &["name"][..]),
        ("CreatePolicyRequest", &["name", "rego"][..]),
        ("SetPolicyStateRequest", &["state"][..]),
        (
            "CreateAccessRequestRequest",
            &["subject", "resource_id", "duration_seconds"][..],
        ),
        ("GrantScope", &["operation", "target"][..]),
        ("RegisterConnectorRequest", &["name"][..]),
        ("CreateWebhookRequest", &["url", "events"][..]),
        ("UpdateWebhookRequest", &["url", "events"][..]),
        ("AuditEvent", &["id", "time", "action"][..]),
        ("ReportToolsRequest", &["resource"][..]),
        ("ToolDefinition", &["name", "digest", "definition"][..]),
        ("ApproveToolPinRequest", &["digest"][..]),
    ])
}

fn scalar(kind: &str) -> Value {
    match kind {
        "uint32" => json!({"type": "integer", "minimum": 0, "maximum": u32::MAX}),
        "int32" => json!({"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX}),
        "uint64" => json!({"type": "integer", "minimum": 0, "maximum": u64::MAX}),
        "int64" => json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX}),
        other => json!({"type": other}),
    }
}

fn element(e: Element, pending: &mut Vec<&'static str>) -> Value {
    match e {
        Element::Scalar(kind) => scalar(kind),
        Element::Message(name) => {
            pending.push(name);
            json!({"$ref": format!("#/components/schemas/{name}")})
        }
    }
}

/// Merge `extra`'s keys into `schema` (objects only).
fn merge(schema: &mut Value, extra: &Value) {
    if let (Value::Object(target), Value::Object(source)) = (schema, extra) {
        for (key, value) in source {
            target.insert(key.clone(), value.clone());
        }
    }
}

/// Add the schema of `root` and of every message it refers to into `schemas`.
pub(crate) fn add_message(root: &'static str, schemas: &mut Map<String, Value>) {
    let constraints = constraints();
    let required = required();
    let mut pending = vec![root];
    while let Some(message) = pending.pop() {
        if schemas.contains_key(message) {
            continue;
        }
        let mut properties = Map::new();
        for (_, field, kind) in FIELDS.iter().filter(|(m, _, _)| *m == message) {
            let mut schema = match *kind {
                FieldKind::Single(e) => element(e, &mut pending),
                FieldKind::Optional(e) => {
                    json!({"anyOf": [element(e, &mut pending), {"type": "null"}]})
                }
                FieldKind::Repeated(e) => {
                    json!({"type": "array", "items": element(e, &mut pending)})
                }
                FieldKind::Map(value) => {
                    json!({"type": "object", "additionalProperties": scalar(value)})
                }
            };
            for (_, _, extra) in constraints
                .iter()
                .filter(|(m, f, _)| *m == message && f == field)
            {
                if let (Some(items), Some(extra_items)) =
                    (schema.get_mut("items"), extra.get("items"))
                {
                    merge(items, extra_items);
                    let mut rest = extra.clone();
                    if let Value::Object(rest) = &mut rest {
                        rest.remove("items");
                    }
                    merge(&mut schema, &rest);
                } else if let Some(any_of) = schema.get_mut("anyOf").and_then(|a| a.get_mut(0)) {
                    merge(any_of, extra);
                } else {
                    merge(&mut schema, extra);
                }
            }
            properties.insert((*field).to_owned(), schema);
        }
        let mut schema = json!({
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
            "description": format!("gate.v1.{message} as JSON (proto field names)"),
        });
        if let Some(fields) = required.get(message) {
            schema["required"] = json!(fields);
        }
        if message == "AuditEvent" {
            super::audit_json::adjust_schema(&mut schema);
        }
        schemas.insert(message.to_owned(), schema);
    }
}

/// `Identity.ssh_keys`: OpenSSH public key lines of the types connectors accept.
fn ssh_keys() -> Value {
    let types = gate_config::ssh::KEY_TYPES
        .iter()
        .map(|t| t.replace('.', "\\."))
        .collect::<Vec<_>>()
        .join("|");
    json!({
        "maxItems": 32,
        "items": {
            "type": "string",
            "maxLength": 16384,
            "pattern": format!("^({types}) [A-Za-z0-9+/=]+( [!-~ ]*)?$"),
        },
    })
}
