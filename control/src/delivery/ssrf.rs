//! The SSRF guard for webhook URLs: `https://`, or `http://` only to loopback or an allowed
//! host; never link-local or cloud-metadata addresses. Checked when a webhook is saved (the URL)
//! and again before every attempt (the addresses its host resolves to, which are the ones the
//! connection then uses, so DNS cannot change the answer in between).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::Uri;

/// Host names of cloud metadata services.
const METADATA_HOSTS: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
];

/// A URL that may be called, split into what the connection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub uri: Uri,
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// What the guard allows besides `https://` to public addresses.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Hosts reachable over plain `http://` (`delivery.allowed_http_hosts`).
    pub allowed_http_hosts: Vec<String>,
    /// No checks at all (the operator-configured Slack API URL).
    pub trusted: bool,
}

fn blocked_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return blocked_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) // AWS metadata
        }
    }
}

fn blocked_v4(v4: Ipv4Addr) -> bool {
    v4.is_link_local() // 169.254.0.0/16, where metadata services live
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4 == Ipv4Addr::new(100, 100, 100, 200) // Alibaba Cloud metadata
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl Guard {
    /// Check a URL's shape: scheme, host, no credentials, no metadata or link-local host.
    /// Errors say what is wrong, for `url: …` messages.
    pub fn check_url(&self, url: &str) -> Result<Target, String> {
        let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err("expected an https:// URL".to_owned()),
        };
        let authority = uri.authority().ok_or("no host")?;
        if authority.as_str().contains('@') {
            return Err("credentials in the URL are not allowed".to_owned());
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err("no host".to_owned());
        }
        // `Authority::port` is None for a port that is not a u16: read the text itself.
        let written = authority
            .as_str()
            .rsplit_once(':')
            .map(|(_, p)| p)
            .filter(|p| !p.contains(']'));
        let port = match written {
            None | Some("") => {
                if tls {
                    443
                } else {
                    80
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => return Err(format!("port {p} is not 1-65535")),
            },
        };
        if !self.trusted {
            let lower = host.to_ascii_lowercase();
            if METADATA_HOSTS.contains(&lower.trim_end_matches('.')) {
                return Err(format!("{host} is a cloud metadata service"));
            }
            if let Ok(ip) = host.parse::<IpAddr>()
                && blocked_ip(ip)
            {
                return Err(format!(
                    "{ip} is a link-local, metadata or unspecified address"
                ));
            }
            if !tls && !is_loopback_host(&host) && !self.http_allowed(&host) {
                return Err(format!(
                    "http:// is allowed only to loopback addresses or hosts in \
                     delivery.allowed_http_hosts; use https:// for {host}"
                ));
            }
        }
        Ok(Target {
            uri,
            host,
            port,
            tls,
        })
    }

    fn http_allowed(&self, host: &str) -> bool {
        self.allowed_http_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Resolve the target's host and keep the addresses the guard allows; an error when none
    /// is left. Plain http:// to a host that is not allowed must resolve to loopback only.
    pub async fn resolve(&self, target: &Target) -> Result<Vec<SocketAddr>, String> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", target.host))?
            .collect();
        if self.trusted {
            return Ok(addrs);
        }
        let loopback_only = !target.tls && !self.http_allowed(&target.host);
        let allowed: Vec<SocketAddr> = addrs
            .iter()
            .copied()
            .filter(|a| !blocked_ip(a.ip()) && (!loopback_only || a.ip().is_loopback()))
            .collect();
        if allowed.is_empty() {
            return Err(format!(
                "{} resolves to no allowed address ({})",
                target.host,
                addrs
                    .iter()
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_the_guard_refuses_and_allows() {
        let guard = Guard::default();
        for bad in [
            "ftp://example.com/x",
            "http://example.com/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://[fe80::1]/x",
            "https://metadata.google.internal/x",
            "https://user:pw@example.com/x",
            "http://0.0.0.0:80/",
            "https://example.com:70000/x",
            "https://example.com:0/x",
            "https://[::ffff:169.254.169.254]/",
            "not a url",
        ] {
            assert!(guard.check_url(bad).is_err(), "{bad}");
        }
        for good in [
            "https://example.com/hook",
            "http://127.0.0.1:9000/hook",
            "http://localhost:1/x",
            "http://[::1]:8080/x",
        ] {
            assert!(guard.check_url(good).is_ok(), "{good}");
        }
        let allowing = Guard {
            allowed_http_hosts: vec!["hooks.internal".to_owned()],
            trusted: false,
        };
        assert!(allowing.check_url("http://hooks.internal/x").is_ok());
    }
}
