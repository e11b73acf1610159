//! The connector's shared state and accept loops: the shared listener and
//! one listener per resource with a `listen_port`.

use std::net::SocketAddr;
use std::sync::Arc;

use gate_config::ConnectorConfig;
use gate_config::connector::{Protocol, parse_listen_addr};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use gate_policy::mask::MaskingKey;
use gate_policy::{PolicyEngine, Stage, Value, Verdict};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::audit::AuditSink;
use crate::auth::identity::Identities;
use crate::detect::{Detected, Detection, detect};
use crate::health::Health;
use crate::jwt::JwtVerifier;
use crate::managed::Live;
use crate::metrics::Metrics;
use crate::protocols::{self, http, mongodb, mysql, postgres, ssh};
use crate::session::outcome;
use crate::stream::{ClientStream, MaybeTls, Prefixed};
use crate::tls::TlsFiles;

/// Everything sessions share.
#[derive(Debug)]
pub struct Gate {
    pub config: ConnectorConfig,
    /// Policies and control-plane state in force now (replaced on every snapshot).
    pub live: Live,
    pub identities: Identities,
    pub audit: AuditSink,
    /// Per-protocol shared state (PostgreSQL's pools, cancel keys, caches).
    pub protocols: protocols::Shared,
    /// Key of the `hash` masking strategy (`masking.hash_key`).
    pub masking_key: Option<MaskingKey>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// Client-facing TLS (`tls.enabled`).
    pub tls: Option<TlsFiles>,
    /// Trusted token issuers (`auth.jwt`).
    pub jwt: Option<JwtVerifier>,
    /// Session recordings (`recording.dir`); disabled unless set with [`Gate::with_recordings`].
    pub recordings: crate::recording::Recordings,
    /// Sidecar mode: who a loopback client that presents no token is (the pod's service account).
    pub workload: Option<gate_policy::UserInfo>,
}

impl Gate {
    /// Build the shared state from a loaded configuration.
    pub fn new(config: ConnectorConfig, policies: PolicyEngine, audit: AuditSink) -> Self {
        let identities = Identities::new(&config.identities);
        let metrics = Metrics::default();
        // Every series whose labels are known now is exported from the start.
        metrics.preregister(&config);
        let masking_key = config
            .masking
            .hash_key
            .as_deref()
            .and_then(|k| MaskingKey::new(k.as_bytes()));
        Self {
            config,
            live: Live::new(policies),
            identities,
            audit,
            protocols: protocols::Shared::default(),
            masking_key,
            metrics: Arc::new(metrics),
            health: Arc::default(),
            tls: None,
            jwt: None,
            recordings: crate::recording::Recordings::disabled(),
            workload: None,
        }
    }

    /// Record sessions into `recordings`, counted in this connector's metrics.
    pub fn with_recordings(mut self, recordings: crate::recording::Recordings) -> Self {
        self.recordings = recordings.with_metrics(Arc::clone(&self.metrics));
        self
    }

    /// Sidecar mode: identify loopback clients without a token as `workload`.
    pub fn with_workload(mut self, workload: Option<gate_policy::UserInfo>) -> Self {
        self.workload = workload;
        self
    }

    /// Accept tokens from these issuers.
    pub fn with_jwt(mut self, jwt: Option<JwtVerifier>) -> Self {
        self.jwt = jwt;
        self
    }

    /// Serve TLS to clients that ask for it.
    pub fn with_tls(mut self, tls: Option<TlsFiles>) -> Self {
        self.tls = tls;
        self
    }
}

impl Gate {
    /// Evaluate and combine one stage, recording its duration in
    /// `gate_policy_evaluation_duration_seconds` and policy errors in
    /// `gate_policy_evaluation_errors_total`.
    pub fn evaluate(&self, protocol: &str, stage: Stage, resource: &str, input: &Value) -> Verdict {
        let started = Instant::now();
        let verdict = self.live.engine().evaluate(stage, resource, input);
        self.metrics.observe(
            "gate_policy_evaluation_duration_seconds",
            &[
                ("protocol", protocol),
                ("resource", resource),
                ("stage", stage.as_str()),
                ("action", verdict.action.as_str()),
            ],
            started.elapsed(),
        );
        if !verdict.errors.is_empty() {
            self.metrics.add(
                "gate_policy_evaluation_errors_total",
                &[
                    ("protocol", protocol),
                    ("resource", resource),
                    ("stage", stage.as_str()),
                ],
                1.0,
            );
        }
        verdict
    }
}

