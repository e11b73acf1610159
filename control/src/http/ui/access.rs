//! Access requests: pending first, approve / deny / revoke (the service applies the approver
//! rules), an expiry countdown for approved ones, and a form to ask for access.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::session::Posted;
use super::{Crumb, Shared, Visitor, see_other, with_extra};
use crate::error::ApiResult;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/ui/access-requests", get(list).post(create))
        .route("/ui/access-requests/{id}/{decision}", post(decide))
}

const CRUMBS: &[Crumb<'static>] = &[("Overview", "/")];
const TITLE: &str = "Access requests";

/// Pending first, then approved, then the rest; newest first within each.
fn ordered(mut requests: Vec<Value>) -> Vec<Value> {
    let rank = |r: &Value| match r["status"].as_str() {
        Some("pending") => 0,
        Some("approved") => 1,
        _ => 2,
    };
    requests.sort_by(|a, b| {
        rank(a).cmp(&rank(b)).then_with(|| {
            b["created_at"]
                .as_str()
                .unwrap_or_default()
                .cmp(a["created_at"].as_str().unwrap_or_default())
        })
    });
    requests
}

async fn page(ui: &Shared, visitor: &Visitor, status: StatusCode, extra: Value) -> Response {
    let requests = match ui.api(visitor, "ListAccessRequests", &[], &[], None).await {
        Ok(v) => ordered(v["access_requests"].as_array().cloned().unwrap_or_default()),
        Err(e) => return ui.failure(visitor, TITLE, CRUMBS, &e),
    };
    let resources = ui
        .api(visitor, "ListResources", &[], &[], None)
        .await
        .map(|v| v["resources"].clone())
        .unwrap_or_default();
    let data = json!({"requests": requests, "resources": resources});
    let data = with_extra(data, extra);
    ui.page_with_status(status, visitor, "access.html", TITLE, CRUMBS, data)
}

async fn list(State(ui): State<Shared>, visitor: Visitor) -> Response {
    page(&ui, &visitor, StatusCode::OK, Value::Null).await
}

async fn create(State(ui): State<Shared>, posted: Posted) -> Response {
    let minutes = posted.text("minutes");
    let duration = minutes
        .trim()
        .parse::<u64>()
        .map_or(json!(minutes), |m| json!(m.saturating_mul(60)));
    let body = json!({
        "subject": posted.text("subject").trim(),
        "resource_id": posted.text("resource_id"),
        "reason": posted.text("reason"),
        "duration_seconds": duration,
    });
    let result = ui
        .api(&posted.visitor, "CreateAccessRequest", &[], &[], Some(body))
        .await;
    after(&ui, &posted, result).await
}

/// `POST /ui/access-requests/{id}/{approve|deny|revoke}`.
async fn decide(
    State(ui): State<Shared>,
    Path((id, decision)): Path<(String, String)>,
    posted: Posted,
) -> Response {
    let operation = match decision.as_str() {
        "approve" => "ApproveAccessRequest",
        "deny" => "DenyAccessRequest",
        "revoke" => "RevokeAccessRequest",
        _ => {
            let extra = json!({"error": format!("unknown decision {decision:?}: expected approve, deny or revoke")});
            return page(&ui, &posted.visitor, StatusCode::NOT_FOUND, extra).await;
        }
    };
    let params = [("id", id.as_str())];
    let result = ui
        .api(&posted.visitor, operation, &params, &[], Some(json!({})))
        .await;
    after(&ui, &posted, result).await
}

/// Back to the list after a successful action, or the list with the API's refusal.
async fn after(ui: &Shared, posted: &Posted, result: ApiResult<Value>) -> Response {
    match result {
        Ok(_) => see_other("/ui/access-requests"),
        Err(e) => {
            page(
                ui,
                &posted.visitor,
                e.code.http(),
                json!({"error": e.message}),
            )
            .await
        }
    }
}
