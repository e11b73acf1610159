//! The one HTTP listener's router: admin UI at `/` and `/ui/*`, `/health`, `/metrics`, `/.well-known/jwks.json`,
//! `/api/v1/*` (built from the route table), `/mcp`, `/integrations/slack/actions` and, merged in, the
//! tonic gRPC services; every error it makes itself (404, 405, limits) is in the API's JSON error
//! shape.

pub mod api;
mod api_delivery;
mod audit_json;
mod grpc_deadline;
pub mod limits;
pub mod openapi;
pub mod params;
pub mod routes;
mod schemas;
pub mod serve;
mod ui;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{QueryRejection, RawPathParamsRejection};
use axum::extract::{DefaultBodyLimit, Query, RawPathParams, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, get, post};

use crate::error::{ApiError, Code};
use crate::grpc::Grpc;
use crate::metrics::StoreGauges;
use crate::service::ControlPlane;
use api::{Call, Reply, dispatch};
use limits::HttpLimits;
use routes::{ROUTES, Verb};

/// The whole control-plane router (HTTP and gRPC), enforcing `limits` on HTTP requests.
pub fn router(cp: Arc<ControlPlane>, limits: HttpLimits) -> Router {
    let grpc = Grpc::new(Arc::clone(&cp));
    let mut by_path: BTreeMap<&'static str, MethodRouter<Arc<ControlPlane>>> = BTreeMap::new();
    for route in ROUTES {
        let operation = route.operation;
        let takes_body = matches!(route.verb, Verb::Post | Verb::Put | Verb::Patch);
        let handler = move |State(cp): State<Arc<ControlPlane>>,
                            headers: HeaderMap,
                            params: Result<RawPathParams, RawPathParamsRejection>,
                            query: Result<Query<Vec<(String, String)>>, QueryRejection>,
                            body: Bytes| async move {
            let call = match request_parts(&headers, params, query, &body, takes_body) {
                Ok(call) => call,
                Err(e) => {
                    cp.metrics.request("http", operation, e.code.as_str());
                    return e.into_response();
                }
            };
            handle(&cp, operation, &headers, call).await
        };
        let filter = match route.verb {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
            Verb::Patch => MethodFilter::PATCH,
            Verb::Delete => MethodFilter::DELETE,
        };
        let entry = by_path.remove(route.path).unwrap_or_default();
        by_path.insert(route.path, entry.on(filter, handler));
    }
    by_path.insert("/health", get(health));
    by_path.insert("/metrics", get(metrics));
    by_path.insert("/.well-known/jwks.json", get(jwks));
    by_path.insert("/api/v1/openapi.json", get(openapi_document));
    by_path.insert(
        "/integrations/slack/actions",
        post(crate::slack::actions::handle),
    );
    // `/mcp` answers every method itself (405s in the MCP error shape).
    let mut api = Router::new().route("/mcp", axum::routing::any(crate::mcp::serve));
    for (path, methods) in by_path {
        // axum still adds the `Allow` header to what the fallback answers.
        api = api.route(path, methods.fallback(method_not_allowed));
    }
    api.with_state(Arc::clone(&cp))
        // The admin UI: `/` and `/ui/*`.
        .merge(ui::router(Arc::clone(&cp)))
        .merge(grpc.routes().into_axum_router())
        .fallback(not_found)
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            limits,
            limits::enforce,
        ))
        .layer(axum::middleware::from_fn(grpc_deadline::enforce))
        .layer(axum::middleware::from_fn_with_state(cp, time_requests))
}

/// Path parameters, query and body of an `/api/v1` call, or the JSON error refusing them.
fn request_parts<'a>(
    headers: &HeaderMap,
    params: Result<RawPathParams, RawPathParamsRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: &'a [u8],
    takes_body: bool,
) -> Result<Call<'a>, ApiError> {
    let params = params.map_err(|e| ApiError::invalid("path", e.body_text()))?;
    let Query(pairs) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    // A parameter given twice is refused, not silently decided by one of them.
    let mut query = HashMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        if query.contains_key(&name) {
            return Err(ApiError::invalid(&name, "given more than once"));
        }
        query.insert(name, value);
    }
    if takes_body {
        limits::require_json(headers, body)?;
    }
    Ok(Call {
        params: params
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        query,
        body,
    })
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

async fn handle(
    cp: &ControlPlane,
    operation: &'static str,
    headers: &HeaderMap,
    call: Call<'_>,
) -> Response {
    let authorization = header_text(headers, header::AUTHORIZATION.as_str());
    let org = header_text(headers, "x-org-id");
    let result = match cp.authenticate(authorization, org, operation).await {
        Ok(caller) => dispatch(cp, &caller, operation, &call).await,
        Err(e) => Err(e),
    };
    let code = result.as_ref().map_or_else(|e| e.code.as_str(), |_| "ok");
    cp.metrics.request("http", operation, code);
    match result {
        Ok(Reply::Json(value)) => {
            let status = if operation.starts_with("Create") {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, axum::Json(value)).into_response()
        }
        Ok(Reply::Lines(text)) => {
            ([(header::CONTENT_TYPE, "application/x-ndjson")], text).into_response()
        }
        Ok(Reply::Stream(content_type, chunks)) => {
            let body =
                axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(chunks));
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn health(State(cp): State<Arc<ControlPlane>>) -> Response {
    if cp.store.ping().await {
        axum::Json(serde_json::json!({"status": "ok", "database": "ok"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "unavailable", "database": "unreachable"})),
        )
            .into_response()
    }
}

async fn metrics(State(cp): State<Arc<ControlPlane>>) -> Response {
    let mut text = cp.metrics.render();
    // The store's gauges; a store that does not answer leaves them out (and /health says so).
    let gauges = StoreGauges {
        connectors: cp
            .store
            .connector_status_counts()
            .await
            .map(Vec::from)
            .unwrap_or_default(),
        deliveries: cp.store.delivery_state_counts().await.unwrap_or_default(),
    };
    if !gauges.connectors.is_empty() {
        text.push_str(&gauges.render());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Time every request (both transports) in `gate_control_request_duration_seconds`.
async fn time_requests(
    State(cp): State<Arc<ControlPlane>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let transport = if grpc { "grpc" } else { "http" };
    cp.metrics
        .request_duration(transport, started.elapsed().as_secs_f64());
    response
}

async fn jwks(State(cp): State<Arc<ControlPlane>>) -> Response {
    axum::Json(cp.tokens.jwks()).into_response()
}

async fn openapi_document() -> Response {
    axum::Json(openapi::document()).into_response()
}

/// Unknown paths answer in the API's error shape; unknown gRPC methods as gRPC `UNIMPLEMENTED`.
pub async fn not_found(method: Method, headers: HeaderMap, uri: axum::http::Uri) -> Response {
    if limits::is_grpc(&headers) {
        return tonic::Status::unimplemented(format!("no method {}", uri.path()))
            .into_http::<axum::body::Body>();
    }
    ApiError::new(
        Code::NotFound,
        format!("no route for {method} {}", uri.path()),
    )
    .into_response()
}

/// A known path with a method it does not serve (axum adds the `Allow` header).
async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        Code::MethodNotAllowed,
        format!(
            "{method} is not allowed on {}; the Allow header lists what is",
            uri.path()
        ),
    )
}
