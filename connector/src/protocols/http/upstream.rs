//! Gate's client side: one pooled hyper client per HTTP resource (plain or
//! TLS per `upstream_tls`), with the resource's connect, header and idle
//! timeouts, and upstream failures turned into 502/504 reasons.

use std::sync::Arc;
use std::time::Duration;

use gate_config::connector::{ResourceConfig, TlsMode};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::Body;
use super::error::HttpError;

/// A resource's upstream: where it is and the pool of connections to it.
#[derive(Debug)]
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    /// `http://host:port` or `https://host:port`.
    origin: String,
    /// `host:port` as the `Host` header sent upstream.
    pub authority: String,
    header_timeout: Duration,
}

impl Upstream {
    /// The client for `resource` (its TLS configuration is read now).
    pub fn new(resource: &ResourceConfig) -> Result<Self, String> {
        let mode = resource.upstream_tls.mode();
        let tls = crate::tls::upstream_config(
            if mode == TlsMode::Disable {
                TlsMode::Require
            } else {
                mode
            },
            resource.upstream_tls.ca_file(),
        )?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(resource.timeouts.connect));
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(Arc::unwrap_or_clone(tls))
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(resource.timeouts.idle)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        let scheme = if mode == TlsMode::Disable {
            "http"
        } else {
            "https"
        };
        let host = if resource.host.contains(':') {
            format!("[{}]", resource.host)
        } else {
            resource.host.clone()
        };
        let authority = format!("{host}:{}", resource.port);
        Ok(Self {
            client,
            origin: format!("{scheme}://{authority}"),
            authority,
            header_timeout: resource.timeouts.header,
        })
    }

    /// The upstream URI for a client's path and query.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, HttpError> {
        format!("{}{path_and_query}", self.origin)
            .parse()
            .map_err(|e| HttpError::BadRequest(format!("request target cannot be forwarded: {e}")))
    }

    /// Send `request` and wait for the response headers.
    pub async fn send(&self, request: Request<Body>) -> Result<Response<Incoming>, HttpError> {
        match tokio::time::timeout(self.header_timeout, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(self.failure(&error)),
            Err(_) => Err(HttpError::UpstreamTimeout(format!(
                "upstream {} sent no response headers within {:?}",
                self.authority, self.header_timeout
            ))),
        }
    }

    fn failure(&self, error: &hyper_util::client::legacy::Error) -> HttpError {
        let causes = format!(
            ": {}",
            crate::http_get::causes(std::error::Error::source(error))
        );
        if causes.contains("timed out") || causes.contains("timeout") {
            return HttpError::UpstreamTimeout(format!(
                "connecting to upstream {} timed out{causes}",
                self.authority
            ));
        }
        if error.is_connect() {
            HttpError::UpstreamFailed(format!(
                "cannot connect to upstream {}{causes}",
                self.authority
            ))
        } else {
            HttpError::UpstreamFailed(format!(
                "upstream {} broke the exchange{causes}",
                self.authority
            ))
        }
    }
}
