//! Simulate a policy against the input an audit event recorded (`details.input`): the event,
//! its input, a choice of policy and stage, and the decision the policy would make now.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::session::Posted;
use super::{Crumb, Shared, Visitor, simulation, with_extra};
use crate::service::policies::STAGES;

pub(super) fn routes() -> Router<Shared> {
    Router::new().route("/ui/audit/{id}/simulate", get(show).post(simulate))
}

const CRUMBS: &[Crumb<'static>] = &[("Overview", "/"), ("Audit", "/ui/audit")];
const TITLE: &str = "Simulate against a recorded input";

async fn page(
    ui: &Shared,
    visitor: &Visitor,
    id: &str,
    status: StatusCode,
    extra: Value,
) -> Response {
    let found = ui
        .api(
            visitor,
            "QueryAudit",
            &[],
            &[("id", id), ("limit", "1")],
            None,
        )
        .await;
    let event = match found {
        Ok(v) => v["events"][0].clone(),
        Err(e) => return ui.failure(visitor, TITLE, CRUMBS, &e),
    };
    if event.is_null() {
        let e = crate::error::ApiError::not_found("audit event");
        return ui.failure(visitor, TITLE, CRUMBS, &e);
    }
    let policies = match ui.api(visitor, "ListPolicies", &[], &[], None).await {
        Ok(v) => v["policies"].clone(),
        Err(e) => return ui.failure(visitor, TITLE, CRUMBS, &e),
    };
    let input = &event["details"]["input"];
    let pretty = input
        .is_object()
        .then(|| serde_json::to_string_pretty(input).unwrap_or_default());
    let data = json!({
        "event": event, "input": pretty, "policies": policies, "stages": STAGES,
        "sim_stage": event["stage"], "sim_policy": "",
    });
    let data = with_extra(data, extra);
    ui.page_with_status(status, visitor, "audit_simulate.html", TITLE, CRUMBS, data)
}

/// `GET /ui/audit/{id}/simulate`.
async fn show(State(ui): State<Shared>, Path(id): Path<String>, visitor: Visitor) -> Response {
    page(&ui, &visitor, &id, StatusCode::OK, Value::Null).await
}

/// `POST /ui/audit/{id}/simulate`: the API's SimulatePolicy with the event's id as the input.
async fn simulate(State(ui): State<Shared>, Path(id): Path<String>, posted: Posted) -> Response {
    let policy = posted.text("policy_id");
    let stage = posted.text("stage");
    let body = json!({"policy_id": policy, "stage": stage, "audit_event_id": id});
    let result = ui
        .api(&posted.visitor, "SimulatePolicy", &[], &[], Some(body))
        .await;
    let (status, extra) = simulation(result);
    let mut extra = extra;
    extra["sim_stage"] = json!(stage);
    extra["sim_policy"] = json!(policy);
    page(&ui, &posted.visitor, &id, status, extra).await
}
