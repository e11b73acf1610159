//! The admin UI placeholder: a server-rendered page listing what exists in the caller's
//! organization (the full UI is a later issue). Reads need a key, like the API.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::service::ControlPlane;

fn escape(text: &str) -> String {
    text.chars()
        .fold(String::with_capacity(text.len()), |mut out, c| {
            match c {
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '&' => out.push_str("&amp;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                c => out.push(c),
            }
            out
        })
}

fn page(body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Gate control plane</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}</style></head><body>\
         <h1>Gate control plane</h1>{body}<p>API: <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a> · \
         <a href=\"/health\">/health</a> · <a href=\"/metrics\">/metrics</a> · \
         <a href=\"/.well-known/jwks.json\">/.well-known/jwks.json</a></p></body></html>"
    )
}

fn table(out: &mut String, title: &str, headings: &[&str], rows: Vec<Vec<String>>) {
    let _ = write!(out, "<h2>{} ({})</h2>", escape(title), rows.len());
    if rows.is_empty() {
        out.push_str("<p>None yet.</p>");
        return;
    }
    out.push_str("<table><tr>");
    for h in headings {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(&cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// `GET /`.
pub(super) async fn index(State(cp): State<Arc<ControlPlane>>, headers: HeaderMap) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let org = headers.get("x-org-id").and_then(|v| v.to_str().ok());
    let caller = match cp.authenticate(authorization, org, "AdminUi").await {
        Ok(caller) => caller,
        Err(e) => {
            let body = format!(
                "<p>{}.</p><p>Send an API key as <code>Authorization: Bearer &lt;key&gt;</code> \
                 (the UI with sign-in comes later).</p>",
                escape(&e.message)
            );
            return (StatusCode::UNAUTHORIZED, Html(page(&body))).into_response();
        }
    };
    let mut out = format!(
        "<p>Organization <code>{}</code>.</p>",
        escape(&caller.org_id)
    );
    let org = caller.org_id.as_str();
    let resources = cp.store.list_resources(org).await.unwrap_or_default();
    table(
        &mut out,
        "Resources",
        &["name", "protocol", "host", "port"],
        resources
            .into_iter()
            .map(|r| vec![r.name, r.protocol, r.host, r.port.to_string()])
            .collect(),
    );
    let policies = cp.store.list_policies(org).await.unwrap_or_default();
    table(
        &mut out,
        "Policies",
        &["name", "state", "version", "targets"],
        policies
            .into_iter()
            .map(|p| vec![p.name, p.state, p.version.to_string(), p.targets.join(", ")])
            .collect(),
    );
    let identities = cp.store.list_identities(org).await.unwrap_or_default();
    table(
        &mut out,
        "Identities",
        &["name", "email", "groups"],
        identities
            .into_iter()
            .map(|i| vec![i.name, i.email, i.groups.join(", ")])
            .collect(),
    );
    let connectors = cp.store.list_connectors(org).await.unwrap_or_default();
    table(
        &mut out,
        "Connectors",
        &["name", "status", "version", "last heartbeat"],
        connectors
            .into_iter()
            .map(|c| vec![c.name, c.status, c.version, c.last_heartbeat_at])
            .collect(),
    );
    Html(page(&out)).into_response()
}
