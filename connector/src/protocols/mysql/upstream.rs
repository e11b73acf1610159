//! Gate's own login to an upstream MySQL/MariaDB server with the resource's
//! credentials: greeting, optional TLS (SSLRequest), the auth plugin the
//! server asks for (`mysql_native_password`, `caching_sha2_password` fast
//! path or full auth: the password over TLS, else encrypted with the
//! server's RSA key; `mysql_clear_password` over TLS only), auth switches;
//! and the single-packet commands the pool uses.

use std::time::Duration;

use bytes::BytesMut;
use gate_config::connector::{ResourceConfig, TlsMode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::codec::{Packet, put_packet};
use super::error::MyError;
use super::handshake::{AuthSwitch, HandshakeResponse, HandshakeV10, caps};
use super::packets::{ERR, ErrPacket, OK, OkPacket};
use super::rsa_auth;
use super::scramble::{
    self, CACHING_SHA2, CLEAR, FAST_AUTH_OK, FULL_AUTH, NATIVE, REQUEST_PUBLIC_KEY,
};
use super::wire::expect_packet;
use crate::stream::{MaybeTls, UpstreamStream};

/// How long connecting and logging in upstream may take.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Commands Gate sends itself.
pub(super) mod command {
    pub(crate) const INIT_DB: u8 = 0x02;
    pub(crate) const RESET_CONNECTION: u8 = 0x1F;
}

/// What Gate asks the upstream for, from the client's handshake.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct LoginParams {
    pub(super) user: String,
    pub(super) database: Option<String>,
    /// The client's flags that shape responses ([`caps::SHAPING`]).
    pub(super) shaping: u32,
    pub(super) charset: u8,
    /// The client's MariaDB extended capabilities that shape responses (metadata caching).
    pub(super) mariadb: u32,
}

/// A logged-in upstream connection.
#[derive(Debug)]
pub(super) struct Upstream {
    pub(super) stream: UpstreamStream,
    /// Bytes read past the last packet taken.
    pub(super) buf: BytesMut,
    pub(super) server_version: String,
    pub(super) mariadb_caps: u32,
    pub(super) status: u16,
}

fn upstream(resource: &ResourceConfig, detail: impl Into<String>) -> MyError {
    MyError::Upstream {
        resource: resource.name.clone(),
        detail: detail.into(),
    }
}

/// Connect and log in, within [`LOGIN_TIMEOUT`].
pub(super) async fn connect(
    resource: &ResourceConfig,
    params: &LoginParams,
) -> Result<Upstream, MyError> {
    tokio::time::timeout(LOGIN_TIMEOUT, login(resource, params))
        .await
        .map_err(|_| upstream(resource, "login timed out"))?
}

/// The server version and MariaDB capabilities in the upstream's greeting (connect, read, close).
pub(super) async fn greeting(resource: &ResourceConfig) -> Option<super::UpstreamHello> {
    let read = async {
        let mut tcp = TcpStream::connect(format!("{}:{}", resource.host, resource.port))
            .await
            .ok()?;
        let mut buf = BytesMut::new();
        let packet = expect_packet(&mut tcp, &mut buf).await.ok()?;
        HandshakeV10::decode(&packet.payload)
            .ok()
            .map(|h| super::UpstreamHello {
                version: h.server_version,
                mariadb_caps: h.mariadb_caps,
            })
    };
    tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .ok()
        .flatten()
}

