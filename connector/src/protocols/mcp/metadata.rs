//! OAuth 2.0 protected-resource metadata (RFC 9728) for MCP resources whose
//! clients bring bearer tokens: the well-known document naming the issuers
//! Gate trusts (`auth.jwt.issuers`), and the `WWW-Authenticate` challenge on
//! a 401 that points MCP clients at it.

use bytes::Bytes;
use gate_config::connector::ResourceConfig;
use http::header::{self, HeaderValue};
use http::uri::Authority;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use serde_json::json;

use crate::protocols::http::Body;
use crate::protocols::http::error::{HttpError, full};
use crate::protocols::http::proxy::header_text;
use crate::server::Gate;

/// The well-known path; the path-suffixed form appends the endpoint path.
const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// How the client reached this listener (for URLs in the metadata).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reached<'a> {
    pub(crate) uri: &'a Uri,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) tls: bool,
    /// The peer is a trusted proxy, whose `X-Forwarded-Proto` counts.
    pub(crate) trusted: bool,
}

impl Reached<'_> {
    /// `scheme://authority` as the client addressed Gate, when the
    /// authority it sent is a valid one.
    fn origin(&self) -> Option<String> {
        let authority = match self.uri.authority() {
            Some(authority) => authority.clone(),
            None => header_text(self.headers, header::HOST)?
                .parse::<Authority>()
                .ok()?,
        };
        if authority.as_str().contains('@') {
            return None;
        }
        let forwarded = self
            .trusted
            .then(|| header_text(self.headers, "x-forwarded-proto"))
            .flatten()
            .filter(|p| p == "https" || p == "http");
        let scheme = forwarded.unwrap_or_else(|| if self.tls { "https" } else { "http" }.into());
        Some(format!("{scheme}://{authority}"))
    }
}

fn endpoint(resource: &ResourceConfig) -> &str {
    resource.endpoint_path.as_deref().unwrap_or("/mcp")
}

/// The issuers whose tokens Gate accepts, when there are any.
fn issuers(gate: &Gate) -> Option<Vec<&str>> {
    let jwt = gate.config.auth.jwt.as_ref()?;
    let mut issuers: Vec<&str> = jwt.issuers.iter().map(|i| i.issuer.as_str()).collect();
    issuers.dedup();
    (!issuers.is_empty()).then_some(issuers)
}

/// The metadata document's URL (the path-suffixed form, RFC 9728 §3.1).
fn metadata_url(origin: &str, resource: &ResourceConfig) -> String {
    format!("{origin}{WELL_KNOWN}{}", endpoint(resource))
}

/// The answer to `GET /.well-known/oauth-protected-resource[<endpoint>]`,
/// served without authentication; `None` for every other request, or when
/// no token issuers are configured.
pub(crate) fn document<B>(
    gate: &Gate,
    resource: &ResourceConfig,
    request: &Request<B>,
    reached: Reached<'_>,
) -> Option<Result<Response<Body>, HttpError>> {
    let path = request.uri().path();
    let ours = path == WELL_KNOWN || path.strip_prefix(WELL_KNOWN) == Some(endpoint(resource));
    if request.method() != Method::GET || !ours {
        return None;
    }
    let issuers = issuers(gate)?;
    let Some(origin) = reached.origin() else {
        return Some(Err(HttpError::BadRequest(
            "the request names no valid Host, so the resource URL cannot be given".into(),
        )));
    };
    let body = json!({
        "resource": format!("{origin}{}", endpoint(resource)),
        "resource_name": resource.name,
        "authorization_servers": issuers,
        "bearer_methods_supported": ["header"],
    });
    let mut response = Response::new(full(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Some(Ok(response))
}

/// A 401 whose Bearer challenge carries `resource_metadata` (when token
/// issuers are configured), so an MCP client can find where to get a token.
pub(crate) fn unauthorized(
    gate: &Gate,
    resource: &ResourceConfig,
    reached: Reached<'_>,
) -> Response<Body> {
    let mut response = HttpError::Unauthorized.into_response();
    let (Some(_), Some(origin)) = (issuers(gate), reached.origin()) else {
        return response;
    };
    let url = metadata_url(&origin, resource);
    // A token was presented and refused (RFC 6750 §3.1).
    let presented = header_text(reached.headers, header::AUTHORIZATION).is_some_and(|value| {
        value
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("bearer "))
    });
    let invalid = if presented {
        ", error=\"invalid_token\""
    } else {
        ""
    };
    let headers = response.headers_mut();
    let challenges: Vec<HeaderValue> = headers
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|value| {
            let text = value.to_str().unwrap_or_default();
            if text.starts_with("Bearer ") {
                HeaderValue::from_str(&format!("{text}{invalid}, resource_metadata=\"{url}\""))
                    .unwrap_or_else(|_| value.clone())
            } else {
                value.clone()
            }
        })
        .collect();
    headers.remove(header::WWW_AUTHENTICATE);
    for challenge in challenges {
        headers.append(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_is_what_the_client_addressed() {
        let uri: Uri = "/mcp".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("tools.example:7443"));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let reached = |tls, trusted| Reached {
            uri: &uri,
            headers: &headers,
            tls,
            trusted,
        };
        assert_eq!(
            reached(false, false).origin().as_deref(),
            Some("http://tools.example:7443")
        );
        assert_eq!(
            reached(true, false).origin().as_deref(),
            Some("https://tools.example:7443")
        );
        assert_eq!(
            reached(false, true).origin().as_deref(),
            Some("https://tools.example:7443"),
            "a trusted proxy's X-Forwarded-Proto counts"
        );
        let mut bad = HeaderMap::new();
        bad.insert(header::HOST, HeaderValue::from_static("a b"));
        let odd = Reached {
            uri: &uri,
            headers: &bad,
            tls: false,
            trusted: false,
        };
        assert_eq!(odd.origin(), None);
    }
}
