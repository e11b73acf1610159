//! What Gate makes of a client's request: the policy's view of it
//! (`input.http`), its audit text, and the headers sent upstream (hop-by-hop
//! headers removed per RFC 9110 §7.6.1, `X-Forwarded-*` and `Forwarded`
//! added, client credentials removed, configured credentials injected).

use std::collections::BTreeMap;
use std::net::IpAddr;

use gate_config::connector::ResourceConfig;
use gate_policy::HttpInfo;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::identity::{FORWARDED_EMAIL, FORWARDED_GROUPS, FORWARDED_USER};

/// Headers that describe one connection, never forwarded as they are.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// Header values policies never see.
const HIDDEN_FROM_POLICY: [HeaderName; 3] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::PROXY_AUTHORIZATION,
];

/// The content codings Gate can decode when it must inspect a response.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Forwarding headers only a trusted proxy may send on.
const UNTRUSTED_FORWARDING: [HeaderName; 7] = [
    HeaderName::from_static(FORWARDED_USER),
    HeaderName::from_static(FORWARDED_EMAIL),
    HeaderName::from_static(FORWARDED_GROUPS),
    X_FORWARDED_FOR,
    X_FORWARDED_PROTO,
    X_FORWARDED_HOST,
    header::FORWARDED,
];

const DECODABLE: &str = "gzip, deflate, br";

/// `input.http` for a request.
pub fn policy_view(
    method: &http::Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    host: Option<String>,
    body: Option<serde_json::Value>,
) -> HttpInfo {
    let mut visible = BTreeMap::new();
    for name in headers.keys() {
        if HIDDEN_FROM_POLICY.contains(name) {
            continue;
        }
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        visible.insert(name.as_str().to_owned(), joined);
    }
    HttpInfo {
        method: method.as_str().to_owned(),
        path: uri.path().to_owned(),
        query: parse_query(uri.query().unwrap_or("")),
        headers: visible,
        host,
        body,
    }
}

/// The path policies judge and the upstream receives: percent-encoded
/// unreserved characters decoded (`%61` → `a`), other escapes upper-cased,
/// empty and `.` segments dropped, `..` resolved, so `/x/../admin`,
/// `//admin` and `/%61dmin` are all `/admin` to both. A `..` above the root,
/// a backslash, a NUL or a malformed escape is refused.
pub fn normalize_path(path: &str) -> Result<String, String> {
    let mut decoded = String::with_capacity(path.len());
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("malformed percent-escape in path {path:?}"))?;
            if hex.is_ascii_alphanumeric() || b"-._~".contains(&hex) {
                decoded.push(char::from(hex));
            } else if hex == 0 || hex == b'\\' {
                return Err(format!("path {path:?} encodes a NUL or backslash"));
            } else {
                decoded.push_str(&format!("%{hex:02X}"));
            }
            i += 3;
            continue;
        }
        if b == b'\\' || b == 0 {
            return Err(format!("path {path:?} contains a backslash or NUL"));
        }
        decoded.push(char::from(b));
        i += 1;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(format!("path {path:?} climbs above the root"));
                }
            }
            other => segments.push(other),
        }
    }
    let trailing = decoded.len() > 1
        && (decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/.."));
    let mut out = format!("/{}", segments.join("/"));
    if trailing && out.len() > 1 {
        out.push('/');
    }
    Ok(out)
}

/// Whether a request body of this media type is read whole so policies see
/// it (when it parses as JSON): everything but uploads that are plainly not
/// JSON, which stream. Upstreams that parse JSON whatever the content type
/// says cannot be handed a JSON body the policy did not see.
pub fn inspect_body(media: Option<&str>) -> bool {
    match media {
        Some(m) => {
            !(m.starts_with("multipart/")
                || m == "application/octet-stream"
                || m.starts_with("image/")
                || m.starts_with("video/")
                || m.starts_with("audio/")
                || m == "application/zip"
                || m == "application/gzip")
        }
        None => true,
    }
}

/// A query string as every name with all its values, in order.
pub fn parse_query(query: &str) -> BTreeMap<String, Vec<String>> {
    let mut parsed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        parsed
            .entry(name.into_owned())
            .or_default()
            .push(value.into_owned());
    }
    parsed
}

/// The audit text of a request: method and path, query names without their values.
pub fn audit_text(method: &http::Method, uri: &http::Uri) -> String {
    let mut text = format!("{} {}", method, uri.path());
    if let Some(query) = uri.query().filter(|q| !q.is_empty()) {
        let names: Vec<String> = form_urlencoded::parse(query.as_bytes())
            .map(|(name, _)| name.into_owned())
            .collect();
        text.push('?');
        text.push_str(&names.join("&"));
    }
    text
}

/// What the upstream request's headers depend on besides the client's.
/// The client's address as forwarding headers write it (built once per connection).
#[derive(Debug, Clone)]
pub struct ClientAddress {
    /// `192.0.2.1` or `2001:db8::1` (`X-Forwarded-For`).
    pub text: String,
    /// The same as a header value.
    pub header: HeaderValue,
    /// `192.0.2.1` or `"[2001:db8::1]"` (`Forwarded: for=`).
    pub node: String,
}

impl ClientAddress {
    pub fn new(peer: IpAddr) -> Self {
        let text = peer.to_string();
        let node = match peer {
            IpAddr::V6(v6) => format!("\"[{v6}]\""),
            IpAddr::V4(_) => text.clone(),
        };
        Self {
            header: HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("unknown")),
            text,
            node,
        }
    }
}

