//! The admin UI at `/` and `/ui/*`: server-rendered pages from minijinja templates embedded in the
//! binary. Every read and action goes through the `/api/v1` dispatcher with the signed-in key, so
//! the same service functions and authorization decide (a readonly key is refused here too).

mod access;
mod audit;
mod audit_simulate;
mod highlight;
mod identities;
mod oidc_login;
mod overview;
mod policies;
mod recordings;
mod resources;
mod session;
mod webhooks;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use serde_json::{Value, json};

use super::api::{Call, Reply, dispatch};
use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult, Code};
use crate::service::ControlPlane;
pub(super) use session::Visitor;
use session::{Posted, Sessions};

/// The UI's shared state: the control plane, the signed-in sessions and the templates.
pub(super) struct Ui {
    cp: Arc<ControlPlane>,
    sessions: Sessions,
    /// OIDC sign-ins on their way through the provider.
    flows: oidc_login::Flows,
    templates: Environment<'static>,
}

type Shared = Arc<Ui>;

/// Every template, embedded at build time.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "layout.html",
        include_str!("../../../templates/layout.html"),
    ),
    (
        "macros.html",
        include_str!("../../../templates/macros.html"),
    ),
    ("login.html", include_str!("../../../templates/login.html")),
    ("error.html", include_str!("../../../templates/error.html")),
    (
        "signed_in.html",
        include_str!("../../../templates/signed_in.html"),
    ),
    (
        "overview.html",
        include_str!("../../../templates/overview.html"),
    ),
    (
        "resources.html",
        include_str!("../../../templates/resources.html"),
    ),
    (
        "resource.html",
        include_str!("../../../templates/resource.html"),
    ),
    (
        "resource_form.html",
        include_str!("../../../templates/resource_form.html"),
    ),
    (
        "policies.html",
        include_str!("../../../templates/policies.html"),
    ),
    (
        "policy.html",
        include_str!("../../../templates/policy.html"),
    ),
    (
        "policy_form.html",
        include_str!("../../../templates/policy_form.html"),
    ),
    (
        "access.html",
        include_str!("../../../templates/access.html"),
    ),
    ("audit.html", include_str!("../../../templates/audit.html")),
    (
        "audit_simulate.html",
        include_str!("../../../templates/audit_simulate.html"),
    ),
    (
        "recordings.html",
        include_str!("../../../templates/recordings.html"),
    ),
    (
        "recording.html",
        include_str!("../../../templates/recording.html"),
    ),
    (
        "identities.html",
        include_str!("../../../templates/identities.html"),
    ),
    ("keys.html", include_str!("../../../templates/keys.html")),
    (
        "identity_form.html",
        include_str!("../../../templates/identity_form.html"),
    ),
    (
        "webhook_form.html",
        include_str!("../../../templates/webhook_form.html"),
    ),
    (
        "webhooks.html",
        include_str!("../../../templates/webhooks.html"),
    ),
];

const CSS: &str = include_str!("../../../static/ui.css");
const JS: &str = include_str!("../../../static/ui.js");
const PLAYER_JS: &str = include_str!("../../../static/player.js");

