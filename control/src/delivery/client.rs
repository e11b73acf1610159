//! POST a JSON body (or GET) with hyper-util's client (rustls, system roots for https), connecting only to
//! the addresses the SSRF guard allowed, bounded in time and answer size.
//!
//! ```text
//! post(url) ─ guard.check_url ─ guard.resolve ─ HttpConnector(pinned addrs) ─┬─ http://
//!                                                   └─ HttpsConnector(rustls) ┘  POST ─ status, body ≤ 64 KiB
//! ```

use std::error::Error as _;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, USER_AGENT};
use http::{HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::ssrf::{Guard, Target};

/// Largest answer read (Slack's JSON answers are small; webhooks' bodies are ignored).
const ANSWER_LIMIT: usize = 64 * 1024;
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// An answer: status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// A resolver that answers with addresses checked beforehand.
#[derive(Clone)]
struct Pinned(Arc<Vec<SocketAddr>>);

impl tower_service::Service<Name> for Pinned {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Name) -> Self::Future {
        ready(Ok(self.0.as_ref().clone().into_iter()))
    }
}

fn tls_config() -> Result<rustls::ClientConfig, String> {
    static ROOTS: OnceLock<Result<Arc<rustls::RootCertStore>, String>> = OnceLock::new();
    let roots = ROOTS
        .get_or_init(|| {
            let pem = std::fs::read(CA_BUNDLE).map_err(|e| format!("{CA_BUNDLE}: {e}"))?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
                let _ = roots.add(cert);
            }
            Ok(Arc::new(roots))
        })
        .clone()?;
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))
        .map(|b| {
            b.with_root_certificates(Arc::unwrap_or_clone(roots))
                .with_no_client_auth()
        })
}

/// POST `body` to `url` with `headers`; any answer is returned (the caller judges the status).
pub async fn post(
    guard: &Guard,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Answer, String> {
    call(guard, url, headers, Some(body), timeout).await
}

/// GET `url` with `headers` (OIDC discovery and keys); any answer is returned.
pub async fn get(
    guard: &Guard,
    url: &str,
    headers: &[(&str, String)],
    timeout: Duration,
) -> Result<Answer, String> {
    call(guard, url, headers, None, timeout).await
}

/// POST `body` when there is one, else GET.
async fn call(
    guard: &Guard,
    url: &str,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Answer, String> {
    let target = guard.check_url(url)?;
    let attempt = async {
        let addrs = guard.resolve(&target).await?;
        let mut http = HttpConnector::new_with_resolver(Pinned(Arc::new(addrs)));
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        if target.tls {
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls_config()?)
                .https_only()
                .enable_http1()
                .wrap_connector(http);
            send(https, &target, headers, body).await
        } else {
            send(http, &target, headers, body).await
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("timed out after {} ms", timeout.as_millis()))?
}

async fn send<C>(
    connector: C,
    target: &Target,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> Result<Answer, String>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let client: Client<C, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector);
    let builder = match &body {
        Some(_) => Request::post(target.uri.clone()).header(CONTENT_TYPE, "application/json"),
        None => Request::get(target.uri.clone()),
    };
    let mut request = builder
        .header(USER_AGENT, "gate-control")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| format!("bad request: {e}"))?;
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
        let value = HeaderValue::from_str(value).map_err(|e| e.to_string())?;
        request.headers_mut().insert(name, value);
    }
    let response = client.request(request).await.map_err(|e| {
        let what = if e.is_connect() {
            "cannot connect"
        } else {
            "request failed"
        };
        format!("{what}: {}", causes(e.source()))
    })?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), ANSWER_LIMIT)
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    Ok(Answer { status, body })
}

/// An error and its sources, joined by ": " (repeats dropped).
fn causes(error: Option<&(dyn std::error::Error + 'static)>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = error;
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    if parts.is_empty() {
        "unknown error".to_owned()
    } else {
        parts.join(": ")
    }
}
