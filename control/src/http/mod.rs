//! The one HTTP listener's router: admin UI at `/`, `/health`, `/metrics`, `/.well-known/jwks.json`,
//! `/api/v1/*` (built from the route table) and, merged in, the tonic gRPC services.

pub mod api;
pub mod openapi;
pub mod routes;
mod ui;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, RawPathParams, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, get};

use crate::error::ApiError;
use crate::grpc::Grpc;
use crate::service::ControlPlane;
use api::{Call, Reply, dispatch};
use routes::{ROUTES, Verb};

/// The whole control-plane router (HTTP and gRPC).
pub fn router(cp: Arc<ControlPlane>) -> Router {
    let grpc = Grpc::new(Arc::clone(&cp));
    let mut by_path: BTreeMap<&'static str, MethodRouter<Arc<ControlPlane>>> = BTreeMap::new();
    for route in ROUTES {
        let operation = route.operation;
        let handler = move |State(cp): State<Arc<ControlPlane>>,
                            headers: HeaderMap,
                            params: RawPathParams,
                            Query(query): Query<HashMap<String, String>>,
                            body: Bytes| async move {
            let params = params
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            handle(
                &cp,
                operation,
                &headers,
                Call {
                    params,
                    query,
                    body: &body,
                },
            )
            .await
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
    let mut api = Router::new();
    for (path, methods) in by_path {
        api = api.route(path, methods);
    }
    api.route("/", get(ui::index))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/api/v1/openapi.json", get(openapi_document))
        .with_state(cp)
        .merge(grpc.routes().into_axum_router())
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
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        cp.metrics.render(),
    )
        .into_response()
}

async fn jwks(State(cp): State<Arc<ControlPlane>>) -> Response {
    axum::Json(cp.tokens.jwks()).into_response()
}

async fn openapi_document() -> Response {
    axum::Json(openapi::document()).into_response()
}

/// Unknown paths under the router answer in the API's error shape.
pub async fn not_found() -> ApiError {
    ApiError::not_found("route")
}
