//! Event bodies, as webhooks receive them (`docs/webhook-signatures.md` lists every type):
//! `{"id", "type", "org_id", "created_at", "data": {...}}`.

use gate_proto::v1::AccessRequest;
use serde_json::{Value, json};

use crate::store::Event;
use crate::util::{new_id, now_ms, rfc3339};

/// The body of an access-request lifecycle event (`access.requested`, `.approved`, `.denied`,
/// `.revoked`, `.expired`): every field of the request, the deciders only when set.
pub fn access_event(event_type: &'static str, r: &AccessRequest) -> Event {
    let scopes: Vec<Value> = r
        .scopes
        .iter()
        .map(|s| json!({"operation": s.operation, "target": s.target}))
        .collect();
    let mut request = json!({
        "id": r.id,
        "org_id": r.org_id,
        "requested_by": r.requested_by,
        "subject": r.subject,
        "resource_id": r.resource_id,
        "resource": r.resource,
        "reason": r.reason,
        "duration_seconds": r.duration_seconds,
        "status": r.status,
        "scopes": scopes,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
    });
    for (name, value) in [
        ("approved_by", &r.approved_by),
        ("denied_by", &r.denied_by),
        ("revoked_by", &r.revoked_by),
        ("expires_at", &r.expires_at),
    ] {
        if !value.is_empty() {
            request[name] = json!(value);
        }
    }
    event(event_type, &r.org_id, json!({ "access_request": request }))
}

/// An event with a new id and the current time.
pub fn event(event_type: &'static str, org_id: &str, data: Value) -> Event {
    let id = new_id();
    let body = json!({
        "id": id,
        "type": event_type,
        "org_id": org_id,
        "created_at": rfc3339(now_ms()),
        "data": data,
    });
    Event {
        id,
        org_id: org_id.to_owned(),
        event_type,
        body: body.to_string(),
    }
}