/// The UI's routes, with their own state, merged into the control plane's router.
pub(super) fn router(cp: Arc<ControlPlane>) -> Router {
    let mut templates = Environment::new();
    for (name, source) in TEMPLATES {
        if let Err(e) = templates.add_template(name, source) {
            // A template that does not parse is a build defect; the UI tests render every page.
            tracing::error!(template = name, error = %e, "admin UI template does not parse");
        }
    }
    let ui = Arc::new(Ui {
        cp,
        sessions: Sessions::default(),
        flows: oidc_login::Flows::default(),
        templates,
    });
    Router::new()
        .route("/", get(overview::show))
        .route("/ui/static/ui.css", get(|| static_file("text/css", CSS)))
        .route(
            "/ui/static/ui.js",
            get(|| static_file("text/javascript", JS)),
        )
        .route(
            "/ui/static/player.js",
            get(|| static_file("text/javascript", PLAYER_JS)),
        )
        .route("/ui/login", get(session::login_form).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/oidc/start", get(oidc_login::start))
        .route("/ui/oidc/callback", get(oidc_login::callback))
        .merge(resources::routes())
        .merge(policies::routes())
        .merge(access::routes())
        .merge(audit::routes())
        .merge(audit_simulate::routes())
        .merge(recordings::routes())
        .merge(identities::routes())
        .merge(webhooks::routes())
        .with_state(ui)
}

async fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// One breadcrumb: its label and link (the last one, the current page, has none).
pub(super) type Crumb<'a> = (&'a str, &'a str);

impl Ui {
    /// Run an `/api/v1` operation as the visitor: the same dispatcher, service and authorization.
    async fn api(
        &self,
        visitor: &Visitor,
        operation: &str,
        params: &[(&str, &str)],
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> ApiResult<Value> {
        match self
            .api_reply(visitor, operation, params, query, body)
            .await?
        {
            Reply::Json(value) => Ok(value),
            Reply::Lines(_) | Reply::Stream(..) => Err(ApiError::new(
                Code::Internal,
                format!("{operation} does not answer JSON"),
            )),
        }
    }

    async fn api_reply(
        &self,
        visitor: &Visitor,
        operation: &str,
        params: &[(&str, &str)],
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> ApiResult<Reply> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let call = Call {
            params: to_map(params),
            query: to_map(query),
            body: body.as_bytes(),
        };
        let result = dispatch(&self.cp, &visitor.caller, operation, &call).await;
        let code = result.as_ref().map_or_else(|e| e.code.as_str(), |_| "ok");
        self.cp.metrics.request("ui", operation, code);
        result
    }

    /// A full page: `template` rendered with `data` plus the layout's title, crumbs and visitor.
    fn page(
        &self,
        visitor: &Visitor,
        template: &str,
        title: &str,
        crumbs: &[Crumb<'_>],
        data: Value,
    ) -> Response {
        self.page_with_status(StatusCode::OK, visitor, template, title, crumbs, data)
    }

    fn page_with_status(
        &self,
        status: StatusCode,
        visitor: &Visitor,
        template: &str,
        title: &str,
        crumbs: &[Crumb<'_>],
        data: Value,
    ) -> Response {
        let mut context = match data {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        context.insert("title".into(), json!(title));
        let crumbs: Vec<Value> = crumbs
            .iter()
            .map(|(label, href)| json!({"label": label, "href": href}))
            .collect();
        context.insert("crumbs".into(), Value::Array(crumbs));
        context.insert("me".into(), visitor.describe());
        context.insert("csrf".into(), json!(visitor.session.csrf));
        self.render(status, template, Value::Object(context))
    }

    /// Render `template` with `context`; a template failure is a 500 that says which.
    fn render(&self, status: StatusCode, template: &str, context: Value) -> Response {
        let rendered = self
            .templates
            .get_template(template)
            .and_then(|t| t.render(minijinja::Value::from_serialize(&context)));
        match rendered {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(template, error = %e, "admin UI template failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the page {template} could not be rendered"),
                )
                    .into_response()
            }
        }
    }

    /// An error page for a refused or failed operation, with the API's status code.
    fn failure(
        &self,
        visitor: &Visitor,
        title: &str,
        crumbs: &[Crumb<'_>],
        e: &ApiError,
    ) -> Response {
        self.page_with_status(
            e.code.http(),
            visitor,
            "error.html",
            title,
            crumbs,
            json!({"error": e.message, "field": e.field}),
        )
    }
}

impl Visitor {
    /// What the layout shows and the templates check (`me.can_write`, `me.can_admin`).
    fn describe(&self) -> Value {
        let role = match &self.caller.principal {
            Principal::System | Principal::Insecure => None,
            Principal::Key { role, .. } | Principal::Person { role, .. } => Some(*role),
        };
        json!({
            "label": self.caller.actor(),
            "org": self.caller.org_id,
            "role": role.map_or("system", Role::as_str),
            "can_write": role.is_none_or(|r| matches!(r, Role::Editor | Role::Admin)),
            "can_admin": role.is_none_or(|r| r == Role::Admin),
        })
    }
}

fn to_map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// After a successful POST: back to a page (303, so a reload does not post again).
fn see_other(location: &str) -> Response {
    Redirect::to(location).into_response()
}

/// Query pairs with empty values left out (an empty filter field means "any").
fn given<'a>(pairs: &'a [(String, String)], names: &[&str]) -> Vec<(&'a str, &'a str)> {
    pairs
        .iter()
        .filter(|(k, v)| !v.is_empty() && names.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// A comma- or newline-separated form field as a list (blank items dropped).
fn list_field(text: &str) -> Vec<String> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `data` (an object) with the fields of `extra` (an object, or null) added.
fn with_extra(mut data: Value, extra: Value) -> Value {
    if let (Some(fields), Value::Object(extra)) = (data.as_object_mut(), extra) {
        fields.extend(extra);
    }
    data
}

/// A SimulatePolicy answer as the simulate forms show it: `sim` and the pretty decision, or
/// `sim_error`, with the status to answer.
fn simulation(result: ApiResult<Value>) -> (StatusCode, Value) {
    match result {
        Ok(r) => {
            let decision =
                serde_json::from_str::<Value>(r["decision_json"].as_str().unwrap_or("{}"))
                    .map(|d| serde_json::to_string_pretty(&d).unwrap_or_default())
                    .unwrap_or_default();
            (StatusCode::OK, json!({"sim": r, "sim_decision": decision}))
        }
        Err(e) => (e.code.http(), json!({"sim_error": e.message})),
    }
}

/// Was a form's checkbox ticked?
fn checked(posted: &Posted, name: &str) -> bool {
    posted.get(name).is_some_and(|v| !v.is_empty())
}
