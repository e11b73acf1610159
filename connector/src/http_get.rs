//! GET a document such as a JWKS with hyper-util's client and rustls, bounded in size and time.
//!
//! `https://` goes through hyper-rustls, verified against the system CA bundle (as upstream
//! `verify-full` without a `ca_file`); `http://` is allowed on loopback only, which the config
//! enforces.
//!
//! ```text
//! get(url) ─ http://  ─ HttpConnector ───────────────────────┬─ GET, Accept: application/json
//!          └ https:// ─ HttpsConnector (rustls, system roots) ┘  ─ 200? ─ body ≤ 1 MiB, all ≤ 10 s
//! ```
//!
//! Every error names the URL and what failed (`…: cannot connect: …`, `…: HTTP status 404`,
//! `…: timed out after 10 s`).

use std::error::Error as _;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, USER_AGENT};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;

/// Largest document accepted.
const LIMIT: usize = 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

/// GET `url` and return the body of a 200 answer.
pub async fn get(url: &str) -> Result<Vec<u8>, String> {
    get_within(url, TIMEOUT, LIMIT).await
}

/// [`get`] with its time and size bounds as arguments.
async fn get_within(url: &str, timeout: Duration, limit: usize) -> Result<Vec<u8>, String> {
    let uri: Uri = url.parse().map_err(|e| format!("{url}: not a URL: {e}"))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("{url}: expected an http:// or https:// URL")),
    };
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url}: no host"));
    }
    let fetched = async {
        if tls {
            // The same roots as upstream `verify-full` without a `ca_file`: the system bundle.
            let config =
                crate::tls::upstream_config(gate_config::connector::TlsMode::VerifyFull, None)?;
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(std::sync::Arc::unwrap_or_clone(config))
                .https_only()
                .enable_http1()
                .build();
            fetch(connector, uri, limit).await
        } else {
            fetch(HttpConnector::new(), uri, limit).await
        }
    };
    tokio::time::timeout(timeout, fetched)
        .await
        .map_err(|_| format!("{url}: timed out after {}", seconds(timeout)))?
        .map_err(|e| format!("{url}: {e}"))
}

async fn fetch<C>(connector: C, uri: Uri, limit: usize) -> Result<Vec<u8>, String>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    // One request, no idle connection kept for later.
    let client: Client<C, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector);
    let request = Request::get(uri)
        .header(ACCEPT, "application/json")
        .header(USER_AGENT, "gate-connector")
        .body(Empty::new())
        .map_err(|e| format!("bad request: {e}"))?;
    let response = client.request(request).await.map_err(|e| {
        let what = if e.is_connect() {
            "cannot connect"
        } else {
            "request failed"
        };
        // The client's own message ("client error (Connect)") says less than its causes.
        format!("{what}: {}", causes(e.source()))
    })?;
    if response.status() != StatusCode::OK {
        return Err(format!("HTTP status {}", response.status().as_u16()));
    }
    let body = Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<LengthLimitError>() {
                format!("response body larger than {limit} bytes")
            } else {
                format!("reading the response body: {}", causes(Some(&*e)))
            }
        })?;
    Ok(body.to_bytes().to_vec())
}

/// An error and its sources, outermost first, joined by ": " (repeats dropped).
pub fn causes(error: Option<&(dyn std::error::Error + 'static)>) -> String {
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

fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
#[path = "http_get_tests.rs"]
mod tests;
