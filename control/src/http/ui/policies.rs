//! Policies: list by state, source with highlighting, versions with diffs, create and edit with
//! compile errors at their line, state changes and rollback, simulate, and dry-run findings.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};
use similar::{ChangeTag, TextDiff};

use super::highlight;
use super::session::Posted;
use super::{Crumb, Shared, Visitor, list_field, see_other, with_extra};
use crate::error::ApiError;
use crate::service::policies::{STAGES, STATES};

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/ui/policies", get(list).post(create))
        .route("/ui/policies/new", get(new_form))
        .route("/ui/policies/{id}", get(show).post(update))
        .route("/ui/policies/{id}/edit", get(edit_form))
        .route("/ui/policies/{id}/state", post(set_state))
        .route("/ui/policies/{id}/simulate", post(simulate))
}

const CRUMBS: &[Crumb<'static>] = &[("Overview", "/")];
const LIST: Crumb<'static> = ("Policies", "/ui/policies");
/// How many recent audit events are searched for a dry-run policy's findings.
const FINDINGS_SCAN: &str = "500";

async fn list(State(ui): State<Shared>, visitor: Visitor) -> Response {
    let policies = match ui.api(&visitor, "ListPolicies", &[], &[], None).await {
        Ok(v) => v["policies"].as_array().cloned().unwrap_or_default(),
        Err(e) => return ui.failure(&visitor, "Policies", CRUMBS, &e),
    };
    let groups: Vec<Value> = STATES
        .iter()
        .rev()
        .map(|state| {
            let members: Vec<&Value> = policies
                .iter()
                .filter(|p| p["state"].as_str() == Some(state))
                .collect();
            json!({"state": state, "policies": members})
        })
        .collect();
    let data = json!({"groups": groups, "total": policies.len()});
    ui.page(&visitor, "policies.html", "Policies", CRUMBS, data)
}

/// Line diffs between consecutive versions, newest first.
fn version_diffs(history: &Value) -> Vec<Value> {
    let mut versions = history["versions"].as_array().cloned().unwrap_or_default();
    versions.sort_by_key(|v| v["version"].as_u64().unwrap_or_default());
    let mut out = Vec::with_capacity(versions.len());
    let mut previous = String::new();
    for v in &versions {
        let rego = v["rego"].as_str().unwrap_or_default();
        let lines: Vec<Value> = TextDiff::from_lines(previous.as_str(), rego)
            .iter_all_changes()
            .map(|change| {
                let tag = match change.tag() {
                    ChangeTag::Insert => "add",
                    ChangeTag::Delete => "del",
                    ChangeTag::Equal => "same",
                };
                json!({"tag": tag, "text": change.value().trim_end_matches('\n')})
            })
            .collect();
        out.push(json!({
            "version": v["version"], "created_at": v["created_at"],
            "created_by": v["created_by"], "diff": lines,
        }));
        previous = rego.to_owned();
    }
    out.reverse();
    out
}

/// Recent audit events in which this dry-run policy would have decided something.
async fn dry_run_findings(ui: &Shared, visitor: &Visitor, name: &str) -> Vec<Value> {
    let Ok(page) = ui
        .api(
            visitor,
            "QueryAudit",
            &[],
            &[("limit", FINDINGS_SCAN)],
            None,
        )
        .await
    else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for event in page["events"].as_array().into_iter().flatten() {
        for finding in event["details"]["dry_run"].as_array().into_iter().flatten() {
            if finding["policy"].as_str() == Some(name) {
                found.push(json!({
                    "time": event["time"], "identity": event["identity"],
                    "resource": event["resource"], "statement": event["statement"],
                    "would": finding["would"], "reason": finding["reason"],
                }));
            }
        }
    }
    found
}

/// The policy page, with `extra` (a simulation result or a refused action) merged in.
async fn detail(
    ui: &Shared,
    visitor: &Visitor,
    id: &str,
    status: StatusCode,
    extra: Value,
) -> Response {
    let crumbs = [CRUMBS[0], LIST];
    let policy = match ui.api(visitor, "GetPolicy", &[("id", id)], &[], None).await {
        Ok(p) => p,
        Err(e) => return ui.failure(visitor, "Policy", &crumbs, &e),
    };
    let history = ui
        .api(visitor, "GetPolicyHistory", &[("id", id)], &[], None)
        .await
        .unwrap_or_default();
    let name = policy["name"].as_str().unwrap_or("Policy").to_owned();
    let findings = if policy["state"] == "dry_run" {
        Some(dry_run_findings(ui, visitor, &name).await)
    } else {
        None
    };
    let data = json!({
        "p": policy,
        "source": highlight::lines(policy["rego"].as_str().unwrap_or_default()),
        "versions": version_diffs(&history),
        "changes": history["changes"],
        "findings": findings,
        "states": STATES,
        "stages": STAGES,
        "sim_input": "{\n  \"identity\": {\"name\": \"alice\", \"groups\": [\"dev\"]},\n  \"resource\": {\"name\": \"\"},\n  \"query\": \"SELECT 1\"\n}",
    });
    let data = with_extra(data, extra);
    ui.page_with_status(status, visitor, "policy.html", &name, &crumbs, data)
}

async fn show(State(ui): State<Shared>, visitor: Visitor, Path(id): Path<String>) -> Response {
    detail(&ui, &visitor, &id, StatusCode::OK, Value::Null).await
}

/// The create/edit form; a compile error is shown at the line it names.
fn form_page(
    ui: &Shared,
    visitor: &Visitor,
    status: StatusCode,
    p: Value,
    error: Option<&ApiError>,
) -> Response {
    let id = p["id"].as_str().unwrap_or_default().to_owned();
    let title = if id.is_empty() {
        "New policy"
    } else {
        "Edit policy"
    };
    let crumbs = [CRUMBS[0], LIST];
    let message = error.map(|e| e.message.clone());
    let error_line = message.as_deref().and_then(highlight::error_line);
    let rego = p["rego"].as_str().unwrap_or_default().to_owned();
    ui.page_with_status(
        status,
        visitor,
        "policy_form.html",
        title,
        &crumbs,
        json!({
            "p": p, "id": id, "stages": STAGES, "states": STATES,
            "error": message, "field": error.and_then(|e| e.field.clone()),
            "error_line": error_line,
            "source": error_line.map(|_| highlight::lines(&rego)),
        }),
    )
}

async fn new_form(State(ui): State<Shared>, visitor: Visitor) -> Response {
    let p = json!({"stages": ["pre_request"], "targets": [], "state": "draft",
        "rego": "package gate.example\n\nimport rego.v1\n\ndecision := {\"action\": \"block\", \"reason\": \"example\"} if {\n  input.identity.name == \"nobody\"\n}\n"});
    form_page(&ui, &visitor, StatusCode::OK, p, None)
}

async fn edit_form(State(ui): State<Shared>, visitor: Visitor, Path(id): Path<String>) -> Response {
    match ui
        .api(&visitor, "GetPolicy", &[("id", &id)], &[], None)
        .await
    {
        Ok(p) => form_page(&ui, &visitor, StatusCode::OK, p, None),
        Err(e) => ui.failure(&visitor, "Edit policy", CRUMBS, &e),
    }
}

fn stages_of(posted: &Posted) -> Vec<String> {
    STAGES
        .iter()
        .filter(|s| posted.get(&format!("stage_{s}")).is_some())
        .map(|s| (*s).to_owned())
        .collect()
}

async fn create(State(ui): State<Shared>, posted: Posted) -> Response {
    let body = json!({
        "name": posted.text("name").trim(),
        "description": posted.text("description"),
        "stages": stages_of(&posted),
        "targets": list_field(&posted.text("targets")),
        "rego": posted.text("rego"),
        "state": "draft",
    });
    match ui
        .api(
            &posted.visitor,
            "CreatePolicy",
            &[],
            &[],
            Some(body.clone()),
        )
        .await
    {
        Ok(p) => see_other(&format!(
            "/ui/policies/{}",
            p["id"].as_str().unwrap_or_default()
        )),
        Err(e) => form_page(&ui, &posted.visitor, e.code.http(), body, Some(&e)),
    }
}

async fn update(State(ui): State<Shared>, Path(id): Path<String>, posted: Posted) -> Response {
    let body = json!({
        "description": posted.text("description"),
        "stages": stages_of(&posted),
        "targets": list_field(&posted.text("targets")),
        "rego": posted.text("rego"),
    });
    match ui
        .api(
            &posted.visitor,
            "UpdatePolicy",
            &[("id", &id)],
            &[],
            Some(body.clone()),
        )
        .await
    {
        Ok(_) => see_other(&format!("/ui/policies/{id}")),
        Err(e) => {
            let mut shown = body;
            shown["id"] = json!(id);
            shown["name"] = json!(posted.text("name"));
            form_page(&ui, &posted.visitor, e.code.http(), shown, Some(&e))
        }
    }
}

/// `POST /ui/policies/{id}/state`: a state change or rollback, only with the confirmation ticked.
async fn set_state(State(ui): State<Shared>, Path(id): Path<String>, posted: Posted) -> Response {
    if posted.get("confirmed").is_none_or(str::is_empty) {
        let extra = json!({"state_error": "Tick the confirmation box: changing a policy's state changes what connectors enforce."});
        return detail(&ui, &posted.visitor, &id, StatusCode::BAD_REQUEST, extra).await;
    }
    let mut body = json!({"state": posted.text("state")});
    let version = posted.text("version");
    if !version.is_empty() {
        body["version"] = version.parse::<u64>().map_or(json!(version), |v| json!(v));
    }
    match ui
        .api(
            &posted.visitor,
            "SetPolicyState",
            &[("id", &id)],
            &[],
            Some(body),
        )
        .await
    {
        Ok(_) => see_other(&format!("/ui/policies/{id}")),
        Err(e) => {
            let extra = json!({"state_error": e.message});
            detail(&ui, &posted.visitor, &id, e.code.http(), extra).await
        }
    }
}

/// `POST /ui/policies/{id}/simulate`: evaluate the saved policy against a pasted input.
async fn simulate(State(ui): State<Shared>, Path(id): Path<String>, posted: Posted) -> Response {
    let text = posted.text("input");
    let input = match serde_json::from_str::<Value>(&text) {
        Ok(v) => v,
        Err(e) => {
            let extra =
                json!({"sim_error": format!("input: not valid JSON: {e}"), "sim_input": text});
            return detail(&ui, &posted.visitor, &id, StatusCode::BAD_REQUEST, extra).await;
        }
    };
    let body = json!({"policy_id": id, "stage": posted.text("stage"), "input": input});
    let result = ui
        .api(&posted.visitor, "SimulatePolicy", &[], &[], Some(body))
        .await;
    let (status, extra) = super::simulation(result);
    let mut extra = extra;
    extra["sim_input"] = json!(text);
    extra["sim_stage"] = json!(posted.text("stage"));
    detail(&ui, &posted.visitor, &id, status, extra).await
}
