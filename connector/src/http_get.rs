//! A small HTTP/1.1 GET client for fetching documents such as a JWKS: `https://` verified
//! against the system roots, `http://` (loopback only, enforced by the config), bounded size.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest document accepted.
const LIMIT: u64 = 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

/// The pieces of an `http(s)://host[:port]/path` URL.
#[derive(Debug, PartialEq, Eq)]
pub struct Url<'a> {
    pub tls: bool,
    pub host: &'a str,
    pub port: u16,
    pub authority: &'a str,
    pub path: String,
}

/// Split a URL; errors say what is wrong.
pub fn parse(url: &str) -> Result<Url<'_>, String> {
    let (tls, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        _ => return Err(format!("{url}: expected an http:// or https:// URL")),
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], rest[at..].to_owned()),
        None => (rest, "/".to_owned()),
    };
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or_else(|| format!("{url}: unclosed [ in host"))?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().map_err(|_| format!("{url}: bad port"))?,
            None => default_port,
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().map_err(|_| format!("{url}: bad port"))?),
            None => (authority, default_port),
        }
    };
    if host.is_empty() {
        return Err(format!("{url}: no host"));
    }
    Ok(Url {
        tls,
        host,
        port,
        authority,
        path,
    })
}

/// GET `url` and return the body of a 200 answer.
pub async fn get(url: &str) -> Result<Vec<u8>, String> {
    let parsed = parse(url)?;
    tokio::time::timeout(TIMEOUT, fetch(&parsed))
        .await
        .map_err(|_| format!("{url}: timed out"))?
        .map_err(|e| format!("{url}: {e}"))
}

async fn fetch(url: &Url<'_>) -> Result<Vec<u8>, String> {
    let tcp = TcpStream::connect((url.host, url.port))
        .await
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nUser-Agent: gate-connector\r\nConnection: close\r\n\r\n",
        url.path, url.authority
    );
    if url.tls {
        let config =
            crate::tls::upstream_config(gate_config::connector::TlsMode::VerifyFull, None)?;
        let name = rustls_pki_types::ServerName::try_from(url.host.to_owned())
            .map_err(|e| e.to_string())?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        exchange(stream, &request).await
    } else {
        exchange(tcp, &request).await
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
) -> Result<Vec<u8>, String> {
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream
        .take(LIMIT + 16 * 1024)
        .read_to_end(&mut raw)
        .await
        .map_err(|e| e.to_string())?;
    response_body(&raw)
}

/// The body of a raw HTTP/1.1 response, if its status is 200.
pub fn response_body(raw: &[u8]) -> Result<Vec<u8>, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no complete response headers")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "response headers are not UTF-8")?;
    let body = &raw[split + 4..];
    let status = head.split(' ').nth(1).unwrap_or_default();
    if status != "200" {
        return Err(format!("HTTP status {status}"));
    }
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    if !chunked {
        return Ok(body.to_vec());
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_split_into_parts() {
        let u = parse("https://idp.example/.well-known/jwks.json").unwrap();
        assert_eq!(
            (u.tls, u.host, u.port, u.path.as_str()),
            (true, "idp.example", 443, "/.well-known/jwks.json")
        );
        let u = parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (u.tls, u.host, u.port, u.path.as_str()),
            (false, "127.0.0.1", 8080, "/")
        );
        let u = parse("http://[::1]:9/x").unwrap();
        assert_eq!((u.host, u.port), ("::1", 9));
        assert!(parse("ftp://x").is_err());
        assert!(parse("http://:80/").is_err());
        assert!(parse("http://h:port/").is_err());
    }

    #[test]
    fn bodies_plain_and_chunked_and_errors() {
        assert_eq!(
            response_body(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap(),
            b"{}"
        );
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(response_body(chunked).unwrap(), b"{\"a\":1}");
        assert_eq!(
            response_body(b"HTTP/1.1 404 Not Found\r\n\r\n").unwrap_err(),
            "HTTP status 404"
        );
        assert!(
            response_body(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nab")
                .is_err()
        );
    }
}
