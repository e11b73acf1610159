//! Signing in to the admin UI: an API key (or an OIDC sign-in, `oidc_login.rs`) is exchanged for
//! a random session id in an HttpOnly, `SameSite=Strict`, expiring cookie (`Secure` behind TLS);
//! the session holds the key in memory and re-authenticates it on every request. Every form carries the session's CSRF token and
//! every POST is refused without the cookie and a matching token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::{Shared, Ui};
use crate::auth::{Caller, same_secret};
use crate::util::{hex, random_bytes, sha256_hex};

/// How long a sign-in lasts.
pub(super) const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// The most sessions kept at once (expired ones are dropped first).
const MAX_SESSIONS: usize = 10_000;
const SESSION_COOKIE: &str = "gate_session";
/// Double-submit token protecting the sign-in form itself (there is no session yet).
const LOGIN_COOKIE: &str = "gate_login";
/// The biggest form the UI accepts (a policy's source is the largest field).
const MAX_FORM_BYTES: usize = 1024 * 1024;

/// What a session signed in with.
#[derive(Debug)]
pub(super) enum Credential {
    /// An API key (empty: an `--insecure` control plane without keys), re-authenticated on
    /// every request, and `X-Org-ID` for system keys.
    Key { key: String, org: Option<String> },
    /// A person the OIDC provider vouched for, with the role their groups map to.
    Person(Caller),
}

/// One signed-in browser.
#[derive(Debug)]
pub(super) struct Session {
    credential: Credential,
    pub(super) csrf: String,
    expires: Instant,
}

/// Sessions by the SHA-256 of their cookie value.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    by_hash: Mutex<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    fn insert(&self, session: Session) -> Option<String> {
        let token = hex(&random_bytes::<32>());
        let mut map = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_SESSIONS {
            let now = Instant::now();
            map.retain(|_, s| s.expires > now);
            if map.len() >= MAX_SESSIONS {
                return None;
            }
        }
        map.insert(sha256_hex(&token), Arc::new(session));
        Some(token)
    }

    fn get(&self, token: &str) -> Option<Arc<Session>> {
        let hash = sha256_hex(token);
        let mut map = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(&hash) {
            Some(s) if s.expires > Instant::now() => Some(Arc::clone(s)),
            Some(_) => {
                map.remove(&hash);
                None
            }
            None => None,
        }
    }

    fn remove(&self, token: &str) {
        let mut map = self.by_hash.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&sha256_hex(token));
    }
}

/// The signed-in caller of a UI request (pages redirect to sign-in without one).
pub(crate) struct Visitor {
    pub(super) caller: Caller,
    pub(super) session: Arc<Session>,
}

/// Why a request has no visitor.
enum NoVisitor {
    /// No cookie, an unknown or expired one.
    SignedOut,
    /// The session's key no longer authenticates (revoked, deleted).
    Refused(String),
}

pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

async fn visitor(ui: &Ui, headers: &HeaderMap) -> Result<Visitor, NoVisitor> {
    let token = cookie(headers, SESSION_COOKIE).ok_or(NoVisitor::SignedOut)?;
    let session = ui.sessions.get(token).ok_or(NoVisitor::SignedOut)?;
    let (key, org) = match &session.credential {
        Credential::Key { key, org } => (key, org),
        Credential::Person(caller) => {
            let caller = caller.clone();
            return Ok(Visitor { caller, session });
        }
    };
    let authorization = (!key.is_empty()).then(|| format!("Bearer {key}"));
    match ui
        .cp
        .authenticate(authorization.as_deref(), org.as_deref(), "AdminUi")
        .await
    {
        Ok(caller) => Ok(Visitor { caller, session }),
        Err(e) => {
            ui.sessions.remove(token);
            Err(NoVisitor::Refused(e.message))
        }
    }
}

impl FromRequestParts<Shared> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ui: &Shared) -> Result<Self, Response> {
        match visitor(ui, &parts.headers).await {
            Ok(v) => Ok(v),
            Err(why) => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                let mut target = form_urlencoded::Serializer::new(String::new());
                target.append_pair("next", &next);
                if let NoVisitor::Refused(message) = why {
                    target.append_pair("error", &message);
                }
                Err(Redirect::to(&format!("/ui/login?{}", target.finish())).into_response())
            }
        }
    }
}

/// A form POST from a signed-in visitor whose CSRF token matched; nothing else is let through.
pub(crate) struct Posted {
    pub(super) visitor: Visitor,
    fields: HashMap<String, String>,
}

impl Posted {
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// A field's value, empty when absent.
    pub(super) fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_owned()
    }
}

fn parse_form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

pub(super) fn refuse(status: StatusCode, message: &str) -> Response {
    (status, message.to_owned()).into_response()
}

