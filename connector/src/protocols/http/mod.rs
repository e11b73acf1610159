//! HTTP APIs (`protocol: http`): a reverse proxy on hyper that decides every
//! request with `pre_request`, filters and masks JSON responses with
//! `post_request`, and audits each exchange through the session layer.
//! HTTP/1.1 and HTTP/2 (h2 over TLS by ALPN, h2c by prior knowledge) on a
//! resource's own `listen_port` or the shared listener (by `Host`/SNI).
//! The message flow is in `README.md`; MCP reuses this machinery.

mod admissions;
pub mod decode;
pub mod enforce;
pub mod error;
pub mod identity;
pub(crate) mod proxy;
pub mod records;
pub mod request;
pub mod route;
pub mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use gate_config::connector::ResourceConfig;
use gate_config::http::Cidr;
use http_body_util::combinators::BoxBody;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::server::Gate;
use crate::session::outcome::{Outcome, count};
use crate::stream::{ClientStream, MaybeTls, Prefixed};
pub use route::Route;
use upstream::Upstream;

/// Errors inside bodies Gate streams.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every body Gate sends, to clients and upstreams.
pub type Body = BoxBody<Bytes, BoxError>;

/// What HTTP exchanges share: one pooled upstream client per resource.
#[derive(Debug, Default)]
pub struct Shared {
    upstreams: Mutex<HashMap<String, Arc<Upstream>>>,
}

impl Shared {
    /// The upstream client of `resource`, built on first use.
    pub(crate) fn upstream(&self, resource: &ResourceConfig) -> Result<Arc<Upstream>, String> {
        let mut upstreams = self
            .upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(upstream) = upstreams.get(&resource.name) {
            return Ok(upstream.clone());
        }
        let upstream = Arc::new(Upstream::new(resource)?);
        upstreams.insert(resource.name.clone(), upstream.clone());
        Ok(upstream)
    }
}

/// One client connection's fixed facts.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) gate: Arc<Gate>,
    pub(crate) peer: SocketAddr,
    /// The peer's address as forwarding headers write it.
    pub(crate) client: request::ClientAddress,
    route: Route,
    pub(crate) tls: bool,
    /// The TLS SNI name, the host of last resort.
    sni: Option<String>,
    pub(crate) trusted: Arc<[Cidr]>,
    /// The last admission, reused by later requests with the same credentials.
    pub(crate) admissions: admissions::Admissions,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.admissions.end(&self.gate);
    }
}

/// The configured `trusted_proxies` (validated at load).
fn trusted_proxies(gate: &Gate) -> Arc<[Cidr]> {
    gate.config
        .trusted_proxies
        .iter()
        .filter_map(|text| Cidr::parse(text).ok())
        .collect()
}

/// Serve an HTTP client detected on the shared listener (`first`: the bytes
/// detection read).
pub async fn handle_client(
    client: ClientStream,
    peer: SocketAddr,
    gate: Arc<Gate>,
    first: BytesMut,
) {
    let (tls, sni) = match &client {
        MaybeTls::Tls(stream) => (true, stream.get_ref().1.server_name().map(str::to_owned)),
        MaybeTls::Plain(_) => (false, None),
    };
    let connection = Connection {
        trusted: trusted_proxies(&gate),
        gate,
        peer,
        client: request::ClientAddress::new(peer.ip()),
        route: Route::ByHost,
        tls,
        sni,
        admissions: Default::default(),
    };
    serve_connection(Prefixed::new(client, first), connection).await;
}

/// Accept clients of the HTTP resource `index` on its own `listen_port`
/// forever (TLS when the client opens with a ClientHello and `tls` is on).
pub async fn serve_listener(
    listener: TcpListener,
    gate: Arc<Gate>,
    index: usize,
) -> std::io::Result<()> {
    let trusted = trusted_proxies(&gate);
    loop {
        let (stream, peer) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let gate = gate.clone();
        let trusted = trusted.clone();
        tokio::spawn(async move {
            let mut first = [0u8; 1];
            let tls = matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16);
            let connection = |tls: bool, sni: Option<String>| Connection {
                gate: gate.clone(),
                peer,
                client: request::ClientAddress::new(peer.ip()),
                route: Route::Fixed(index),
                tls,
                sni,
                trusted: trusted.clone(),
                admissions: Default::default(),
            };
            if !tls {
                serve_connection(stream, connection(false, None)).await;
                return;
            }
            let Some(acceptor) = gate.tls.as_ref().and_then(|files| files.acceptor().ok()) else {
                tracing::info!(%peer, "TLS on an HTTP listener, but client TLS is not configured (tls.enabled); closing");
                count(&gate, "http", "", Outcome::ProtocolError);
                return;
            };
            match acceptor.accept(stream).await {
                Ok(tls) => {
                    let sni = tls.get_ref().1.server_name().map(str::to_owned);
                    serve_connection(tls, connection(true, sni)).await;
                }
                Err(error) => {
                    tracing::info!(%peer, %error, "TLS handshake failed");
                    count(&gate, "http", "", Outcome::ProtocolError);
                }
            }
        });
    }
}

/// Serve HTTP/1.1 or HTTP/2 (detected from the preface) on one connection.
async fn serve_connection<I>(io: I, connection: Connection)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = connection.peer;
    let connection = Arc::new(connection);
    let service =
        hyper::service::service_fn(move |request| proxy::handle(request, connection.clone()));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)));
    if let Err(error) = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .await
    {
        tracing::debug!(%peer, error = %crate::http_get::causes(Some(error.as_ref())), "HTTP connection ended");
    }
}

/// How long a client has to send a request's headers (also bounds an idle keep-alive connection).
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
