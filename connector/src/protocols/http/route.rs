//! Which HTTP resource a request is for: the resource of a dedicated
//! listener, or on the shared listener the one whose `host_names` match the
//! request's host (`Host`, `:authority`, else the TLS SNI name); then its
//! `path_prefix`, if any, must match.

use gate_config::ConnectorConfig;
use gate_config::connector::{Protocol, ResourceConfig};

use super::error::HttpError;

/// How a listener picks resources.
#[derive(Debug, Clone)]
pub enum Route {
    /// A dedicated listener: always this resource (index into `resources`).
    Fixed(usize),
    /// The shared listener: by host name.
    ByHost,
}

/// The resource for a request to `host` (port removed, lower case) at `path`.
pub fn select<'c>(
    config: &'c ConnectorConfig,
    route: &Route,
    host: Option<&str>,
    path: &str,
) -> Result<&'c ResourceConfig, HttpError> {
    let resource = match route {
        Route::Fixed(index) => config
            .resources
            .get(*index)
            .ok_or_else(|| HttpError::Internal("the listener's resource is gone".into()))?,
        Route::ByHost => by_host(config, host)?,
    };
    match &resource.path_prefix {
        Some(prefix) if !under_prefix(path, prefix) => Err(HttpError::NotFound(format!(
            "resource {:?} only serves paths under {prefix}",
            resource.name
        ))),
        _ => Ok(resource),
    }
}

fn by_host<'c>(
    config: &'c ConnectorConfig,
    host: Option<&str>,
) -> Result<&'c ResourceConfig, HttpError> {
    let shared = || {
        config
            .resources
            .iter()
            .filter(|r| r.protocol == Protocol::Http && r.listen_port.is_none())
    };
    if let Some(host) = host
        && let Some(resource) =
            shared().find(|r| r.host_names.iter().any(|n| host_matches(n, host)))
    {
        return Ok(resource);
    }
    // A single shared HTTP resource without host names takes every host.
    let mut unnamed = shared().filter(|r| r.host_names.is_empty());
    if let (Some(only), None) = (unnamed.next(), unnamed.next()) {
        return Ok(only);
    }
    Err(HttpError::NotFound(match host {
        Some(host) => format!("no HTTP resource serves host {host:?} on this listener"),
        None => "the request names no host, and no single HTTP resource serves every host".into(),
    }))
}

/// `name` (`api.example.com`, or `*.example.com` for one more label) against `host`.
pub fn host_matches(name: &str, host: &str) -> bool {
    match name.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .and_then(|rest| rest.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        None => name.eq_ignore_ascii_case(host),
    }
}

/// `path` is `prefix` or below it (`/api` covers `/api`, `/api/x`, not `/apix`).
fn under_prefix(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || prefix.is_empty(),
        None => false,
    }
}

/// The host a request names: `authority` without port, lower case.
pub fn host_of(authority: &str) -> String {
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or(v6)
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_exactly_one_label() {
        assert!(host_matches("*.gate.local", "billing.gate.local"));
        assert!(!host_matches("*.gate.local", "a.b.gate.local"));
        assert!(!host_matches("*.gate.local", "gate.local"));
        assert!(host_matches("Billing.Gate.Local", "billing.gate.local"));
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(under_prefix("/api", "/api"));
        assert!(under_prefix("/api/v1", "/api/"));
        assert!(!under_prefix("/apix", "/api"));
        assert!(under_prefix("/anything", "/"));
    }

    #[test]
    fn hosts_lose_their_port() {
        assert_eq!(host_of("Billing.Gate.Local:8443"), "billing.gate.local");
        assert_eq!(host_of("[::1]:80"), "::1");
        assert_eq!(host_of("example.com"), "example.com");
    }
}
