//! A real HTTP/1.1 webhook receiver on a loopback port: verifies every request's signature with
//! the documented algorithm (HMAC-SHA256 over `timestamp + "." + body`, computed here with the
//! `hmac` crate, not Gate's code), records what it got, and answers as told (200, 503, or hold
//! the request without answering).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ok,
    Fail,
    /// Read the request, never answer.
    Hang,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub delivery: String,
    pub event: String,
    pub timestamp: i64,
    pub signature_ok: bool,
    pub body: Value,
    /// What the receiver answered (None: held).
    pub answered: Option<u16>,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    pub got: Arc<Mutex<Vec<Received>>>,
    pub mode: Arc<Mutex<Mode>>,
    pub secret: Arc<Mutex<String>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    /// Listen on `addr` (`127.0.0.1:0` for any port).
    pub async fn start(addr: &str) -> Receiver {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(Mutex::new(Mode::Ok));
        let secret = Arc::new(Mutex::new(String::new()));
        let (g, m, s) = (got.clone(), mode.clone(), secret.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (g, m, s) = (g.clone(), m.clone(), s.clone());
                tokio::spawn(async move { serve(stream, g, m, s).await });
            }
        });
        Receiver {
            addr,
            got,
            mode,
            secret,
            task: Arc::new(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn set_secret(&self, secret: &str) {
        *self.secret.lock().unwrap() = secret.to_owned();
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The accepted (200) requests.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.answered == Some(200))
            .collect()
    }

    /// Stop listening (the port refuses connections afterwards).
    pub fn stop(&self) {
        self.task.abort();
    }
}

/// The documented check: `v1=` + hex HMAC-SHA256(secret, timestamp "." body).
pub fn signature_valid(secret: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    header == format!("v1={expected}")
}

async fn serve(
    mut stream: tokio::net::TcpStream,
    got: Arc<Mutex<Vec<Received>>>,
    mode: Arc<Mutex<Mode>>,
    secret: Arc<Mutex<String>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head, body) = loop {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let length: usize = header(&head, "content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let Ok(n) = stream.read(&mut chunk).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            break (head, buf[end + 4..end + 4 + length].to_vec());
        }
    };
    let timestamp = header(&head, "x-gate-timestamp").unwrap_or_default();
    let signature = header(&head, "x-gate-signature").unwrap_or_default();
    let secret = secret.lock().unwrap().clone();
    let mode = *mode.lock().unwrap();
    let answered = match mode {
        Mode::Ok => Some(200),
        Mode::Fail => Some(503),
        Mode::Hang => None,
    };
    got.lock().unwrap().push(Received {
        delivery: header(&head, "x-gate-delivery").unwrap_or_default(),
        event: header(&head, "x-gate-event").unwrap_or_default(),
        timestamp: timestamp.parse().unwrap_or(0),
        signature_ok: signature_valid(&secret, &timestamp, &body, &signature),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        answered,
    });
    match answered {
        Some(code) => {
            let reply =
                format!("HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            let _ = stream.write_all(reply.as_bytes()).await;
        }
        None => std::future::pending::<()>().await,
    }
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}