impl FromRequest<Shared> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, ui: &Shared) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let visitor = match visitor(ui, &parts.headers).await {
            Ok(v) => v,
            Err(_) => {
                return Err(refuse(
                    StatusCode::UNAUTHORIZED,
                    "Not signed in: sign in at /ui/login first.",
                ));
            }
        };
        let body = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| refuse(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."))?;
        let fields = parse_form(&body);
        let token = fields.get("csrf").map(String::as_str).unwrap_or_default();
        if token.is_empty() || !same_secret(token, &visitor.session.csrf) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "The form's CSRF token is missing or wrong: reload the page and try again.",
            ));
        }
        Ok(Posted { visitor, fields })
    }
}

/// Is the browser talking to us over TLS (directly or through a proxy that says so)?
pub(super) fn over_tls(headers: &HeaderMap) -> bool {
    let says_https = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("https"))
    };
    says_https("x-forwarded-proto") || says_https("forwarded")
}

pub(super) fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> HeaderValue {
    cookie_with(name, value, max_age, secure, "Strict")
}

/// A `Set-Cookie` value with the given `SameSite` (`Lax` only for the OIDC round trip, whose
/// callback is a navigation from the provider's site).
pub(super) fn cookie_with(
    name: &str,
    value: &str,
    max_age: u64,
    secure: bool,
    same_site: &str,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub(super) struct LoginQuery {
    next: String,
    error: String,
}

/// Only local paths are followed after sign-in (no open redirect).
pub(super) fn local_path(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

/// `GET /ui/login`.
pub(super) async fn login_form(
    State(ui): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    login_page(&ui, &headers, StatusCode::OK, local_path(&q.next), &q.error)
}

pub(super) fn login_page(
    ui: &Ui,
    headers: &HeaderMap,
    status: StatusCode,
    next: &str,
    error: &str,
) -> Response {
    let token = hex(&random_bytes::<16>());
    let context = json!({
        "title": "Sign in",
        "crumbs": [],
        "login_csrf": token,
        "next": next,
        "error": error,
        "insecure": ui.cp.insecure(),
        "oidc": ui.cp.oidc.is_some().then(|| {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("next", next)
                .finish();
            format!("/ui/oidc/start?{query}")
        }),
    });
    let mut response = ui.render(status, "login.html", context);
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &token, 600, over_tls(headers)),
    );
    response
}

/// `POST /ui/login`: check the key exactly as the API does, then start a session.
pub(super) async fn login(State(ui): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let fields = parse_form(&body);
    let field = |name: &str| {
        fields
            .get(name)
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let next = field("next");
    let next = local_path(&next);
    let sent = field("login_csrf");
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if sent.is_empty() || !same_secret(&sent, expected) {
        return login_page(
            &ui,
            &headers,
            StatusCode::FORBIDDEN,
            next,
            "The sign-in form expired or did not come from this page: try again.",
        );
    }
    let key = field("key");
    let org = Some(field("org")).filter(|o| !o.is_empty());
    let authorization = (!key.is_empty()).then(|| format!("Bearer {key}"));
    if let Err(e) = ui
        .cp
        .authenticate(authorization.as_deref(), org.as_deref(), "AdminUiLogin")
        .await
    {
        return login_page(&ui, &headers, StatusCode::UNAUTHORIZED, next, &e.message);
    }
    let cookie = match start_session(&ui, &headers, Credential::Key { key, org }) {
        Ok(cookie) => cookie,
        Err(refused) => return refused.into_response(),
    };
    let mut response = Redirect::to(next).into_response();
    let cookies = response.headers_mut();
    cookies.append(header::SET_COOKIE, cookie);
    cookies.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", 0, over_tls(&headers)),
    );
    response
}

/// No session could be started: [`MAX_SESSIONS`] are open.
pub(super) struct TooManySessions;

impl IntoResponse for TooManySessions {
    fn into_response(self) -> Response {
        refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many open sessions: try again later.",
        )
    }
}

/// A new session for `credential`: its cookie, or the refusal when too many are open.
pub(super) fn start_session(
    ui: &Ui,
    headers: &HeaderMap,
    credential: Credential,
) -> Result<HeaderValue, TooManySessions> {
    let session = Session {
        credential,
        csrf: hex(&random_bytes::<32>()),
        expires: Instant::now() + SESSION_TTL,
    };
    let Some(token) = ui.sessions.insert(session) else {
        return Err(TooManySessions);
    };
    Ok(set_cookie(
        SESSION_COOKIE,
        &token,
        SESSION_TTL.as_secs(),
        over_tls(headers),
    ))
}

/// `POST /ui/logout`: end the session (CSRF-checked like every POST).
pub(super) async fn logout(
    State(ui): State<Shared>,
    headers: HeaderMap,
    posted: Posted,
) -> Response {
    drop(posted);
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        ui.sessions.remove(token);
    }
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, over_tls(&headers)),
    );
    response
}
