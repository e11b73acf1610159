//! Webhooks (list, create with the signing secret shown once, edit, delete) and outbox deliveries:
//! dead letters first, each replayable.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::session::Posted;
use super::{Crumb, Shared, Visitor, checked, given, list_field, see_other, with_extra};
use crate::error::{ApiError, ApiResult};

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/ui/webhooks", get(list).post(create))
        .route("/ui/webhooks/{id}", post(update))
        .route("/ui/webhooks/{id}/edit", get(edit))
        .route("/ui/webhooks/{id}/delete", post(delete))
        .route("/ui/deliveries/{id}/replay", post(replay))
}

const CRUMBS: &[Crumb<'static>] = &[("Overview", "/")];
const TITLE: &str = "Webhooks and deliveries";
const DELIVERY_STATES: &[&str] = &["dead", "pending", "delivering", "delivered"];

async fn page(
    ui: &Shared,
    visitor: &Visitor,
    status: StatusCode,
    state: &str,
    extra: Value,
) -> Response {
    let webhooks = match ui.api(visitor, "ListWebhooks", &[], &[], None).await {
        Ok(v) => v["webhooks"].clone(),
        Err(e) => return ui.failure(visitor, TITLE, CRUMBS, &e),
    };
    let mut query = vec![("limit", "100")];
    if !state.is_empty() {
        query.push(("state", state));
    }
    let deliveries = match ui.api(visitor, "ListDeliveries", &[], &query, None).await {
        Ok(v) => v["deliveries"].clone(),
        Err(e) => return ui.failure(visitor, TITLE, CRUMBS, &e),
    };
    let data = json!({
        "webhooks": webhooks, "deliveries": deliveries, "state": state, "states": DELIVERY_STATES,
    });
    let data = with_extra(data, extra);
    ui.page_with_status(status, visitor, "webhooks.html", TITLE, CRUMBS, data)
}

async fn list(
    State(ui): State<Shared>,
    visitor: Visitor,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let state = given(&pairs, &["state"])
        .first()
        .map_or("dead", |(_, v)| *v)
        .to_owned();
    let state = if state == "all" { String::new() } else { state };
    page(&ui, &visitor, StatusCode::OK, &state, Value::Null).await
}

async fn create(State(ui): State<Shared>, posted: Posted) -> Response {
    let body = json!({
        "url": posted.text("url").trim(), "events": list_field(&posted.text("events")),
        "description": posted.text("description"), "enabled": checked(&posted, "enabled"),
    });
    match ui
        .api(&posted.visitor, "CreateWebhook", &[], &[], Some(body))
        .await
    {
        Ok(created) => {
            let extra = json!({"secret": created["secret"]});
            page(&ui, &posted.visitor, StatusCode::CREATED, "dead", extra).await
        }
        Err(e) => refused(&ui, &posted, &e).await,
    }
}

async fn form(
    ui: &Shared,
    visitor: &Visitor,
    id: &str,
    status: StatusCode,
    extra: Value,
) -> Response {
    let crumbs = [CRUMBS[0], ("Webhooks", "/ui/webhooks")];
    let webhook = match ui
        .api(visitor, "GetWebhook", &[("id", id)], &[], None)
        .await
    {
        Ok(w) => w,
        Err(e) => return ui.failure(visitor, "Edit webhook", &crumbs, &e),
    };
    let data = with_extra(json!({"w": webhook}), extra);
    ui.page_with_status(
        status,
        visitor,
        "webhook_form.html",
        "Edit webhook",
        &crumbs,
        data,
    )
}

/// `GET /ui/webhooks/{id}/edit`.
async fn edit(State(ui): State<Shared>, Path(id): Path<String>, visitor: Visitor) -> Response {
    form(&ui, &visitor, &id, StatusCode::OK, Value::Null).await
}

/// `POST /ui/webhooks/{id}`: the API's UpdateWebhook (the signing secret is kept).
async fn update(State(ui): State<Shared>, Path(id): Path<String>, posted: Posted) -> Response {
    let body = json!({
        "url": posted.text("url").trim(), "events": list_field(&posted.text("events")),
        "description": posted.text("description"), "enabled": checked(&posted, "enabled"),
    });
    match ui
        .api(
            &posted.visitor,
            "UpdateWebhook",
            &[("id", &id)],
            &[],
            Some(body),
        )
        .await
    {
        Ok(_) => see_other("/ui/webhooks"),
        Err(e) => {
            let extra = json!({"error": e.message});
            form(&ui, &posted.visitor, &id, e.code.http(), extra).await
        }
    }
}

async fn delete(State(ui): State<Shared>, Path(id): Path<String>, posted: Posted) -> Response {
    let result = ui
        .api(&posted.visitor, "DeleteWebhook", &[("id", &id)], &[], None)
        .await;
    after(&ui, &posted, result, "/ui/webhooks").await
}

async fn replay(State(ui): State<Shared>, Path(id): Path<String>, posted: Posted) -> Response {
    let result = ui
        .api(&posted.visitor, "ReplayDelivery", &[("id", &id)], &[], None)
        .await;
    after(&ui, &posted, result, "/ui/webhooks?state=all").await
}

async fn refused(ui: &Shared, posted: &Posted, e: &ApiError) -> Response {
    let extra = json!({"error": e.message});
    page(ui, &posted.visitor, e.code.http(), "dead", extra).await
}

/// Back to `location` after a successful action, or the page with the API's refusal.
async fn after(ui: &Shared, posted: &Posted, result: ApiResult<Value>, location: &str) -> Response {
    match result {
        Ok(_) => see_other(location),
        Err(e) => refused(ui, posted, &e).await,
    }
}
