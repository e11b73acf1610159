//! Identities (create, edit, delete) and groups (members), and the organization's API keys:
//! created with the secret shown once, and revoked.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::session::Posted;
use super::{Crumb, Shared, Visitor, list_field, see_other, with_extra};
use crate::auth::Role;
use crate::service::identities::KINDS;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/ui/identities", get(list).post(create_identity))
        .route("/ui/identities/{id}", post(update_identity))
        .route("/ui/identities/{id}/edit", get(edit_identity))
        .route("/ui/identities/{id}/delete", post(delete_identity))
        .route("/ui/groups", post(create_group))
        .route("/ui/groups/{id}/members", post(add_member))
        .route(
            "/ui/groups/{id}/members/{identity}/remove",
            post(remove_member),
        )
        .route("/ui/keys", get(keys).post(create_key))
        .route("/ui/keys/{id}/revoke", post(revoke_key))
}

const CRUMBS: &[Crumb<'static>] = &[("Overview", "/")];

async fn identities_page(
    ui: &Shared,
    visitor: &Visitor,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let title = "Identities and groups";
    let identities = match ui.api(visitor, "ListIdentities", &[], &[], None).await {
        Ok(v) => v["identities"].clone(),
        Err(e) => return ui.failure(visitor, title, CRUMBS, &e),
    };
    let groups = match ui.api(visitor, "ListGroups", &[], &[], None).await {
        Ok(v) => v["groups"].clone(),
        Err(e) => return ui.failure(visitor, title, CRUMBS, &e),
    };
    let data = json!({"identities": identities, "groups": groups, "kinds": KINDS, "error": error});
    ui.page_with_status(status, visitor, "identities.html", title, CRUMBS, data)
}

async fn list(State(ui): State<Shared>, visitor: Visitor) -> Response {
    identities_page(&ui, &visitor, StatusCode::OK, None).await
}

async fn after(ui: Shared, posted: Posted, result: crate::error::ApiResult<Value>) -> Response {
    match result {
        Ok(_) => see_other("/ui/identities"),
        Err(e) => identities_page(&ui, &posted.visitor, e.code.http(), Some(e.message)).await,
    }
}

async fn create_identity(State(ui): State<Shared>, posted: Posted) -> Response {
    let body = json!({
        "name": posted.text("name").trim(), "email": posted.text("email").trim(),
        "kind": posted.text("kind"), "groups": list_field(&posted.text("groups")),
    });
    let result = ui
        .api(&posted.visitor, "CreateIdentity", &[], &[], Some(body))
        .await;
    after(ui, posted, result).await
}

async fn identity_form(
    ui: &Shared,
    visitor: &Visitor,
    id: &str,
    status: StatusCode,
    extra: Value,
) -> Response {
    let crumbs = [CRUMBS[0], ("Identities", "/ui/identities")];
    let identity = match ui
        .api(visitor, "GetIdentity", &[("id", id)], &[], None)
        .await
    {
        Ok(i) => i,
        Err(e) => return ui.failure(visitor, "Edit identity", &crumbs, &e),
    };
    let title = format!("Edit {}", identity["name"].as_str().unwrap_or("identity"));
    let data = with_extra(json!({"i": identity, "kinds": KINDS}), extra);
    ui.page_with_status(status, visitor, "identity_form.html", &title, &crumbs, data)
}

/// `GET /ui/identities/{id}/edit`.
async fn edit_identity(
    State(ui): State<Shared>,
    Path(id): Path<String>,
    visitor: Visitor,
) -> Response {
    identity_form(&ui, &visitor, &id, StatusCode::OK, Value::Null).await
}

/// `POST /ui/identities/{id}`: the API's UpdateIdentity with the form's fields (groups are
/// changed on the groups, so they are not sent).
async fn update_identity(
    State(ui): State<Shared>,
    Path(id): Path<String>,
    posted: Posted,
) -> Response {
    let body = json!({
        "name": posted.text("name").trim(), "email": posted.text("email").trim(),
        "kind": posted.text("kind"),
        "ssh_keys": posted.text("ssh_keys").lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>(),
    });
    let result = ui
        .api(
            &posted.visitor,
            "UpdateIdentity",
            &[("id", &id)],
            &[],
            Some(body),
        )
        .await;
    match result {
        Ok(_) => see_other("/ui/identities"),
        Err(e) => {
            let extra = json!({"error": e.message});
            identity_form(&ui, &posted.visitor, &id, e.code.http(), extra).await
        }
    }
}

/// `POST /ui/identities/{id}/delete`.
async fn delete_identity(
    State(ui): State<Shared>,
    Path(id): Path<String>,
    posted: Posted,
) -> Response {
    let result = ui
        .api(&posted.visitor, "DeleteIdentity", &[("id", &id)], &[], None)
        .await;
    after(ui, posted, result).await
}

async fn create_group(State(ui): State<Shared>, posted: Posted) -> Response {
    let body =
        json!({"name": posted.text("name").trim(), "description": posted.text("description")});
    let result = ui
        .api(&posted.visitor, "CreateGroup", &[], &[], Some(body))
        .await;
    after(ui, posted, result).await
}

async fn add_member(State(ui): State<Shared>, Path(id): Path<String>, posted: Posted) -> Response {
    let identity = posted.text("identity_id");
    let params = [("id", id.as_str()), ("identity_id", identity.as_str())];
    let result = ui
        .api(&posted.visitor, "AddGroupMember", &params, &[], None)
        .await;
    after(ui, posted, result).await
}

async fn remove_member(
    State(ui): State<Shared>,
    Path((id, identity)): Path<(String, String)>,
    posted: Posted,
) -> Response {
    let params = [("id", id.as_str()), ("identity_id", identity.as_str())];
    let result = ui
        .api(&posted.visitor, "RemoveGroupMember", &params, &[], None)
        .await;
    after(ui, posted, result).await
}

async fn keys_page(ui: &Shared, visitor: &Visitor, status: StatusCode, extra: Value) -> Response {
    let title = "API keys";
    let keys = match ui.api(visitor, "ListApiKeys", &[], &[], None).await {
        Ok(v) => v["api_keys"].clone(),
        Err(e) => return ui.failure(visitor, title, CRUMBS, &e),
    };
    let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    let data = json!({"keys": keys, "roles": roles});
    let data = with_extra(data, extra);
    ui.page_with_status(status, visitor, "keys.html", title, CRUMBS, data)
}

async fn keys(State(ui): State<Shared>, visitor: Visitor) -> Response {
    keys_page(&ui, &visitor, StatusCode::OK, Value::Null).await
}

/// The new key's secret is in this one response and never again.
async fn create_key(State(ui): State<Shared>, posted: Posted) -> Response {
    let body = json!({"name": posted.text("name").trim(), "role": posted.text("role")});
    match ui
        .api(&posted.visitor, "CreateApiKey", &[], &[], Some(body))
        .await
    {
        Ok(created) => {
            let extra = json!({"secret": created["secret"], "created": created["api_key"]});
            keys_page(&ui, &posted.visitor, StatusCode::CREATED, extra).await
        }
        Err(e) => key_refused(&ui, &posted, &e).await,
    }
}

async fn revoke_key(State(ui): State<Shared>, Path(id): Path<String>, posted: Posted) -> Response {
    match ui
        .api(&posted.visitor, "RevokeApiKey", &[("id", &id)], &[], None)
        .await
    {
        Ok(_) => see_other("/ui/keys"),
        Err(e) => key_refused(&ui, &posted, &e).await,
    }
}

async fn key_refused(ui: &Shared, posted: &Posted, e: &crate::error::ApiError) -> Response {
    let extra = json!({"error": e.message});
    keys_page(ui, &posted.visitor, e.code.http(), extra).await
}
