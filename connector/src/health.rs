//! The health port on axum: `/healthz`, `/readyz` and `/metrics` over HTTP/1.1, with a header read timeout.
//!
//! `/healthz` answers while the process runs, `/readyz` once config and policies are loaded and
//! the listeners bound, `/metrics` with the Prometheus scrape.
//!
//! ```text
//! accept ─ hyper HTTP/1.1 (≤ 10 s for each request's headers, 16 KiB buffer) ─ axum router
//! ```
//!
//! `/metrics` is served as `text/plain; version=0.0.4; charset=utf-8` ([`crate::metrics::CONTENT_TYPE`]):
//! Prometheus scrapes it, and `promtool check metrics` reads it (promtool does not parse
//! OpenMetrics). Only GET (and HEAD) are answered: other methods get 405, unknown paths 404.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// How long a client may take to send a request's headers (a silent connection is closed then).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head read.
const READ_BUFFER: usize = 16 * 1024;

/// What the health endpoints report.
#[derive(Debug, Default)]
pub struct Health {
    ready: AtomicBool,
}

impl Health {
    /// Mark the connector ready to serve.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

#[derive(Debug, Clone)]
struct Shared {
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

/// Serve the health port until the task is dropped.
pub async fn serve(listener: TcpListener, health: Arc<Health>, metrics: Arc<Metrics>) {
    serve_with(listener, router(health, metrics), HEADER_TIMEOUT).await;
}

/// The routes of the health port.
fn router(health: Arc<Health>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }).fallback(only_get))
        .route("/readyz", get(readyz).fallback(only_get))
        .route("/metrics", get(scrape).fallback(only_get))
        .fallback(not_found)
        .with_state(Shared { health, metrics })
}

async fn readyz(State(shared): State<Shared>) -> (StatusCode, &'static str) {
    if shared.health.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn scrape(State(shared): State<Shared>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        shared.metrics.render(),
    )
}

async fn only_get() -> (
    StatusCode,
    [(header::HeaderName, &'static str); 1],
    &'static str,
) {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "GET, HEAD")],
        "only GET\n",
    )
}

async fn not_found(method: Method) -> axum::response::Response {
    if method == Method::GET || method == Method::HEAD {
        (StatusCode::NOT_FOUND, "not found\n").into_response()
    } else {
        only_get().await.into_response()
    }
}

/// Accept connections on `listener` and serve `app` on each, HTTP/1.1 only.
async fn serve_with(listener: TcpListener, app: Router, header_timeout: Duration) {
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(READ_BUFFER);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(_) => {
                // Out of descriptors and the like: try again shortly rather than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let builder = builder.clone();
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            // A connection's end (a client gone, a header timeout) is not worth a log line.
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
