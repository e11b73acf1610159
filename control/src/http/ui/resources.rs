//! Resources: list, detail, create and edit (the API's CreateResource and UpdateResource).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::session::Posted;
use super::{Crumb, Shared, Visitor, checked, list_field, see_other};
use crate::service::resources::PROTOCOLS;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/ui/resources", get(list).post(create))
        .route("/ui/resources/new", get(new_form))
        .route("/ui/resources/{id}", get(show).post(update))
        .route("/ui/resources/{id}/edit", get(edit_form))
        .route("/ui/resources/{id}/delete", post(delete))
}

const CRUMBS: &[Crumb<'static>] = &[("Overview", "/")];
const LIST: Crumb<'static> = ("Resources", "/ui/resources");

async fn list(State(ui): State<Shared>, visitor: Visitor) -> Response {
    match ui.api(&visitor, "ListResources", &[], &[], None).await {
        Ok(v) => ui.page(&visitor, "resources.html", "Resources", CRUMBS, v),
        Err(e) => ui.failure(&visitor, "Resources", CRUMBS, &e),
    }
}

async fn show(State(ui): State<Shared>, visitor: Visitor, Path(id): Path<String>) -> Response {
    let crumbs = [CRUMBS[0], LIST];
    match ui
        .api(&visitor, "GetResource", &[("id", &id)], &[], None)
        .await
    {
        Ok(r) => {
            let title = r["name"].as_str().unwrap_or("Resource").to_owned();
            ui.page(&visitor, "resource.html", &title, &crumbs, json!({"r": r}))
        }
        Err(e) => ui.failure(&visitor, "Resource", &crumbs, &e),
    }
}

fn form_page(
    ui: &Shared,
    visitor: &Visitor,
    status: StatusCode,
    resource: Value,
    error: Option<(String, Option<String>)>,
) -> Response {
    let id = resource["id"].as_str().unwrap_or_default().to_owned();
    let title = if id.is_empty() {
        "New resource"
    } else {
        "Edit resource"
    };
    let crumbs = [CRUMBS[0], LIST];
    let labels: Vec<String> = resource["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let (error, field) = error.unzip();
    ui.page_with_status(
        status,
        visitor,
        "resource_form.html",
        title,
        &crumbs,
        json!({
            "r": resource, "id": id, "labels": labels.join("\n"),
            "protocols": PROTOCOLS, "error": error, "field": field.flatten(),
        }),
    )
}

async fn new_form(State(ui): State<Shared>, visitor: Visitor) -> Response {
    form_page(
        &ui,
        &visitor,
        StatusCode::OK,
        json!({"protocol": "postgres"}),
        None,
    )
}

async fn edit_form(State(ui): State<Shared>, visitor: Visitor, Path(id): Path<String>) -> Response {
    match ui
        .api(&visitor, "GetResource", &[("id", &id)], &[], None)
        .await
    {
        Ok(r) => form_page(&ui, &visitor, StatusCode::OK, r, None),
        Err(e) => ui.failure(&visitor, "Edit resource", CRUMBS, &e),
    }
}

/// The form as the API's Resource JSON (a port that is not a number is sent as typed, so the
/// API's own error names the field).
fn resource_json(posted: &Posted) -> Value {
    let port = posted.text("port");
    let port = port.trim().parse::<u32>().map_or(json!(port), |p| json!(p));
    let mut labels = Map::new();
    for line in posted.text("labels").lines() {
        if let Some((k, v)) = line.split_once('=') {
            labels.insert(k.trim().to_owned(), json!(v.trim()));
        } else if !line.trim().is_empty() {
            labels.insert(line.trim().to_owned(), json!(""));
        }
    }
    json!({
        "name": posted.text("name").trim(),
        "protocol": posted.text("protocol"),
        "host": posted.text("host").trim(),
        "port": port,
        "database": posted.text("database").trim(),
        "labels": labels,
        "require_access_grant": checked(posted, "require_access_grant"),
        "approver_groups": list_field(&posted.text("approver_groups")),
        "owner": posted.text("owner").trim(),
    })
}

async fn save(ui: Shared, posted: Posted, id: Option<String>) -> Response {
    let body = resource_json(&posted);
    let result = match &id {
        None => {
            ui.api(
                &posted.visitor,
                "CreateResource",
                &[],
                &[],
                Some(body.clone()),
            )
            .await
        }
        Some(id) => {
            ui.api(
                &posted.visitor,
                "UpdateResource",
                &[("id", id)],
                &[],
                Some(body.clone()),
            )
            .await
        }
    };
    match result {
        Ok(r) => see_other(&format!(
            "/ui/resources/{}",
            r["id"].as_str().unwrap_or_default()
        )),
        Err(e) => {
            let mut shown = body;
            shown["id"] = json!(id.unwrap_or_default());
            let status = e.code.http();
            form_page(
                &ui,
                &posted.visitor,
                status,
                shown,
                Some((e.message, e.field)),
            )
        }
    }
}

async fn create(State(ui): State<Shared>, posted: Posted) -> Response {
    save(ui, posted, None).await
}

async fn update(State(ui): State<Shared>, Path(id): Path<String>, posted: Posted) -> Response {
    save(ui, posted, Some(id)).await
}

async fn delete(State(ui): State<Shared>, Path(id): Path<String>, posted: Posted) -> Response {
    match ui
        .api(&posted.visitor, "DeleteResource", &[("id", &id)], &[], None)
        .await
    {
        Ok(_) => see_other("/ui/resources"),
        Err(e) => ui.failure(&posted.visitor, "Delete resource", CRUMBS, &e),
    }
}
