//! Recordings: a filtered list, SSH sessions replayed in the browser by our small asciicast
//! player (static/player.js), and MCP/HTTP interactions (JSON lines) as a readable timeline.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::super::api::Reply;
use super::{Crumb, Shared, Visitor, given};
use crate::error::{ApiError, Code};

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/ui/recordings", get(list))
        .route("/ui/recordings/{id}", get(show))
        .route("/ui/recordings/{id}/cast", get(cast))
}

const CRUMBS: &[Crumb<'static>] = &[("Overview", "/")];
const LIST: Crumb<'static> = ("Recordings", "/ui/recordings");
const FILTERS: &[&str] = &["resource", "identity", "protocol", "cursor"];
/// The most of a JSON-lines recording shown as a timeline (the rest: download it).
const TIMELINE_BYTES: usize = 2 * 1024 * 1024;

async fn list(
    State(ui): State<Shared>,
    visitor: Visitor,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let mut query = given(&pairs, FILTERS);
    query.push(("limit", "50"));
    let f: serde_json::Map<String, Value> = given(&pairs, FILTERS)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), json!(v)))
        .collect();
    match ui.api(&visitor, "ListRecordings", &[], &query, None).await {
        Ok(v) => {
            let next = v["next_cursor"]
                .as_str()
                .filter(|c| !c.is_empty())
                .map(|c| {
                    let mut out = form_urlencoded::Serializer::new(String::new());
                    for (k, val) in given(&pairs, &["resource", "identity", "protocol"]) {
                        out.append_pair(k, val);
                    }
                    out.append_pair("cursor", c);
                    out.finish()
                });
            let data = json!({"recordings": v["recordings"], "f": f, "next_query": next});
            ui.page(&visitor, "recordings.html", "Recordings", CRUMBS, data)
        }
        Err(e) => ui.failure(&visitor, "Recordings", CRUMBS, &e),
    }
}

/// The file's bytes, at most `limit` of them (and whether it was cut).
async fn read_file(
    ui: &Shared,
    visitor: &Visitor,
    id: &str,
    limit: usize,
) -> Result<(Vec<u8>, bool), ApiError> {
    let Reply::Stream(_, mut chunks) = ui
        .api_reply(visitor, "GetRecordingData", &[("id", id)], &[], None)
        .await?
    else {
        return Err(ApiError::new(
            Code::Internal,
            "the recording's file is not a stream",
        ));
    };
    let mut bytes = Vec::new();
    while let Some(chunk) = chunks.recv().await {
        let chunk = chunk
            .map_err(|e| ApiError::new(Code::Internal, format!("reading the recording: {e}")))?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() > limit {
            bytes.truncate(limit);
            return Ok((bytes, true));
        }
    }
    Ok((bytes, false))
}

/// One JSON line as a timeline entry: its time and kind when it has them, and the rest pretty.
fn timeline_entry(line: &str) -> Value {
    match serde_json::from_str::<Value>(line) {
        Ok(v) => {
            let pick = |names: &[&str]| {
                names
                    .iter()
                    .find_map(|n| v.get(*n).filter(|x| !x.is_null()).cloned())
                    .unwrap_or(Value::Null)
            };
            json!({
                "time": pick(&["time", "ts", "timestamp", "at"]),
                "kind": pick(&["direction", "kind", "type", "method"]),
                "body": serde_json::to_string_pretty(&v).unwrap_or_default(),
            })
        }
        Err(_) => json!({"time": null, "kind": "text", "body": line}),
    }
}

async fn show(State(ui): State<Shared>, visitor: Visitor, Path(id): Path<String>) -> Response {
    let crumbs = [CRUMBS[0], LIST];
    let recording = match ui
        .api(&visitor, "GetRecording", &[("id", &id)], &[], None)
        .await
    {
        Ok(r) => r,
        Err(e) => return ui.failure(&visitor, "Recording", &crumbs, &e),
    };
    let mut data = json!({"r": recording});
    if recording["format"] == "jsonl" {
        match read_file(&ui, &visitor, &id, TIMELINE_BYTES).await {
            Ok((bytes, cut)) => {
                let text = String::from_utf8_lossy(&bytes);
                let entries: Vec<Value> = text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(timeline_entry)
                    .collect();
                data["timeline"] = json!(entries);
                data["cut"] = json!(cut);
            }
            Err(e) => data["error"] = json!(e.message),
        }
    }
    let title = format!(
        "{} on {}",
        recording["identity"].as_str().unwrap_or("session"),
        recording["resource"].as_str().unwrap_or("?")
    );
    ui.page(&visitor, "recording.html", &title, &crumbs, data)
}

/// `GET /ui/recordings/{id}/cast`: the file the player reads, with the session's authorization.
async fn cast(State(ui): State<Shared>, visitor: Visitor, Path(id): Path<String>) -> Response {
    match ui
        .api_reply(&visitor, "GetRecordingData", &[("id", &id)], &[], None)
        .await
    {
        Ok(Reply::Stream(content_type, chunks)) => {
            let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(chunks));
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Ok(_) => {
            ApiError::new(Code::Internal, "the recording's file is not a stream").into_response()
        }
        Err(e) => e.into_response(),
    }
}
