//! [`super::get_within`] against canned local servers: plain and chunked bodies, statuses, the size and time bounds, refused connections, and an https peer the system roots do not trust.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::{LIMIT, TIMEOUT, get_within};

/// Read a request head (up to the blank line).
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A server answering every connection with `response`; the base URL and the request heads seen.
async fn canned(response: &'static [u8]) -> (String, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (heads, seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let head = read_head(&mut stream).await;
            let _ = heads.send(head);
            let _ = stream.write_all(response).await;
            let _ = stream.shutdown().await;
        }
    });
    (base, seen)
}

async fn get(url: &str) -> Result<Vec<u8>, String> {
    get_within(url, TIMEOUT, LIMIT).await
}

#[tokio::test]
async fn a_200_body_is_returned_and_the_request_asks_for_json() {
    let (base, mut seen) =
        canned(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"keys\":[]}").await;
    let url = format!("{base}/.well-known/jwks.json");
    assert_eq!(get(&url).await.unwrap(), b"{\"keys\":[]}");
    let head = seen.recv().await.unwrap().to_ascii_lowercase();
    assert!(
        head.starts_with("get /.well-known/jwks.json http/1.1\r\n"),
        "{head}"
    );
    let host = base.trim_start_matches("http://");
    for header in [
        format!("host: {host}\r\n"),
        "accept: application/json\r\n".to_owned(),
        "user-agent: gate-connector\r\n".to_owned(),
    ] {
        assert!(head.contains(&header), "{header:?} missing in {head}");
    }
}

#[tokio::test]
async fn a_chunked_body_is_reassembled() {
    let (base, _seen) = canned(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(get(&format!("{base}/")).await.unwrap(), b"{\"a\":1}");
}

#[tokio::test]
async fn other_statuses_and_truncated_bodies_are_errors_naming_the_url() {
    let (base, _seen) = canned(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").await;
    let url = format!("{base}/jwks");
    assert_eq!(
        get(&url).await.unwrap_err(),
        format!("{url}: HTTP status 404")
    );

    let (base, _seen) = canned(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"keys\"").await;
    let url = format!("{base}/jwks");
    let err = get(&url).await.unwrap_err();
    assert!(
        err.starts_with(&format!("{url}: reading the response body: ")),
        "{err}"
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_with_or_without_a_length() {
    let (base, _seen) = canned(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"keys\":[]}").await;
    let url = format!("{base}/");
    assert_eq!(
        get_within(&url, TIMEOUT, 10).await.unwrap_err(),
        format!("{url}: response body larger than 10 bytes")
    );
    assert_eq!(get_within(&url, TIMEOUT, 11).await.unwrap().len(), 11);

    let (base, _seen) = canned(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n{\"keys\r\n6\r\n\":[]}\n\r\n0\r\n\r\n",
    )
    .await;
    let url = format!("{base}/");
    assert_eq!(
        get_within(&url, TIMEOUT, 10).await.unwrap_err(),
        format!("{url}: response body larger than 10 bytes")
    );
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let started = std::time::Instant::now();
    assert_eq!(
        get_within(&url, Duration::from_millis(200), LIMIT)
            .await
            .unwrap_err(),
        format!("{url}: timed out after 200 ms")
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_refused_connection_says_so() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    drop(listener);
    let err = get(&url).await.unwrap_err();
    assert!(
        err.starts_with(&format!("{url}: cannot connect: ")),
        "{err}"
    );
    assert!(err.to_ascii_lowercase().contains("refused"), "{err}");
}

#[tokio::test]
async fn urls_that_are_not_http_are_refused() {
    assert_eq!(
        get("ftp://idp.example/jwks").await.unwrap_err(),
        "ftp://idp.example/jwks: expected an http:// or https:// URL"
    );
    for bad in ["http://h:port/", "not a url", "/jwks.json"] {
        let err = get(bad).await.unwrap_err();
        assert!(err.starts_with(&format!("{bad}: ")), "{err}");
    }
}

/// A self-signed leaf certificate for 127.0.0.1, written by openssl into `dir`.
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    (cert, key)
}

#[tokio::test]
async fn https_is_verified_against_the_system_roots() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let acceptor = crate::tls::TlsFiles::load(cert, key)
        .unwrap()
        .acceptor()
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/jwks", listener.local_addr().unwrap());
    let (handshakes, mut seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = handshakes.send(acceptor.accept(stream).await.is_ok());
        }
    });
    let err = get(&url).await.unwrap_err();
    assert!(
        err.starts_with(&format!("{url}: cannot connect: ")),
        "{err}"
    );
    // Signed by no CA in /etc/ssl/certs/ca-certificates.crt.
    assert!(
        err.contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
    // The client spoke TLS and gave up in the handshake.
    assert_eq!(seen.recv().await, Some(false));
}
