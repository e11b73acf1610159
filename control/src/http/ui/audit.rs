//! The audit log: filters (time, identity, resource, action, stage, protocol, operation, target), cursor
//! pagination, and a JSON-lines export of exactly the current filter.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::super::api::Reply;
use super::{Crumb, Shared, Visitor, given};
use crate::service::audit::ACTIONS;
use crate::service::policies::STAGES;
use crate::service::resources::PROTOCOLS;

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/ui/audit", get(list))
        .route("/ui/audit/export", get(export))
}

const CRUMBS: &[Crumb<'static>] = &[("Overview", "/")];
/// The API's audit filters without its paging parameters (the page sets those).
fn filter_names() -> Vec<&'static str> {
    super::super::params::names("QueryAudit")
        .into_iter()
        .filter(|name| !matches!(*name, "limit" | "cursor"))
        .collect()
}
const PAGE_SIZE: &str = "50";

/// A browser's `datetime-local` value (`2026-01-31T09:30`) is taken as UTC; RFC 3339 as is.
fn as_rfc3339(value: &str) -> String {
    let v = value.trim();
    if v.len() == 16 && v.as_bytes().get(10) == Some(&b'T') {
        format!("{v}:00Z")
    } else {
        v.to_owned()
    }
}

/// The filters given, times normalized, in the API's query shape.
fn filters(pairs: &[(String, String)]) -> Vec<(String, String)> {
    given(pairs, &filter_names())
        .into_iter()
        .map(|(k, v)| {
            let v = if k == "from" || k == "to" {
                as_rfc3339(v)
            } else {
                v.to_owned()
            };
            (k.to_owned(), v)
        })
        .collect()
}

fn borrowed(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn encoded(pairs: &[(String, String)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

async fn list(
    State(ui): State<Shared>,
    visitor: Visitor,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let chosen = filters(&pairs);
    let mut query = borrowed(&chosen);
    query.push(("limit", PAGE_SIZE));
    let cursor = pairs
        .iter()
        .find(|(k, _)| k == "cursor")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    if !cursor.is_empty() {
        query.push(("cursor", cursor));
    }
    let shown: serde_json::Map<String, serde_json::Value> = given(&pairs, &filter_names())
        .into_iter()
        .map(|(k, v)| (k.to_owned(), json!(v)))
        .collect();
    let filter_query = encoded(&chosen);
    let (events, next, error) = match ui.api(&visitor, "QueryAudit", &[], &query, None).await {
        Ok(v) => (v["events"].clone(), v["next_cursor"].clone(), None),
        Err(e) => (json!([]), json!(""), Some(e.message)),
    };
    let next_query = next.as_str().filter(|c| !c.is_empty()).map(|c| {
        let mut with_cursor = chosen.clone();
        with_cursor.push(("cursor".to_owned(), c.to_owned()));
        encoded(&with_cursor)
    });
    let data = json!({
        "events": events, "f": shown, "error": error, "actions": ACTIONS, "stages": STAGES,
        "protocols": PROTOCOLS,
        "filter_query": filter_query, "next_query": next_query, "paged": !cursor.is_empty(),
    });
    ui.page(&visitor, "audit.html", "Audit", CRUMBS, data)
}

/// `GET /ui/audit/export`: the API's ExportAudit with the page's filters, as a download.
async fn export(
    State(ui): State<Shared>,
    visitor: Visitor,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let chosen = filters(&pairs);
    match ui
        .api_reply(&visitor, "ExportAudit", &[], &borrowed(&chosen), None)
        .await
    {
        Ok(Reply::Lines(text)) => (
            [
                (header::CONTENT_TYPE, "application/x-ndjson"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"gate-audit.jsonl\"",
                ),
            ],
            text,
        )
            .into_response(),
        Ok(_) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected export reply",
        )
            .into_response(),
        Err(e) => ui.failure(&visitor, "Audit export", CRUMBS, &e),
    }
}