/// How long a client on the shared listener has to send enough bytes for its
/// protocol to be detected.
const DETECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Accept connections on `listener` forever, one task per client; each
/// client's protocol is detected from its first bytes ([`detect`]).
pub async fn serve(listener: TcpListener, gate: Arc<Gate>) -> std::io::Result<()> {
    // A MySQL resource's own port: its server speaks first, so no detection.
    let port = listener.local_addr()?.port();
    let mysql_resource = gate
        .config
        .resources
        .iter()
        .find(|r| r.protocol == Protocol::Mysql && r.listen_port == Some(u32::from(port)))
        .map(|r| r.name.clone());
    loop {
        let (stream, peer) = listener.accept().await?;
        match &mysql_resource {
            Some(name) => {
                let _ = stream.set_nodelay(true);
                let client = MaybeTls::Plain(stream);
                tokio::spawn(mysql::handle_client(
                    client,
                    peer,
                    gate.clone(),
                    Some(name.clone()),
                ));
            }
            None => {
                tokio::spawn(route(stream, peer, gate.clone()));
            }
        }
    }
}

/// Read until the protocol is known, then hand the client and the bytes read
/// so far to that protocol (each protocol's future boxed: a client's task
/// holds its own protocol's state, not the largest one's). A TLS ClientHello is terminated here and the
/// protocol inside it detected the same way.
async fn route(stream: TcpStream, peer: SocketAddr, gate: Arc<Gate>) {
    let _ = stream.set_nodelay(true);
    let local_port = stream.local_addr().map(|a| a.port()).unwrap_or(0);
    let mut client = MaybeTls::Plain(stream);
    let mut first = BytesMut::with_capacity(8192);
    if silent_for_mysql(&client, &gate).await {
        Box::pin(mysql::handle_client(client, peer, gate, None)).await;
        return;
    }
    let mut detected = read_detected(&mut client, &mut first).await;
    if let Some(Detected::Tls) = detected {
        let MaybeTls::Plain(tcp) = client else {
            return;
        };
        let Some(tls) = terminate_tls(tcp, std::mem::take(&mut first), peer, &gate).await else {
            outcome::count(&gate, "tls", "", outcome::Outcome::ProtocolError);
            return;
        };
        client = MaybeTls::Tls(Box::new(tls));
        detected = read_detected(&mut client, &mut first).await;
    }
    match detected {
        Some(Detected::Postgres) => {
            Box::pin(postgres::handle_client(client, peer, gate, first)).await;
        }
        Some(Detected::Http1 | Detected::Http2) => {
            Box::pin(http::handle_client(client, peer, gate, first)).await;
        }
        Some(Detected::Mongodb) => {
            let dedicated = dedicated_mongodb(&gate, local_port);
            Box::pin(mongodb::handle_client(client, peer, gate, first, dedicated)).await;
        }
        Some(Detected::Ssh) => match client {
            MaybeTls::Plain(tcp) => {
                Box::pin(ssh::handle_client(
                    Prefixed::new(tcp, first),
                    peer,
                    gate,
                    None,
                ))
                .await;
            }
            MaybeTls::Tls(_) => {
                tracing::info!(%peer, "SSH inside TLS; closing");
                outcome::count(&gate, "ssh", "", outcome::Outcome::ProtocolError);
            }
        },
        Some(Detected::Tls) => {
            tracing::info!(%peer, "TLS inside TLS; closing");
            outcome::count(&gate, "tls", "", outcome::Outcome::ProtocolError);
        }
        None => {}
    }
}

/// The MongoDB resource whose own `listen_port` is `port`, if any.
fn dedicated_mongodb(gate: &Gate, port: u16) -> Option<String> {
    gate.config
        .resources
        .iter()
        .find(|r| r.protocol == Protocol::Mongodb && r.listen_port == Some(u32::from(port)))
        .map(|r| r.name.clone())
}

