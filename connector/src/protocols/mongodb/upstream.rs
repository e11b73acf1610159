//! Gate's own connection to an upstream MongoDB server: TCP, optional TLS
//! (`upstream_tls`: MongoDB speaks TLS from the first byte), `hello` (no
//! compression offered, so replies come uncompressed), and SCRAM-SHA-256
//! as the resource's user against `auth_source` when credentials are set.

use std::time::Duration;

use base64::Engine as _;
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document, doc};
use bytes::BytesMut;
use gate_config::connector::{ResourceConfig, TlsMode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::codec::{self, Message, OpMsg};
use super::error::MongoError;
use super::wire::{ReadError, read_frame, request_id};
use crate::auth::scram::ClientExchange;
use crate::stream::{MaybeTls, UpstreamStream};

/// How long connecting and logging in upstream may take.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A logged-in upstream connection.
#[derive(Debug)]
pub(super) struct Upstream {
    pub(super) stream: UpstreamStream,
    /// Bytes read past the last message taken.
    pub(super) buf: BytesMut,
    /// The upstream's `maxWireVersion`.
    pub(super) max_wire: i32,
}

pub(super) fn upstream_error(resource: &ResourceConfig, detail: impl Into<String>) -> MongoError {
    MongoError::Upstream {
        resource: resource.name.clone(),
        detail: detail.into(),
    }
}

impl From<ReadError> for MongoError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Io(e) => MongoError::Io(e),
            ReadError::Codec(e) => MongoError::UpstreamProtocol(e),
        }
    }
}

/// Connect and log in, within [`LOGIN_TIMEOUT`].
pub(super) async fn connect(resource: &ResourceConfig) -> Result<Upstream, MongoError> {
    tokio::time::timeout(LOGIN_TIMEOUT, login(resource))
        .await
        .map_err(|_| upstream_error(resource, "login timed out"))?
}

/// The upstream's `maxWireVersion` (connect, `hello`, close), within 2 s.
pub(super) async fn probe_wire(resource: &ResourceConfig) -> Option<i32> {
    let probe = async {
        let mut upstream = open(resource).await.ok()?;
        hello(&mut upstream).await.ok()
    };
    tokio::time::timeout(Duration::from_secs(2), probe)
        .await
        .ok()
        .flatten()
}

async fn open(resource: &ResourceConfig) -> Result<Upstream, MongoError> {
    let addr = format!("{}:{}", resource.host, resource.port);
    let tcp = TcpStream::connect(&addr)
        .await
        .map_err(|e| upstream_error(resource, format!("connect {addr}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let stream = match resource.upstream_tls.mode() {
        TlsMode::Disable => MaybeTls::Plain(tcp),
        mode => MaybeTls::Tls(Box::new(
            crate::tls::connect_upstream(tcp, resource, mode)
                .await
                .map_err(|e| upstream_error(resource, e))?,
        )),
    };
    Ok(Upstream {
        stream,
        buf: BytesMut::with_capacity(16 * 1024),
        max_wire: 0,
    })
}

async fn login(resource: &ResourceConfig) -> Result<Upstream, MongoError> {
    let mut upstream = open(resource).await?;
    upstream.max_wire = hello(&mut upstream).await?;
    if let (Some(user), Some(password)) = (&resource.username, &resource.password) {
        let db = resource.auth_source.as_deref().unwrap_or("admin");
        scram(&mut upstream, user, password, db)
            .await
            .map_err(|detail| upstream_error(resource, detail))?;
    }
    Ok(upstream)
}

/// `hello`; the upstream's `maxWireVersion`.
async fn hello(upstream: &mut Upstream) -> Result<i32, MongoError> {
    let reply = command(upstream, doc! {"hello": 1, "$db": "admin"}).await?;
    Ok(reply.get_i32("maxWireVersion").unwrap_or(0))
}

/// Send one command Gate writes itself and read its reply body.
pub(super) async fn command(
    upstream: &mut Upstream,
    body: Document,
) -> Result<Document, MongoError> {
    let mut out = BytesMut::new();
    let msg = OpMsg {
        flags: 0,
        body,
        sequences: Vec::new(),
    };
    codec::encode_msg(&mut out, request_id(), 0, &msg);
    upstream.stream.write_all(&out).await?;
    let frame = read_frame(&mut upstream.stream, &mut upstream.buf)
        .await?
        .ok_or_else(|| MongoError::Io(std::io::ErrorKind::UnexpectedEof.into()))?;
    match codec::decode_message(&frame).map_err(MongoError::UpstreamProtocol)? {
        Message::Msg(msg) => Ok(msg.body),
        Message::Reply(mut reply) if !reply.documents.is_empty() => Ok(reply.documents.remove(0)),
        _ => Err(MongoError::UpstreamProtocol(codec::CodecError::Malformed(
            "reply to Gate's command",
        ))),
    }
}

fn binary(data: &[u8]) -> Binary {
    Binary {
        subtype: BinarySubtype::Generic,
        bytes: data.to_vec(),
    }
}

/// Whether a reply says `ok: 1` (as a double, int or long).
pub(super) fn is_ok(reply: &Document) -> bool {
    match reply.get("ok") {
        Some(Bson::Double(v)) => *v == 1.0,
        Some(Bson::Int32(v)) => *v == 1,
        Some(Bson::Int64(v)) => *v == 1,
        Some(Bson::Boolean(v)) => *v,
        _ => false,
    }
}

fn sasl_payload(reply: &Document) -> Result<String, String> {
    if !is_ok(reply) {
        return Err(format!(
            "SCRAM-SHA-256 refused: {}",
            reply.get_str("errmsg").unwrap_or("no reason given")
        ));
    }
    match reply.get("payload") {
        Some(Bson::Binary(b)) => String::from_utf8(b.bytes.clone()).map_err(|e| e.to_string()),
        Some(Bson::String(s)) => Ok(s.clone()),
        _ => Err("SCRAM reply without a payload".into()),
    }
}

/// SCRAM-SHA-256 as `user` against `db`: saslStart, saslContinue, and the
/// server's signature checked.
async fn scram(
    upstream: &mut Upstream,
    user: &str,
    password: &str,
    db: &str,
) -> Result<(), String> {
    let nonce = base64::engine::general_purpose::STANDARD.encode(crate::random::bytes::<24>());
    let (mut exchange, first) = ClientExchange::start_as(user, &nonce);
    let start = doc! {
        "saslStart": 1,
        "mechanism": "SCRAM-SHA-256",
        "payload": binary(first.as_bytes()),
        "options": {"skipEmptyExchange": true},
        "$db": db,
    };
    let reply = command(upstream, start).await.map_err(|e| e.to_string())?;
    let server_first = sasl_payload(&reply)?;
    let conversation = reply
        .get("conversationId")
        .cloned()
        .unwrap_or(Bson::Int32(1));
    let last = exchange
        .respond(&server_first, password)
        .map_err(|e| e.to_string())?;
    let mut step = doc! {
        "saslContinue": 1,
        "conversationId": conversation.clone(),
        "payload": binary(last.as_bytes()),
        "$db": db,
    };
    let reply = command(upstream, step.clone())
        .await
        .map_err(|e| e.to_string())?;
    let server_final = sasl_payload(&reply)?;
    exchange.verify(&server_final).map_err(|e| e.to_string())?;
    // Servers that ignore skipEmptyExchange want one more, empty, step.
    if !reply.get_bool("done").unwrap_or(false) {
        step.insert("payload", binary(b""));
        let reply = command(upstream, step).await.map_err(|e| e.to_string())?;
        sasl_payload(&reply)?;
    }
    Ok(())
}
