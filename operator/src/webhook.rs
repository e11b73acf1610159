//! The sidecar injector's admission webhook: HTTPS (the certificate and key
//! files re-read when they change, so a renewed Secret or cert-manager
//! certificate is served without a restart; a half-written rotation keeps
//! the last good pair), `POST /mutate` answers Pod AdmissionReviews with
//! [`inject::review`], `POST /mutate-accessrequests` AccessRequest ones
//! with [`requester::review`], `GET /healthz` for probes. Every replica serves it,
//! leader or not: admission must not wait for an election.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use gate_tls::{Options, TlsFiles};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::inject::{self, InjectConfig};
use crate::requester;

/// The webhook's certificate and key, as its flags name them in errors.
pub fn tls_files(cert: &str, key: &str) -> Result<TlsFiles, String> {
    TlsFiles::load_with(
        cert,
        key,
        Options {
            cert_setting: "--webhook-cert-file",
            key_setting: "--webhook-key-file",
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        },
    )
}

/// The webhook's routes.
pub fn router(config: Arc<InjectConfig>) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/mutate-accessrequests", post(mutate_access_request))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(config)
}

async fn mutate(State(config): State<Arc<InjectConfig>>, body: Bytes) -> Response {
    match serde_json::from_slice(&body) {
        Ok(review) => axum::Json(inject::review(review, &config)).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("the body is not an AdmissionReview of a Pod: {e}"),
        )
            .into_response(),
    }
}

async fn mutate_access_request(body: Bytes) -> Response {
    match serde_json::from_slice(&body) {
        Ok(review) => axum::Json(requester::review(review)).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("the body is not an AdmissionReview: {e}"),
        )
            .into_response(),
    }
}

/// Serve the webhook on `listener` over TLS from `files` until the process ends.
pub async fn serve(listener: TcpListener, files: Arc<TlsFiles>, config: Arc<InjectConfig>) {
    let app = router(config);
    let mut last_good = None;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "webhook accept failed");
                continue;
            }
        };
        let acceptor = match files.acceptor() {
            Ok(acceptor) => {
                last_good = Some(acceptor.clone());
                acceptor
            }
            Err(e) => match &last_good {
                Some(acceptor) => {
                    tracing::warn!(error = %e, "webhook certificate unreadable; serving the previous one");
                    acceptor.clone()
                }
                None => {
                    tracing::error!(error = %e, "webhook certificate unreadable");
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let stream = match acceptor.accept(stream).await {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "webhook TLS handshake failed");
                    return;
                }
            };
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "webhook connection ended");
            }
        });
    }
}