/// Whether a client on the shared listener said nothing for
/// `mysql_detect_delay` while a MySQL resource is configured: a MySQL
/// client waits for the server's greeting.
async fn silent_for_mysql(client: &ClientStream, gate: &Gate) -> bool {
    let MaybeTls::Plain(tcp) = client else {
        return false;
    };
    if !gate
        .config
        .resources
        .iter()
        .any(|r| r.protocol == Protocol::Mysql)
    {
        return false;
    }
    let mut byte = [0u8; 1];
    tokio::time::timeout(gate.config.mysql_detect_delay, tcp.peek(&mut byte))
        .await
        .is_err()
}

/// Read until [`detect`] decides; `None` when the client leaves, stays
/// silent past [`DETECT_TIMEOUT`], or opens with bytes no protocol starts with.
async fn read_detected(client: &mut ClientStream, first: &mut BytesMut) -> Option<Detected> {
    let detected = tokio::time::timeout(DETECT_TIMEOUT, async {
        loop {
            match detect(first) {
                Detection::NeedMore => {}
                decided => return Ok::<Detection, std::io::Error>(decided),
            }
            if client.read_buf(first).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    })
    .await;
    match detected {
        Ok(Ok(Detection::Detected(protocol))) => Some(protocol),
        Ok(Ok(_)) => {
            tracing::info!("no known protocol opens with the bytes sent; closing");
            None
        }
        // Gone or silent before saying anything useful: nothing to answer.
        Ok(Err(_)) | Err(_) => None,
    }
}

/// Complete the TLS handshake whose ClientHello is in `hello` (client TLS
/// must be configured: `tls.enabled`); `None`, logged, when it cannot be.
async fn terminate_tls(
    tcp: TcpStream,
    hello: BytesMut,
    peer: SocketAddr,
    gate: &Gate,
) -> Option<tokio_rustls::server::TlsStream<Prefixed>> {
    let Some(files) = gate.tls.as_ref() else {
        tracing::info!(%peer, "TLS on the shared listener, but client TLS is not configured (tls.enabled); closing");
        return None;
    };
    let acceptor = match files.acceptor() {
        Ok(acceptor) => acceptor,
        Err(error) => {
            tracing::warn!(%peer, %error, "TLS unavailable; closing");
            return None;
        }
    };
    let handshake = acceptor.accept(Prefixed::new(tcp, hello));
    match tokio::time::timeout(DETECT_TIMEOUT, handshake).await {
        Ok(Ok(tls)) => {
            let sni = tls.get_ref().1.server_name().map(str::to_owned);
            tracing::debug!(%peer, sni = sni.as_deref().unwrap_or(""), "TLS terminated on the shared listener");
            Some(tls)
        }
        Ok(Err(error)) => {
            tracing::info!(%peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

/// What a bound listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serves {
    /// Protocol detection (the shared listener, and PostgreSQL's own ports).
    Detected,
    /// The HTTP resource at this index of `resources`.
    Http(usize),
    /// The SSH resource at this index of `resources` (its server speaks first).
    Ssh(usize),
}

/// Bind the shared listener and every resource's own port.
pub async fn bind_all(
    config: &ConnectorConfig,
) -> Result<Vec<(SocketAddr, TcpListener, Serves)>, String> {
    let shared = parse_listen_addr(&config.listen_addr)?;
    let mut addrs = vec![(shared, Serves::Detected)];
    for (index, resource) in config.resources.iter().enumerate() {
        let serves = match resource.protocol {
            Protocol::Postgres | Protocol::Mysql | Protocol::Mongodb => Serves::Detected,
            Protocol::Http | Protocol::Mcp => Serves::Http(index),
            Protocol::Ssh => Serves::Ssh(index),
        };
        if let Some(port) = resource.listen_port {
            let port = u16::try_from(port)
                .map_err(|_| format!("resources: listen_port {port} out of range"))?;
            addrs.push((SocketAddr::new(shared.ip(), port), serves));
        }
    }
    let mut listeners = Vec::new();
    for (addr, serves) in addrs {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        listeners.push((bound, listener, serves));
    }
    Ok(listeners)
}

/// Serve one bound listener forever.
pub async fn serve_bound(
    listener: TcpListener,
    serves: Serves,
    gate: Arc<Gate>,
) -> std::io::Result<()> {
    match serves {
        Serves::Detected => serve(listener, gate).await,
        Serves::Http(index) => http::serve_listener(listener, gate, index).await,
        Serves::Ssh(index) => ssh::serve_listener(listener, gate, index).await,
    }
}
