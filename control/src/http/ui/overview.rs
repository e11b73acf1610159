//! The overview page: connectors by status, recent blocked requests, pending access requests.

use axum::extract::State;
use axum::response::Response;
use serde_json::{Value, json};

use super::{Shared, Visitor};

fn items(value: &Value, key: &str) -> Vec<Value> {
    value
        .get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// `GET /`.
pub(super) async fn show(State(ui): State<Shared>, visitor: Visitor) -> Response {
    let connectors = match ui.api(&visitor, "ListConnectors", &[], &[], None).await {
        Ok(v) => items(&v, "connectors"),
        Err(e) => return ui.failure(&visitor, "Overview", &[], &e),
    };
    let count = |status: &str| {
        connectors
            .iter()
            .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
            .count()
    };
    let blocks = ui
        .api(
            &visitor,
            "QueryAudit",
            &[],
            &[("action", "block"), ("limit", "10")],
            None,
        )
        .await
        .map(|v| items(&v, "events"))
        .unwrap_or_default();
    let pending = ui
        .api(
            &visitor,
            "ListAccessRequests",
            &[],
            &[("status", "pending")],
            None,
        )
        .await
        .map(|v| items(&v, "access_requests"))
        .unwrap_or_default();
    ui.page(
        &visitor,
        "overview.html",
        "Overview",
        &[],
        json!({
            "online": count("online"),
            "stale": count("stale"),
            "offline": count("offline"),
            "connectors": connectors,
            "blocks": blocks,
            "pending": pending,
        }),
    )
}
