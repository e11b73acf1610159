//! The sidecar injector's admission webhook: HTTPS (the certificate and key
//! files re-read when they change, so a renewed Secret or cert-manager
//! certificate is served without a restart; a half-written rotation keeps
//! the last good pair; or, with the operator's own certificate, the pair
//! [`webhook_cert`](crate::webhook_cert) installs), `POST /mutate` answers Pod AdmissionReviews with
//! [`inject::review_with_credentials`] (the credentials Secret of each named `Resource` in the
//! pod's namespace read through the Kubernetes API first), `POST /mutate-accessrequests` AccessRequest ones
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

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::AdmissionReview;

use crate::crd::{Resource, SecretKeysRef};
use crate::inject::{self, InjectConfig};
use crate::requester;
use crate::webhook_cert::ServingCert;

/// The protocols the webhook offers: the API server speaks HTTP/2 or HTTP/1.1.
pub fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

/// The webhook's certificate and key, as its flags name them in errors.
pub fn tls_files(cert: &str, key: &str) -> Result<TlsFiles, String> {
    TlsFiles::load_with(
        cert,
        key,
        Options {
            cert_setting: "--webhook-cert-file",
            key_setting: "--webhook-key-file",
            alpn: alpn(),
        },
    )
}

/// Where the webhook's certificate comes from: files (a mounted Secret, cert-manager) or the pair
/// the operator issued itself.
#[derive(Clone)]
pub enum CertSource {
    Files(Arc<TlsFiles>),
    Issued(Arc<ServingCert>),
}

impl From<Arc<TlsFiles>> for CertSource {
    fn from(files: Arc<TlsFiles>) -> Self {
        CertSource::Files(files)
    }
}

impl From<Arc<ServingCert>> for CertSource {
    fn from(serving: Arc<ServingCert>) -> Self {
        CertSource::Issued(serving)
    }
}

impl CertSource {
    fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, String> {
        match self {
            CertSource::Files(files) => files.acceptor(),
            CertSource::Issued(serving) => serving.acceptor(),
        }
    }
}

/// What the pod webhook needs: how to build sidecars, and the Kubernetes API to read the named
/// `Resource`s' credentials Secret references from (`None`: no credentials are mounted).
#[derive(Clone)]
pub struct Injector {
    pub config: Arc<InjectConfig>,
    pub kube: Option<kube::Client>,
}

/// The webhook's routes.
pub fn router(injector: Injector) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/mutate-accessrequests", post(mutate_access_request))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(injector)
}

/// `spec.credentialsSecretRef` of each named `Resource` in `namespace` that has one; a missing
/// `Resource` has none (it may be defined through the API); any other API error is returned.
pub async fn credentials_refs(
    client: &kube::Client,
    namespace: &str,
    names: &[(String, u16)],
) -> Result<BTreeMap<String, SecretKeysRef>, String> {
    let api: kube::Api<Resource> = kube::Api::namespaced(client.clone(), namespace);
    let mut out = BTreeMap::new();
    for (name, _) in names {
        match api.get_opt(name).await {
            Ok(Some(resource)) => {
                if let Some(secret) = resource.spec.credentials_secret_ref {
                    out.insert(name.clone(), secret);
                }
            }
            Ok(None) => {}
            Err(e) => {
                return Err(format!(
                    "cannot read Resource {namespace}/{name} for its credentials: {e}"
                ));
            }
        }
    }
    Ok(out)
}

async fn mutate(State(injector): State<Injector>, body: Bytes) -> Response {
    let review: AdmissionReview<Pod> = match serde_json::from_slice(&body) {
        Ok(review) => review,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("the body is not an AdmissionReview of a Pod: {e}"),
            )
                .into_response();
        }
    };
    let request = review.request.as_ref();
    let pod = request.and_then(|r| r.object.as_ref());
    let namespace = request
        .and_then(|r| r.namespace.clone())
        .or_else(|| pod.and_then(|p| p.metadata.namespace.clone()));
    let wanted = pod.map(|p| inject::wanted_resources(p, &injector.config));
    let credentials = match (&injector.kube, wanted, namespace) {
        (Some(client), Some(Ok(Some(names))), Some(namespace)) => {
            credentials_refs(client, &namespace, &names).await
        }
        _ => Ok(BTreeMap::new()),
    };
    match credentials {
        Ok(credentials) => axum::Json(inject::review_with_credentials(
            review,
            &injector.config,
            &credentials,
        ))
        .into_response(),
        // Fail closed: a pod whose credentials cannot be known is refused, with the reason.
        Err(reason) => axum::Json(inject::answer(review, |_| {
            Err::<Option<json_patch::Patch>, _>(reason)
        }))
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

/// Serve the webhook on `listener` over TLS with the certificate of `certs` until the process ends.
pub async fn serve(listener: TcpListener, certs: impl Into<CertSource>, injector: Injector) {
    let files = certs.into();
    let app = router(injector);
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
