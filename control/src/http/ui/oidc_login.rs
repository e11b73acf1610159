//! Signing in to the admin UI through OpenID Connect: `/ui/oidc/start` keeps a pending flow
//! (state, nonce, PKCE verifier, bound to this browser by a cookie) and sends the browser to the
//! provider; `/ui/oidc/callback` takes the flow back by its state, exchanges the code, verifies
//! the ID token and starts a session with the role the person's groups map to.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::session::{
    Credential, cookie, cookie_with, local_path, login_page, over_tls, start_session,
};
use super::{Shared, Ui};
use crate::auth::{Caller, Principal};
use crate::oidc::pkce_pair;
use crate::util::{hex, random_bytes, sha256_hex};

/// Binds a pending flow to the browser that started it.
const FLOW_COOKIE: &str = "gate_oidc";
/// How long the provider may take to send the browser back.
const FLOW_TTL: Duration = Duration::from_secs(600);
const MAX_FLOWS: usize = 10_000;

/// A sign-in on its way through the provider.
struct Pending {
    nonce: String,
    verifier: String,
    next: String,
    /// SHA-256 of the `gate_oidc` cookie value.
    browser: String,
    expires: Instant,
}

/// Pending flows by their `state`; each is taken once.
#[derive(Default)]
pub(super) struct Flows(Mutex<HashMap<String, Pending>>);

impl Flows {
    fn insert(&self, state: String, pending: Pending) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_FLOWS {
            let now = Instant::now();
            map.retain(|_, p| p.expires > now);
            if map.len() >= MAX_FLOWS {
                return false;
            }
        }
        map.insert(state, pending);
        true
    }

    fn take(&self, state: &str) -> Option<Pending> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(state).filter(|p| p.expires > Instant::now())
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct StartQuery {
    next: String,
}

/// The login page with `error` and `status`.
fn refused(ui: &Ui, headers: &HeaderMap, status: StatusCode, next: &str, error: &str) -> Response {
    login_page(ui, headers, status, next, error)
}

/// `GET /ui/oidc/start`: remember the flow, send the browser to the provider.
pub(super) async fn start(
    State(ui): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<StartQuery>,
) -> Response {
    let next = local_path(&q.next).to_owned();
    let Some(oidc) = ui.cp.oidc.clone() else {
        let error = "Single sign-on is not configured here (ui.oidc): sign in with an API key.";
        return refused(&ui, &headers, StatusCode::NOT_FOUND, &next, error);
    };
    let state = hex(&random_bytes::<32>());
    let nonce = hex(&random_bytes::<32>());
    let browser = hex(&random_bytes::<32>());
    let (verifier, challenge) = pkce_pair();
    let url = match oidc.authorization_url(&state, &nonce, &challenge).await {
        Ok(url) => url,
        Err(e) => {
            tracing::warn!(error = %e, "OIDC provider unreachable");
            let error = format!("The identity provider cannot be reached: {e}");
            return refused(&ui, &headers, StatusCode::BAD_GATEWAY, &next, &error);
        }
    };
    let pending = Pending {
        nonce,
        verifier,
        next,
        browser: sha256_hex(&browser),
        expires: Instant::now() + FLOW_TTL,
    };
    if !ui.flows.insert(state, pending) {
        let error = "Too many sign-ins in progress: try again in a few minutes.";
        return refused(&ui, &headers, StatusCode::SERVICE_UNAVAILABLE, "/", error);
    }
    let flow_cookie = cookie_with(
        FLOW_COOKIE,
        &browser,
        FLOW_TTL.as_secs(),
        over_tls(&headers),
        "Lax",
    );
    let mut response = Redirect::to(&url).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, flow_cookie);
    response
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct CallbackQuery {
    code: String,
    state: String,
    error: String,
    error_description: String,
}

/// `GET /ui/oidc/callback`: the provider sent the browser back.
pub(super) async fn callback(
    State(ui): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(oidc) = ui.cp.oidc.clone() else {
        let error = "Single sign-on is not configured here (ui.oidc).";
        return refused(&ui, &headers, StatusCode::NOT_FOUND, "/", error);
    };
    let Some(flow) = ui.flows.take(&q.state) else {
        let error = "This sign-in is unknown or expired (its state does not match one this \
                     control plane started): sign in again.";
        return refused(&ui, &headers, StatusCode::BAD_REQUEST, "/", error);
    };
    let browser = cookie(&headers, FLOW_COOKIE).map(sha256_hex);
    if browser.as_deref() != Some(flow.browser.as_str()) {
        let error = "This sign-in was started in another browser: sign in again here.";
        return refused(&ui, &headers, StatusCode::BAD_REQUEST, &flow.next, error);
    }
    if !q.error.is_empty() {
        let error = format!(
            "The identity provider refused the sign-in: {} {}",
            q.error, q.error_description
        );
        return refused(&ui, &headers, StatusCode::UNAUTHORIZED, &flow.next, &error);
    }
    let person = match oidc.exchange(&q.code, &flow.verifier, &flow.nonce).await {
        Ok(person) => person,
        Err(e) => {
            tracing::warn!(error = %e, "OIDC sign-in refused");
            let error = format!("Sign-in failed: {e}");
            return refused(&ui, &headers, StatusCode::UNAUTHORIZED, &flow.next, &error);
        }
    };
    let Some(role) = oidc.role_for(&person.groups) else {
        tracing::warn!(subject = %person.subject, groups = ?person.groups, "OIDC sign-in: no group maps to a role");
        let groups = if person.groups.is_empty() {
            format!("none in its {:?} claim", oidc.groups_claim())
        } else {
            person.groups.join(", ")
        };
        let error = format!(
            "{} signed in at the identity provider, but none of their groups ({groups}) maps to a \
             role here (ui.oidc.role_mapping): ask an administrator to map one.",
            person.label
        );
        return refused(&ui, &headers, StatusCode::FORBIDDEN, &flow.next, &error);
    };
    tracing::info!(subject = %person.subject, role = role.as_str(), "OIDC sign-in");
    let caller = Caller {
        principal: Principal::Person {
            subject: person.subject,
            label: person.label,
            role,
        },
        org_id: oidc.org_id().to_owned(),
    };
    let session_cookie = match start_session(&ui, &headers, Credential::Person(caller)) {
        Ok(cookie) => cookie,
        Err(refused) => return refused.into_response(),
    };
    // The session cookie is SameSite=Strict and this response ends a navigation that started at
    // the provider: a page of ours moves on, so the next request is same-site and carries it.
    let context = json!({"title": "Signed in", "crumbs": [], "next": flow.next});
    let mut response = ui.render(StatusCode::OK, "signed_in.html", context);
    let cookies = response.headers_mut();
    cookies.append(header::SET_COOKIE, session_cookie);
    cookies.append(
        header::SET_COOKIE,
        cookie_with(FLOW_COOKIE, "", 0, over_tls(&headers), "Lax"),
    );
    response
}
