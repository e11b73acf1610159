//! Gate's own login to the upstream PostgreSQL with the resource's
//! credentials (SCRAM-SHA-256, md5 or cleartext), up to the first ReadyForQuery.

use std::time::Duration;

use bytes::BytesMut;
use gate_config::connector::{ResourceConfig, TlsMode};
use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::codec::{self, Frame, Reader, auth};
use super::error::PgError;
use crate::auth::scram::ClientExchange;
use crate::random;
use crate::stream::{MaybeTls, UpstreamStream};

const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A logged-in upstream connection.
#[derive(Debug)]
pub(super) struct Upstream {
    pub(super) stream: UpstreamStream,
    /// Bytes read past the first ReadyForQuery.
    pub(super) leftover: BytesMut,
    /// ParameterStatus frames to relay to the client.
    pub(super) parameters: Vec<Frame>,
    pub(super) pid: u32,
    pub(super) secret: u32,
    pub(super) addr: String,
    /// Protocol-level statements Gate prepared here (transaction mode).
    pub(super) prepared: super::prepared::ServerStatements,
}

/// Connect and log in as the resource's user to `database`.
pub(super) async fn connect(
    resource: &ResourceConfig,
    user: &str,
    database: &str,
    client_params: &[(&str, &str)],
) -> Result<Upstream, PgError> {
    tokio::time::timeout(
        LOGIN_TIMEOUT,
        login(resource, user, database, client_params),
    )
    .await
    .map_err(|_| upstream(resource, "timed out logging in".into()))?
}

fn upstream(resource: &ResourceConfig, detail: String) -> PgError {
    PgError::Upstream {
        resource: resource.name.clone(),
        detail,
    }
}

async fn login(
    resource: &ResourceConfig,
    user: &str,
    database: &str,
    client_params: &[(&str, &str)],
) -> Result<Upstream, PgError> {
    let addr = format!("{}:{}", resource.host, resource.port);
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|e| upstream(resource, format!("connect {addr}: {e}")))?;
    tcp.set_nodelay(true)?;
    let mut stream = match resource.upstream_tls.mode() {
        TlsMode::Disable => MaybeTls::Plain(tcp),
        mode => MaybeTls::Tls(Box::new(start_tls(tcp, resource, mode).await?)),
    };
    let mut params = vec![("user", user), ("database", database)];
    params.extend(
        client_params
            .iter()
            .copied()
            .filter(|(k, _)| *k != "user" && *k != "database"),
    );
    let mut out = BytesMut::new();
    codec::encode_startup(&params, &mut out);
    stream.write_all(&out).await?;

    let password = resource.password.as_deref().unwrap_or_default();
    let mut buf = BytesMut::with_capacity(4096);
    let mut scram: Option<ClientExchange> = None;
    let mut parameters = Vec::new();
    let (mut pid, mut secret) = (0, 0);
    loop {
        let frame = read_frame(&mut stream, &mut buf, resource).await?;
        match frame.tag {
            b'R' => {
                let mut r = Reader::new(frame.body());
                let code = r.u32()?;
                let mut out = BytesMut::new();
                match code {
                    auth::OK => continue,
                    auth::CLEARTEXT => codec::put_password(&mut out, password),
                    auth::MD5 => {
                        let salt = r.bytes(4)?;
                        codec::put_password(&mut out, &md5_password(user, password, salt));
                    }
                    auth::SASL => {
                        let mechanisms = r.rest();
                        if !mechanisms.split(|b| *b == 0).any(|m| m == b"SCRAM-SHA-256") {
                            return Err(upstream(resource, "offers no SCRAM-SHA-256".into()));
                        }
                        let (exchange, first) = ClientExchange::start(&random::nonce());
                        scram = Some(exchange);
                        codec::put_sasl_initial(&mut out, "SCRAM-SHA-256", first.as_bytes());
                    }
                    auth::SASL_CONTINUE => {
                        let exchange = scram.as_mut().ok_or_else(|| {
                            upstream(resource, "SASL continue before start".into())
                        })?;
                        let server_first = std::str::from_utf8(r.rest())
                            .map_err(|_| upstream(resource, "bad SCRAM message".into()))?;
                        let client_final = exchange
                            .respond(server_first, password)
                            .map_err(|e| upstream(resource, e.to_string()))?;
                        codec::put_sasl_response(&mut out, client_final.as_bytes());
                    }
                    auth::SASL_FINAL => {
                        let exchange = scram
                            .as_ref()
                            .ok_or_else(|| upstream(resource, "SASL final before start".into()))?;
                        let server_final = std::str::from_utf8(r.rest())
                            .map_err(|_| upstream(resource, "bad SCRAM message".into()))?;
                        exchange
                            .verify(server_final)
                            .map_err(|e| upstream(resource, e.to_string()))?;
                        continue;
                    }
                    other => {
                        return Err(upstream(
                            resource,
                            format!("unsupported authentication request {other}"),
                        ));
                    }
                }
                stream.write_all(&out).await?;
            }
            b'S' => parameters.push(frame),
            b'K' => {
                let mut r = Reader::new(frame.body());
                pid = r.u32()?;
                secret = r.u32()?;
            }
            b'N' => {}
            b'E' => {
                let (code, message) = codec::parse_error(frame.body())?;
                return Err(upstream(resource, format!("{code} {message}")));
            }
            b'Z' => {
                return Ok(Upstream {
                    stream,
                    leftover: buf,
                    parameters,
                    pid,
                    secret,
                    addr,
                    prepared: Default::default(),
                });
            }
            other => {
                return Err(upstream(
                    resource,
                    format!("unexpected message {:?} during login", char::from(other)),
                ));
            }
        }
    }
}