#[derive(Debug)]
pub struct Forwarding<'a> {
    pub resource: &'a ResourceConfig,
    pub client: &'a ClientAddress,
    /// The peer is a trusted proxy: its forwarding headers are kept and extended.
    pub trusted: bool,
    /// The client reached Gate over TLS.
    pub tls: bool,
    /// The host the client asked for.
    pub host: Option<&'a str>,
    /// The `Upgrade` protocol when this is an upgrade request (WebSocket).
    pub upgrade: Option<HeaderValue>,
}

/// Turn the client's headers into the upstream request's.
pub fn upstream_headers(headers: &mut HeaderMap, f: &Forwarding<'_>) {
    strip_hop_by_hop(headers);
    headers.remove(header::EXPECT);
    headers.remove(header::HOST);
    if !f.resource.pass_authorization {
        headers.remove(header::AUTHORIZATION);
    }
    if !f.trusted {
        for name in &UNTRUSTED_FORWARDING {
            headers.remove(name);
        }
    }
    let proto = if f.tls { "https" } else { "http" };
    let client = f.client.text.as_str();
    match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(earlier) => {
            let chain = format!("{earlier}, {client}");
            set(headers, X_FORWARDED_FOR, &chain);
        }
        None => {
            headers.insert(X_FORWARDED_FOR, f.client.header.clone());
        }
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if let Some(host) = f.host
        && !headers.contains_key(&X_FORWARDED_HOST)
    {
        set(headers, X_FORWARDED_HOST, host);
    }
    let mut element = String::with_capacity(64);
    element.push_str("for=");
    element.push_str(&f.client.node);
    element.push_str(";proto=");
    element.push_str(proto);
    if let Some(host) = f
        .host
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic() && b != b'"'))
    {
        element.push_str(";host=\"");
        element.push_str(host);
        element.push('"');
    }
    let forwarded = match headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {element}"),
        None => element,
    };
    set(headers, header::FORWARDED, &forwarded);
    // Only codings Gate can decode, so any response can be inspected.
    if let Some(accepted) = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        let kept: Vec<&str> = accepted
            .split(',')
            .map(str::trim)
            .filter(|coding| {
                let name = coding.split(';').next().unwrap_or("").trim();
                DECODABLE.split(", ").any(|d| d.eq_ignore_ascii_case(name))
                    || name.eq_ignore_ascii_case("identity")
            })
            .collect();
        if kept.is_empty() {
            headers.remove(header::ACCEPT_ENCODING);
        } else {
            set(headers, header::ACCEPT_ENCODING, &kept.join(", "));
        }
    }
    for (name, value) in &f.resource.upstream_headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    if let Some(protocol) = &f.upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol.clone());
    }
}

/// Remove hop-by-hop headers, and every header the `Connection` header lists.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// The `Upgrade` protocol of an upgrade request (`Connection: upgrade`).
pub fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let wants = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    wants
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_before_anyone_judges_them() {
        for (given, want) in [
            ("/admin", "/admin"),
            ("//admin", "/admin"),
            ("/x/../admin", "/admin"),
            ("/./admin/.", "/admin/"),
            ("/%61dmin", "/admin"),
            ("/%2e%2e/x/%2E%2E/admin", ""),
            ("/a%2fb", "/a%2Fb"),
            ("/", "/"),
            ("/v1/items/", "/v1/items/"),
        ] {
            match normalize_path(given) {
                Ok(path) => assert_eq!(path, want, "{given}"),
                Err(e) => assert_eq!(want, "", "{given}: {e}"),
            }
        }
        assert!(normalize_path("/x/..%5cadmin").is_err());
        assert!(normalize_path("/%zz").is_err());
        assert!(normalize_path("/x/../../etc").is_err());
    }

    #[test]
    fn queries_keep_every_value() {
        let q = parse_query("tag=a&tag=b&limit=10&empty=&name=J%C3%BCrgen+X");
        assert_eq!(q["tag"], ["a", "b"]);
        assert_eq!(q["limit"], ["10"]);
        assert_eq!(q["empty"], [""]);
        assert_eq!(q["name"], ["Jürgen X"]);
    }

    #[test]
    fn audit_text_has_no_query_values() {
        let uri: http::Uri = "/v1/customers?ssn=123-45-6789&limit=5".parse().unwrap();
        assert_eq!(
            audit_text(&http::Method::GET, &uri),
            "GET /v1/customers?ssn&limit"
        );
    }

    #[test]
    fn connection_listed_headers_are_hop_by_hop() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", "keep-alive, x-secret-hop".parse().unwrap());
        headers.insert("x-secret-hop", "1".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("x-end-to-end", "2".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-end-to-end"));
    }

    #[test]
    fn policies_never_see_credentials() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer x".parse().unwrap());
        headers.insert("cookie", "session=1".parse().unwrap());
        headers.insert("X-Tenant", "acme".parse().unwrap());
        headers.append("accept", "a/b".parse().unwrap());
        headers.append("accept", "c/d".parse().unwrap());
        let view = policy_view(
            &http::Method::GET,
            &"/".parse().unwrap(),
            &headers,
            None,
            None,
        );
        assert_eq!(view.headers.len(), 2);
        assert_eq!(view.headers["x-tenant"], "acme");
        assert_eq!(view.headers["accept"], "a/b, c/d");
    }
}
