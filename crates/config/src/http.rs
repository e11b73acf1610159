//! HTTP resource settings (`protocol: http`): routing by host name and path
//! prefix, body limits, injected upstream headers, timeouts, and the trusted
//! proxies whose `X-Forwarded-User/Email/Groups` headers are believed.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::connector::{Protocol, ResourceConfig};
use crate::error::Problems;

/// The request and inspected-response limit when `max_body_bytes` is not set (10 MiB).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;

pub(crate) fn default_max_body_bytes() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}

/// Timeouts of one HTTP resource's upstream exchanges.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTimeouts {
    /// Establishing the upstream TCP (and TLS) connection.
    #[serde(
        default = "default_connect",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub connect: Duration,
    /// From sending the request to the upstream's response headers.
    #[serde(
        default = "default_header",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub header: Duration,
    /// How long an idle pooled upstream connection (and an idle client
    /// keep-alive connection) is kept.
    #[serde(
        default = "default_idle",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub idle: Duration,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        Self {
            connect: default_connect(),
            header: default_header(),
            idle: default_idle(),
        }
    }
}

fn default_connect() -> Duration {
    Duration::from_secs(5)
}
fn default_header() -> Duration {
    Duration::from_secs(30)
}
fn default_idle() -> Duration {
    Duration::from_secs(90)
}

/// An address range (`10.0.0.0/8`, `::1/128`, or a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub network: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Parse `addr/len` or a bare address.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("expected an IP address or CIDR range, got {text:?}"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(len) => match len.trim().parse::<u8>() {
                Ok(len) if len <= max => len,
                _ => return Err(format!("expected a prefix length 0-{max}, got {text:?}")),
            },
        };
        Ok(Self { network, prefix })
    }

    /// Whether `ip` lies in the range (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Header names Gate will not inject: they describe the connection, not the request.
const NOT_INJECTABLE: [&str; 6] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
];

/// Check one HTTP resource's own fields (`at` names a field of `resources[i]`).
pub(crate) fn validate_resource(r: &ResourceConfig, at: &dyn Fn(&str) -> String, p: &mut Problems) {
    if r.protocol != Protocol::Http {
        // MCP resources send their own credentials upstream (upstream_headers),
        // never the client's token.
        let mcp = r.protocol == Protocol::Mcp;
        for (field, set) in [
            ("host_names", !r.host_names.is_empty()),
            ("path_prefix", r.path_prefix.is_some()),
            ("upstream_headers", !mcp && !r.upstream_headers.is_empty()),
            ("filter_path", r.filter_path.is_some()),
            ("pass_authorization", r.pass_authorization),
        ] {
            if set && mcp && field == "pass_authorization" {
                p.push(
                    at(field),
                    "MCP resources never forward the client's token; give the upstream its own credentials with upstream_headers",
                );
            } else if set {
                p.push(at(field), "only valid for protocol http resources");
            }
        }
        if mcp {
            validate_upstream_headers(r, at, p);
        }
        return;
    }
    for (i, name) in r.host_names.iter().enumerate() {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '*'));
        if !valid {
            p.push(
                at(&format!("host_names[{i}]")),
                format!(
                    "expected a DNS name (letters, digits, '.', '-', a leading '*.'), got {name:?}"
                ),
            );
        }
    }
    if let Some(prefix) = &r.path_prefix
        && !prefix.starts_with('/')
    {
        p.push(
            at("path_prefix"),
            format!("expected a path starting with /, got {prefix:?}"),
        );
    }
    if r.max_body_bytes == 0 {
        p.push(at("max_body_bytes"), "expected at least 1, got 0");
    }
    validate_upstream_headers(r, at, p);
    for (field, value) in [
        ("timeouts.connect", r.timeouts.connect),
        ("timeouts.header", r.timeouts.header),
        ("timeouts.idle", r.timeouts.idle),
    ] {
        if value.is_zero() {
            p.push(at(field), "must be greater than zero");
        }
    }
}

/// Names and values of `upstream_headers` (HTTP and MCP resources).
fn validate_upstream_headers(r: &ResourceConfig, at: &dyn Fn(&str) -> String, p: &mut Problems) {
    for name in r.upstream_headers.keys() {
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            p.push(
                at(&format!("upstream_headers.{name}")),
                "expected an HTTP header name (RFC 9110 token characters)",
            );
        } else if NOT_INJECTABLE.contains(&name.to_ascii_lowercase().as_str()) {
            p.push(
                at(&format!("upstream_headers.{name}")),
                "Gate sets this header itself; it cannot be injected",
            );
        }
    }
    for (name, value) in &r.upstream_headers {
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            p.push(
                at(&format!("upstream_headers.{name}")),
                "a header value must not contain CR, LF or NUL",
            );
        }
    }
}