async fn read_frame(
    stream: &mut UpstreamStream,
    buf: &mut BytesMut,
    resource: &ResourceConfig,
) -> Result<Frame, PgError> {
    loop {
        if let Some(frame) =
            codec::decode_frame(buf).map_err(|e| upstream(resource, e.to_string()))?
        {
            return Ok(frame);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(upstream(
                resource,
                "closed the connection during login".into(),
            ));
        }
    }
}

/// SSLRequest, then a TLS handshake as the resource's `upstream_tls` says.
async fn start_tls(
    mut tcp: TcpStream,
    resource: &ResourceConfig,
    mode: TlsMode,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, PgError> {
    let mut out = BytesMut::new();
    out.extend_from_slice(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
    tcp.write_all(&out).await?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await?;
    if answer != *b"S" {
        return Err(upstream(
            resource,
            format!("upstream_tls.mode is {mode:?} but the server does not accept TLS"),
        ));
    }
    crate::tls::connect_upstream(tcp, resource, mode)
        .await
        .map_err(|e| upstream(resource, e))
}

/// `md5` + hex(md5(hex(md5(password + user)) + salt)).
fn md5_password(user: &str, password: &str, salt: &[u8]) -> String {
    let inner = hex(&Md5::digest(format!("{password}{user}").as_bytes()));
    let mut outer = Md5::new();
    outer.update(inner.as_bytes());
    outer.update(salt);
    format!("md5{}", hex(&outer.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Run one simple query on a logged-in connection; rows as text (None = NULL).
pub(super) async fn simple_query(
    conn: &mut Upstream,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, PgError> {
    let mut out = BytesMut::new();
    codec::put_query(&mut out, sql);
    conn.stream.write_all(&out).await?;
    let mut rows = Vec::new();
    let mut error = None;
    loop {
        let frame = loop {
            if let Some(frame) = codec::decode_frame(&mut conn.leftover)? {
                break frame;
            }
            if conn.stream.read_buf(&mut conn.leftover).await? == 0 {
                return Err(PgError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        };
        match frame.tag {
            b'D' => {
                let mut r = Reader::new(frame.body());
                let n = r.i16()?;
                let mut row = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
                for _ in 0..n {
                    let len = r.i32()?;
                    row.push(if len < 0 {
                        None
                    } else {
                        Some(String::from_utf8_lossy(r.bytes(len as usize)?).into_owned())
                    });
                }
                rows.push(row);
            }
            b'E' => error = Some(codec::parse_error(frame.body())?),
            b'Z' => break,
            _ => {}
        }
    }
    match error {
        Some((code, message)) => Err(PgError::Upstream {
            resource: "catalog".into(),
            detail: format!("{code} {message}"),
        }),
        None => Ok(rows),
    }
}

/// Send a CancelRequest for `pid`/`secret` to `addr`.
pub(super) async fn cancel(addr: &str, pid: u32, secret: u32) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut out = BytesMut::new();
    codec::encode_cancel(pid, secret, &mut out);
    stream.write_all(&out).await?;
    let _ = stream.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn md5_password_matches_the_postgres_formula() {
        // Python: "md5" + md5(md5(b"secretalice").hexdigest().encode() + b"salt").hexdigest()
        assert_eq!(
            super::md5_password("alice", "secret", b"salt"),
            "md5986e2194384c07f4fd1df4b1351b3e68"
        );
    }
}
