//! A fake Kubernetes API server for tests: in-memory objects behind the real REST paths, with
//! list + watch, optimistic concurrency, merge/JSON/apply patches, the /status subresource,
//! finalizer-aware DELETE, Events, Leases, and cluster-scoped MutatingWebhookConfigurations. Its
//! semantics are pinned by `tests/fake_api_contract.rs`.
#![allow(dead_code, unreachable_pub)]

mod store;
mod write;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

pub use store::{Change, Gvr, Key, KindInfo, Refusal, Store, kind_info, refuse};

/// A running fake API server.
pub struct FakeApi {
    pub url: String,
    pub store: Arc<Mutex<Store>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApi {
    /// Serve on a free loopback port.
    pub async fn start() -> FakeApi {
        let store = Arc::new(Mutex::new(Store::new()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(store.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeApi { url, store, task }
    }

    /// A kube client for this server.
    pub fn client(&self) -> kube::Client {
        let uri = self.url.parse().expect("url");
        let config = kube::Config::new(uri);
        kube::Client::try_from(config).expect("client")
    }

    /// The stored object, if any.
    pub fn get(&self, prefix: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let key = (
            Gvr {
                prefix: prefix.into(),
                plural: plural.into(),
            },
            namespace.into(),
            name.into(),
        );
        self.store.lock().expect("store").objects.get(&key).cloned()
    }

    /// Every stored object of one collection.
    pub fn list(&self, prefix: &str, plural: &str) -> Vec<Value> {
        let store = self.store.lock().expect("store");
        store
            .objects
            .iter()
            .filter(|((gvr, _, _), _)| gvr.prefix == prefix && gvr.plural == plural)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// A parsed request path.
struct Target {
    gvr: Gvr,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => (format!("api/{v}"), rest),
        ["apis", g, v, rest @ ..] => (format!("apis/{g}/{v}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        _ => (None, rest),
    };
    let (plural, name, status) = match rest {
        [plural] => (*plural, None, false),
        [plural, name] => (*plural, Some((*name).to_owned()), false),
        [plural, name, "status"] => (*plural, Some((*name).to_owned()), true),
        _ => return None,
    };
    Some(Target {
        gvr: Gvr {
            prefix,
            plural: plural.to_owned(),
        },
        namespace,
        name,
        status,
    })
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn reply(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn refused(r: Refusal) -> Response {
    reply(r.code, &status_body(r.code, r.reason, &r.message))
}

fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded_pairs(query)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn form_urlencoded_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k), decode(v))
    })
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.push(b'%'),
                }
                i += 3;
                continue;
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(State(store): State<Arc<Mutex<Store>>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let Some(target) = parse_path(&path) else {
        return reply(
            404,
            &status_body(
                404,
                "NotFound",
                &format!("the server could not find the requested resource ({path})"),
            ),
        );
    };
    // An unknown kind, or a cluster-scoped kind under `namespaces/NS/`: no such endpoint.
    let Some(info) =
        kind_info(&target.gvr).filter(|info| info.namespaced || target.namespace.is_none())
    else {
        return reply(
            404,
            &status_body(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        );
    };
    let body = match axum::body::to_bytes(request.into_body(), 16 << 20).await {
        Ok(b) => b,
        Err(e) => return reply(400, &status_body(400, "BadRequest", &e.to_string())),
    };
    match (&method, &target.name) {
        (&Method::GET, None)
            if query_param(&query, "watch").is_some_and(|w| w == "true" || w == "1") =>
        {
            watch(store, target, info, &query)
        }
        (&Method::GET, None) => list(&store, &target, &info, &query),
        (&Method::POST, None) => {
            let ns = match target.namespace.as_deref() {
                Some(ns) => ns,
                None if !info.namespaced => "",
                None => {
                    return reply(
                        405,
                        &status_body(405, "MethodNotAllowed", "create needs a namespace"),
                    );
                }
            };
            let object = match parse_json(&body) {
                Ok(v) => v,
                Err(r) => return refused(r),
            };
            let created = store
                .lock()
                .expect("store")
                .create(&target.gvr, &info, ns, object);
            match created {
                Ok(v) => reply(201, &v),
                Err(r) => refused(r),
            }
        }
        (_, Some(name)) => {
            let key = (
                target.gvr.clone(),
                target.namespace.clone().unwrap_or_default(),
                name.clone(),
            );
            write::item(
                &store,
                &method,
                &key,
                &info,
                target.status,
                &content_type,
                &query,
                &body,
            )
        }
        _ => reply(
            405,
            &status_body(405, "MethodNotAllowed", "method not allowed"),
        ),
    }
}

fn parse_json(body: &Bytes) -> Result<Value, Refusal> {
    serde_json::from_slice(body)
        .map_err(|e| refuse(400, "BadRequest", format!("invalid JSON body: {e}")))
}

fn list(store: &Arc<Mutex<Store>>, target: &Target, info: &KindInfo, query: &str) -> Response {
    let store = store.lock().expect("store");
    let limit: usize = query_param(query, "limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let after = query_param(query, "continue").unwrap_or_default();
    let selector = query_param(query, "labelSelector").unwrap_or_default();
    let matching: Vec<&Value> = store
        .objects
        .iter()
        .filter(|((gvr, ns, name), _)| {
            *gvr == target.gvr
                && target.namespace.as_ref().is_none_or(|want| want == ns)
                && (after.is_empty() || format!("{ns}/{name}") > after)
        })
        .map(|(_, v)| v)
        .filter(|v| labels_match(v, &selector))
        .collect();
    let page: Vec<Value> = matching.iter().take(limit).map(|v| (*v).clone()).collect();
    let mut metadata = json!({"resourceVersion": store.resource_version().to_string()});
    if matching.len() > limit
        && let Some(last) = page.last()
    {
        metadata["continue"] = json!(format!(
            "{}/{}",
            last["metadata"]["namespace"].as_str().unwrap_or(""),
            last["metadata"]["name"].as_str().unwrap_or("")
        ));
    }
    reply(
        200,
        &json!({"kind": format!("{}List", info.kind), "apiVersion": info.api_version,
                       "metadata": metadata, "items": page}),
    )
}

/// `a=b,c=d` equality selectors (all the operator uses).
fn labels_match(object: &Value, selector: &str) -> bool {
    selector
        .split(',')
        .filter(|s| !s.is_empty())
        .all(|term| match term.split_once('=') {
            Some((k, v)) => {
                object["metadata"]["labels"][k.trim_end_matches('=')].as_str() == Some(v)
            }
            None => object["metadata"]["labels"].get(term).is_some(),
        })
}

fn watch(store: Arc<Mutex<Store>>, target: Target, info: KindInfo, query: &str) -> Response {
    let from: Option<u64> = query_param(query, "resourceVersion")
        .filter(|v| !v.is_empty() && v != "0")
        .and_then(|v| v.parse().ok());
    let timeout = query_param(query, "timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .unwrap_or(300u64);
    let (backlog, feed) = {
        let store = store.lock().expect("store");
        let wanted = |c: &Change| {
            c.gvr == target.gvr
                && target
                    .namespace
                    .as_ref()
                    .is_none_or(|ns| *ns == c.namespace)
        };
        let backlog: Vec<Value> = match from {
            Some(rv) => store
                .history
                .iter()
                .filter(|c| c.rv > rv && wanted(c))
                .map(event_line)
                .collect(),
            None => store
                .objects
                .iter()
                .filter(|((gvr, ns, _), _)| {
                    *gvr == target.gvr && target.namespace.as_ref().is_none_or(|w| w == ns)
                })
                .map(|(_, v)| json!({"type": "ADDED", "object": v}))
                .collect(),
        };
        (backlog, store.feed.subscribe())
    };
    let _ = info;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let state = (backlog.into_iter(), feed, target);
    let stream = futures_util::stream::unfold(
        state,
        move |(mut backlog, mut feed, target)| async move {
            if let Some(line) = backlog.next() {
                return Some((
                    Ok::<_, std::io::Error>(Bytes::from(format!("{line}\n"))),
                    (backlog, feed, target),
                ));
            }
            loop {
                let change = match tokio::time::timeout_at(deadline, feed.recv()).await {
                    Err(_) | Ok(Err(RecvError::Closed)) => return None,
                    Ok(Err(RecvError::Lagged(_))) => {
                        let gone = json!({"type": "ERROR", "object": status_body(410, "Expired", "too old resource version")});
                        return Some((
                            Ok(Bytes::from(format!("{gone}\n"))),
                            (backlog, feed, target),
                        ));
                    }
                    Ok(Ok(change)) => change,
                };
                if change.gvr == target.gvr
                    && target
                        .namespace
                        .as_ref()
                        .is_none_or(|ns| *ns == change.namespace)
                {
                    let line = event_line(&change);
                    return Some((
                        Ok(Bytes::from(format!("{line}\n"))),
                        (backlog, feed, target),
                    ));
                }
            }
        },
    );
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| reply(500, &status_body(500, "InternalError", "watch")))
}

fn event_line(change: &Change) -> Value {
    json!({"type": change.kind, "object": change.object})
}