/// On the shared listener, HTTP resources are told apart by host name: at
/// most one may go without `host_names`.
pub(crate) fn validate_shared_hosts(resources: &[ResourceConfig], p: &mut Problems) {
    let unnamed: Vec<usize> = resources
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.protocol == Protocol::Http && r.listen_port.is_none() && r.host_names.is_empty()
        })
        .map(|(i, _)| i)
        .collect();
    if unnamed.len() > 1 {
        for i in unnamed {
            p.push(
                format!("resources[{i}].host_names"),
                "several HTTP resources share the listener without host_names; give each its host names (or a listen_port)",
            );
        }
    }
}

/// Check `trusted_proxies`.
pub(crate) fn validate_trusted_proxies(proxies: &[String], p: &mut Problems) {
    for (i, text) in proxies.iter().enumerate() {
        if let Err(e) = Cidr::parse(text) {
            p.push(format!("trusted_proxies[{i}]"), e);
        }
    }
}

/// Headers to inject upstream, as configured.
pub type UpstreamHeaders = BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_ranges_match_their_members_only() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains("10.200.1.2".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(
            net.contains("::ffff:10.1.1.1".parse().unwrap()),
            "IPv4-mapped"
        );
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let any = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(any.contains("8.8.8.8".parse().unwrap()));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
    }

    #[test]
    fn bad_ranges_say_what_was_expected() {
        assert!(Cidr::parse("10.0.0.0/33").unwrap_err().contains("0-32"));
        assert!(Cidr::parse("ten").unwrap_err().contains("IP address"));
    }
}

#[cfg(test)]
mod validation_tests {
    use crate::{ConnectorConfig, load_str};

    fn problems(yaml: &str) -> Vec<String> {
        match load_str::<ConnectorConfig>("c.yaml", yaml, &|_| None) {
            Ok(_) => Vec::new(),
            Err(e) => e.errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn http_fields_are_checked_and_named() {
        let yaml = "trusted_proxies: [10.0.0.0/8, nope]\nresources:\n\
            \x20 - {name: a, protocol: http, host: h, port: 80, path_prefix: api, max_body_bytes: 0, upstream_headers: {Host: x, 'Bad Name': y, X-Ok: \"a\\r\\nb\"}, timeouts: {idle: 0s}}\n\
            \x20 - {name: b, protocol: postgres, host: h, port: 5432, host_names: [x]}\n";
        let found = problems(yaml);
        for want in [
            "trusted_proxies[1]: expected an IP address or CIDR range",
            "resources[0].path_prefix: expected a path starting with /",
            "resources[0].max_body_bytes: expected at least 1, got 0",
            "resources[0].upstream_headers.Host: Gate sets this header itself",
            "resources[0].upstream_headers.Bad Name: expected an HTTP header name",
            "resources[0].upstream_headers.X-Ok: a header value must not contain CR, LF or NUL",
            "resources[0].timeouts.idle: must be greater than zero",
            "resources[1].host_names: only valid for protocol http resources",
        ] {
            assert!(
                found.iter().any(|p| p.contains(want)),
                "missing {want:?} in {found:#?}"
            );
        }
    }

    #[test]
    fn shared_http_resources_need_host_names_to_be_told_apart() {
        let two = "resources:\n  - {name: a, protocol: http, host: h, port: 80}\n  - {name: b, protocol: http, host: h, port: 81}\n";
        assert_eq!(problems(two).len(), 2, "{:?}", problems(two));
        let named = "resources:\n  - {name: a, protocol: http, host: h, port: 80}\n  - {name: b, protocol: http, host: h, port: 81, host_names: [b.local]}\n";
        assert!(problems(named).is_empty(), "{:?}", problems(named));
        let config = load_str::<ConnectorConfig>("c.yaml", named, &|_| None).unwrap();
        assert_eq!(
            config.resources[0].max_body_bytes,
            super::DEFAULT_MAX_BODY_BYTES
        );
        assert_eq!(config.resources[0].timeouts.header.as_secs(), 30);
    }
}
