//! The fake API server's writes to one object: GET/PUT/DELETE, merge, JSON and apply patches.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::Method;
use axum::response::Response;
use serde_json::{Value, json};

use super::{Key, KindInfo, Refusal, Store, parse_json, query_param, refuse, refused, reply};

#[allow(clippy::too_many_arguments)]
pub(super) fn item(
    store: &Arc<Mutex<Store>>,
    method: &Method,
    key: &Key,
    info: &KindInfo,
    status: bool,
    content_type: &str,
    query: &str,
    body: &Bytes,
) -> Response {
    let mut store = store.lock().expect("store");
    let current = store.objects.get(key).cloned();
    let result = match *method {
        Method::GET => current.ok_or_else(|| {
            refuse(
                404,
                "NotFound",
                format!("{} \"{}\" not found", info.kind, key.2),
            )
        }),
        Method::PUT => parse_json(body).and_then(|new| store.update(key, info, new, status)),
        Method::DELETE if !status => store.delete(key, info),
        Method::PATCH => patch(
            &mut store,
            key,
            info,
            status,
            current,
            content_type,
            query,
            body,
        ),
        _ => Err(refuse(405, "MethodNotAllowed", "method not allowed")),
    };
    match result {
        Ok(v) => reply(200, &v),
        Err(r) => refused(r),
    }
}

#[allow(clippy::too_many_arguments)]
fn patch(
    store: &mut Store,
    key: &Key,
    info: &KindInfo,
    status: bool,
    current: Option<Value>,
    content_type: &str,
    query: &str,
    body: &Bytes,
) -> Result<Value, Refusal> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media == "application/apply-patch+yaml" {
        let manager = query_param(query, "fieldManager")
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                refuse(
                    400,
                    "BadRequest",
                    "PATCH with apply requires a fieldManager",
                )
            })?;
        let applied: Value = serde_json::from_slice(body)
            .or_else(|_| yaml_serde::from_slice(body))
            .map_err(|e| refuse(400, "BadRequest", format!("invalid apply body: {e}")))?;
        return apply(store, key, info, status, current, &manager, applied);
    }
    let Some(mut object) = current else {
        return Err(refuse(
            404,
            "NotFound",
            format!("{} \"{}\" not found", info.kind, key.2),
        ));
    };
    match media {
        "application/merge-patch+json" => json_patch::merge(&mut object, &parse_json(body)?),
        "application/json-patch+json" => {
            let ops: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| refuse(400, "BadRequest", format!("invalid JSON patch: {e}")))?;
            // Like the API server (evanphx/json-patch), `test` of null passes on a missing path.
            let ops: Vec<json_patch::PatchOperation> = ops
                .0
                .into_iter()
                .filter(|op| {
                    !matches!(op, json_patch::PatchOperation::Test(t)
                        if t.value.is_null() && object.pointer(t.path.as_str()).is_none())
                })
                .collect();
            json_patch::patch(&mut object, &ops)
                .map_err(|e| refuse(422, "Invalid", format!("the JSON patch was rejected: {e}")))?;
        }
        "application/strategic-merge-patch+json"
            if info.kind != "Event" && info.status_subresource =>
        {
            return Err(refuse(
                415,
                "UnsupportedMediaType",
                "strategic merge patch is not supported for custom resources",
            ));
        }
        "application/strategic-merge-patch+json" => {
            json_patch::merge(&mut object, &parse_json(body)?)
        }
        other => {
            return Err(refuse(
                415,
                "UnsupportedMediaType",
                format!("the body of the request was in an unknown format ({other})"),
            ));
        }
    }
    store.update(key, info, object, status)
}

/// Server-side apply, simplified: the applied configuration is merged into the object (fields it
/// leaves out are kept), the manager is recorded in `managedFields`, and a missing object is
/// created (404 for `/status`, as the API server answers).
fn apply(
    store: &mut Store,
    key: &Key,
    info: &KindInfo,
    status: bool,
    current: Option<Value>,
    manager: &str,
    mut applied: Value,
) -> Result<Value, Refusal> {
    let subresource = if status { "status" } else { "" };
    let entry = json!({"manager": manager, "operation": "Apply", "apiVersion": info.api_version,
                       "subresource": subresource});
    let Some(mut object) = current else {
        if status {
            return Err(refuse(
                404,
                "NotFound",
                format!("{} \"{}\" not found", info.kind, key.2),
            ));
        }
        applied["metadata"]["name"] = json!(key.2);
        applied["metadata"]["managedFields"] = json!([entry]);
        return store.create(&key.0, info, &key.1, applied);
    };
    if let Some(meta) = applied["metadata"].as_object_mut() {
        meta.remove("resourceVersion");
    }
    json_patch::merge(&mut object, &applied);
    let mut managed: Vec<Value> = object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    managed.retain(|m| !(m["manager"] == json!(manager) && m["subresource"] == json!(subresource)));
    managed.push(entry);
    object["metadata"]["managedFields"] = json!(managed);
    store.update(key, info, object, status)
}