async fn login(resource: &ResourceConfig, params: &LoginParams) -> Result<Upstream, MyError> {
    let addr = format!("{}:{}", resource.host, resource.port);
    let mut tcp = TcpStream::connect(&addr)
        .await
        .map_err(|e| upstream(resource, format!("connect {addr}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(8192);
    let greeting = expect_packet(&mut tcp, &mut buf).await?;
    if greeting.first() == Some(ERR) {
        return Err(MyError::UpstreamRefused(ErrPacket::decode(
            &greeting.payload,
        )?));
    }
    let hello = HandshakeV10::decode(&greeting.payload)?;
    let missing = params.shaping & !hello.capabilities;
    let missing_mariadb = params.mariadb & !hello.mariadb_caps;
    if missing != 0 || missing_mariadb != 0 {
        return Err(upstream(
            resource,
            format!(
                "the server lacks capabilities the client chose ({missing:#x}, MariaDB {missing_mariadb:#x})"
            ),
        ));
    }
    let wanted = params.shaping
        | caps::LONG_PASSWORD
        | caps::PROTOCOL_41
        | caps::SECURE_CONNECTION
        | caps::TRANSACTIONS
        | caps::PLUGIN_AUTH
        | caps::PLUGIN_AUTH_LENENC
        | if params.database.is_some() {
            caps::CONNECT_WITH_DB
        } else {
            0
        };
    let mut response = HandshakeResponse {
        capabilities: wanted & hello.capabilities,
        max_packet: 1 << 30,
        charset: params.charset,
        user: resource
            .username
            .clone()
            .unwrap_or_else(|| params.user.clone()),
        database: params.database.clone(),
        mariadb_caps: params.mariadb,
        ..Default::default()
    };
    if params.mariadb != 0 {
        // MariaDB reads a client's extended capabilities only without CLIENT_MYSQL.
        response.capabilities &= !caps::CLIENT_MYSQL;
    }
    let mode = resource.upstream_tls.mode();
    let mut seq = 1u8;
    let mut stream = if mode == TlsMode::Disable {
        MaybeTls::Plain(tcp)
    } else {
        if hello.capabilities & caps::SSL == 0 {
            return Err(upstream(
                resource,
                format!("upstream_tls.mode is {mode:?} but the server does not accept TLS"),
            ));
        }
        response.capabilities |= caps::SSL;
        let mut fixed = BytesMut::new();
        response.encode_fixed(&mut fixed);
        let mut out = BytesMut::new();
        seq = put_packet(&mut out, seq, &fixed);
        tcp.write_all(&out).await?;
        let tls = crate::tls::connect_upstream(tcp, resource, mode)
            .await
            .map_err(|e| upstream(resource, e))?;
        MaybeTls::Tls(Box::new(tls))
    };
    let password = resource.password.clone().unwrap_or_default();
    let tls = stream.is_tls();
    let mut plugin = hello.auth_plugin.clone();
    // The scramble proofs answer: the greeting's, or an auth switch's.
    let mut nonce = hello.scramble.clone();
    if plugin.is_empty() {
        plugin = NATIVE.to_owned();
    }
    response.auth_plugin = Some(plugin.clone());
    response.auth_response = proof(resource, &plugin, password.as_bytes(), &hello.scramble, tls)?;
    let mut payload = BytesMut::new();
    response.encode(&mut payload);
    let mut out = BytesMut::new();
    put_packet(&mut out, seq, &payload);
    stream.write_all(&out).await?;
    loop {
        let packet = expect_packet(&mut stream, &mut buf).await?;
        let next = packet.last_seq.wrapping_add(1);
        match packet.first() {
            Some(OK) => {
                let ok = OkPacket::decode(&packet.payload)?;
                return Ok(Upstream {
                    stream,
                    buf,
                    server_version: hello.server_version,
                    mariadb_caps: hello.mariadb_caps,
                    status: ok.status,
                });
            }
            Some(ERR) => {
                return Err(MyError::UpstreamRefused(ErrPacket::decode(
                    &packet.payload,
                )?));
            }
            Some(0xFE) => {
                let switch = AuthSwitch::decode(&packet.payload)?;
                plugin = switch.plugin.clone();
                nonce = switch.data;
                let answer = proof(resource, &plugin, password.as_bytes(), &nonce, tls)?;
                send(&mut stream, next, &answer).await?;
            }
            Some(0x01) if plugin == CACHING_SHA2 => match packet.payload.get(1) {
                Some(&FAST_AUTH_OK) => {}
                Some(&FULL_AUTH) if tls => {
                    let mut clear = password.clone().into_bytes();
                    clear.push(0);
                    send(&mut stream, next, &clear).await?;
                }
                Some(&FULL_AUTH) => {
                    // Without TLS: ask for the server's RSA public key, send the password sealed with it.
                    send(&mut stream, next, &[REQUEST_PUBLIC_KEY]).await?;
                    let key = expect_packet(&mut stream, &mut buf).await?;
                    let Some((0x01, pem)) = key.payload.split_first() else {
                        return Err(upstream(
                            resource,
                            "caching_sha2_password: expected the server's RSA public key",
                        ));
                    };
                    let sealed = rsa_auth::encrypt_password(pem, password.as_bytes(), &nonce)
                        .map_err(|e| upstream(resource, format!("caching_sha2_password: {e}")))?;
                    send(&mut stream, key.last_seq.wrapping_add(1), &sealed).await?;
                }
                _ => {
                    return Err(upstream(
                        resource,
                        "caching_sha2_password: unexpected AuthMoreData",
                    ));
                }
            },
            _ => return Err(upstream(resource, "unexpected packet during login")),
        }
    }
}

/// The auth response for `plugin`.
fn proof(
    resource: &ResourceConfig,
    plugin: &str,
    password: &[u8],
    scramble: &[u8],
    tls: bool,
) -> Result<Vec<u8>, MyError> {
    match plugin {
        NATIVE => Ok(scramble::native(password, scramble)),
        CACHING_SHA2 => Ok(scramble::caching_sha2(password, scramble)),
        CLEAR if tls => {
            let mut clear = password.to_vec();
            clear.push(0);
            Ok(clear)
        }
        scramble::ED25519 => scramble::ed25519(password, scramble)
            .ok_or_else(|| upstream(resource, "client_ed25519 signature failed")),
        other => Err(upstream(
            resource,
            format!(
                "the server asks for auth plugin {other:?}, which Gate does not speak upstream (or not without TLS)"
            ),
        )),
    }
}

async fn send(stream: &mut UpstreamStream, seq: u8, payload: &[u8]) -> Result<(), MyError> {
    let mut out = BytesMut::new();
    put_packet(&mut out, seq, payload);
    stream.write_all(&out).await?;
    Ok(())
}

/// Send a one-packet command and read its one-packet answer (OK or ERR).
pub(super) async fn simple_command(
    upstream: &mut Upstream,
    payload: &[u8],
) -> Result<Packet, MyError> {
    send(&mut upstream.stream, 0, payload).await?;
    let answer = expect_packet(&mut upstream.stream, &mut upstream.buf).await?;
    if let Some(OK) = answer.first() {
        upstream.status = OkPacket::decode(&answer.payload)?.status;
    }
    Ok(answer)
}

#[cfg(test)]
#[path = "upstream_tests.rs"]
mod tests;
