//! Shared control-plane test support: a control plane on a free port over SQLite or a real
//! PostgreSQL 15, a small raw HTTP/1.1 client, and gRPC clients from `gate_proto::client`.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)] // in tests a panic is the failure report

use gate_config::{ControlConfig, load_str};
use gate_control::http::limits::HttpLimits;
use gate_control::server::{Running, start_with};
use gate_proto::client::{
    AdminClient, ConnectorClient, Credentials, connect_admin, connect_connector,
};
use gate_testkit::{Postgres, PostgresOptions};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub mod fake_slack;
pub mod mcp;
pub mod receiver;
pub mod recordings;

pub const ROOT_KEY: &str = "root-key-0123456789abcdef";

/// Which store backs the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A running control plane and what it needs to live.
pub struct Cp {
    pub running: Running,
    pub dir: tempfile::TempDir,
    pub pg: Option<Postgres>,
}

impl Cp {
    pub fn addr(&self) -> std::net::SocketAddr {
        self.running.addr
    }

    pub async fn admin(&self, key: Option<&str>, org: Option<&str>) -> AdminClient {
        connect_admin(&self.running.url(), Credentials::new(key, org).unwrap())
            .await
            .unwrap()
    }

    pub async fn connector(&self, key: Option<&str>, org: Option<&str>) -> ConnectorClient {
        connect_connector(&self.running.url(), Credentials::new(key, org).unwrap())
            .await
            .unwrap()
    }

    /// An HTTP call with the root key.
    pub async fn root(
        &self,
        method: &str,
        path: &str,
        org: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let (status, text) = http(self.addr(), method, path, Some(ROOT_KEY), org, body).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A new API key with `role` in `org`; returns the secret.
    pub async fn key(&self, org: &str, role: &str) -> String {
        let body = format!(r#"{{"name":"{role}-key","role":"{role}"}}"#);
        let (status, reply) = self
            .root("POST", "/api/v1/api-keys", Some(org), Some(&body))
            .await;
        assert_eq!(status, 201, "{reply}");
        reply["secret"].as_str().unwrap().to_owned()
    }

    /// A new organization; returns its id.
    pub async fn org(&self, name: &str) -> String {
        let (status, reply) = self
            .root(
                "POST",
                "/api/v1/organizations",
                None,
                Some(&format!(r#"{{"name":"{name}"}}"#)),
            )
            .await;
        assert_eq!(status, 201, "{reply}");
        reply["id"].as_str().unwrap().to_owned()
    }
}

/// A PostgreSQL database for the store: `(server, dsn)`.
pub fn postgres_store() -> (Postgres, String) {
    let pg = Postgres::start(PostgresOptions {
        databases: vec!["gate".into()],
        ..PostgresOptions::default()
    })
    .unwrap();
    let dsn = format!("{}?sslmode=disable", pg.url("postgres", "gate"));
    (pg, dsn)
}

/// The YAML for a control plane on a free loopback port.
pub fn config_yaml(dir: &std::path::Path, dsn: Option<&str>, api_key: Option<&str>) -> String {
    let mut yaml = format!(
        "listen_addr: 127.0.0.1:0\npublic_url: http://gate-control.test\nrecording:\n  dir: {dir}/recordings\ndatabase:\n  sqlite_path: {dir}/gate.db\n",
        dir = dir.display()
    );
    if let Some(dsn) = dsn {
        yaml += &format!("  dsn: \"{dsn}\"\n");
    }
    if let Some(key) = api_key {
        yaml += &format!("api_key: {key}\n");
    }
    yaml
}

/// Start a control plane with the root key on `db`.
pub async fn start_cp(db: Db) -> Cp {
    start_cp_with(db, Some(ROOT_KEY), false).await
}

pub async fn start_cp_with(db: Db, api_key: Option<&str>, insecure: bool) -> Cp {
    start_cp_limits(db, api_key, insecure, HttpLimits::default()).await
}

/// A control plane with `extra` appended to its YAML (e.g. a `delivery:` section).
pub async fn start_cp_yaml(db: Db, extra: &str) -> Cp {
    let dir = tempfile::tempdir().unwrap();
    let (pg, dsn) = match db {
        Db::Sqlite => (None, None),
        Db::Postgres => {
            let (pg, dsn) = postgres_store();
            (Some(pg), Some(dsn))
        }
    };
    let yaml = config_yaml(dir.path(), dsn.as_deref(), Some(ROOT_KEY)) + extra;
    let config: ControlConfig = load_str("control.yaml", &yaml, &|_| None).unwrap();
    let running = start_with(&config, false, HttpLimits::default())
        .await
        .unwrap();
    Cp { running, dir, pg }
}

/// A control plane with other HTTP limits (shorter timeouts, smaller sizes).
pub async fn start_cp_limits(
    db: Db,
    api_key: Option<&str>,
    insecure: bool,
    limits: HttpLimits,
) -> Cp {
    let dir = tempfile::tempdir().unwrap();
    let (pg, dsn) = match db {
        Db::Sqlite => (None, None),
        Db::Postgres => {
            let (pg, dsn) = postgres_store();
            (Some(pg), Some(dsn))
        }
    };
    let yaml = config_yaml(dir.path(), dsn.as_deref(), api_key);
    let config: ControlConfig = load_str("control.yaml", &yaml, &|_| None).unwrap();
    let running = start_with(&config, insecure, limits).await.unwrap();
    Cp { running, dir, pg }
}

/// Send a whole HTTP/1.1 request on `stream` and read the answer until the server closes:
/// (head, rest).
pub async fn round_trip(stream: &mut tokio::net::TcpStream, request: &str) -> (String, String) {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), rest.to_owned())
}

/// A response head's status code and headers (names lowercased).
pub fn parse_head(head: &str) -> (u16, Vec<(String, String)>) {
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers)
}

/// One HTTP/1.1 request over a fresh connection; returns (status, body).
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    org: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(key) = key {
        request += &format!("Authorization: Bearer {key}\r\n");
    }
    if let Some(org) = org {
        request += &format!("X-Org-ID: {org}\r\n");
    }
    request += "\r\n";
    request += body;
    let (head, rest) = round_trip(&mut stream, &request).await;
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (status, if chunked { dechunk(&rest) } else { rest })
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, tail) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
}

/// A minimal valid policy that blocks `drop` statements.
pub const BLOCK_DROP: &str = r#"package gate.test

pre_request := {"action": "block", "reason": "drop is not allowed"} if {
    input.query.type == "drop"
}
"#;
