//! The command loop of an established session: one command from the
//! client at a time, decided through the session layer, forwarded, and its
//! response relayed ([`super::results`]); the session ends with either side,
//! or when its access grant does (ERR 1927, the answer to its next command).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, BytesMut};
use gate_policy::QueryInfo;
use tokio::io::AsyncWriteExt;

use super::codec::{Packet, Reader, put_packet};
use super::error::{MyError, put_err, refusal};
use super::login::Established;
use super::packets::{ERR, ErrPacket};
use super::prepared::Prepared;
use super::results::{Format, Request, ResultPlan};
use super::statements;
use super::upstream::Upstream;
use super::wire::{expect_packet, read_packet};
use crate::session::results::PlanCache;
use crate::session::{AuditText, Decision, Session};
use crate::stream::ClientStream;

/// Rows stream: never hold more than this for the client.
const CLIENT_WRITE_CHUNK: usize = 65_536;

/// Command bytes.
pub(super) mod com {
    pub(crate) const QUIT: u8 = 0x01;
    pub(crate) const INIT_DB: u8 = 0x02;
    pub(crate) const QUERY: u8 = 0x03;
    pub(crate) const FIELD_LIST: u8 = 0x04;
    pub(crate) const STATISTICS: u8 = 0x09;
    pub(crate) const PING: u8 = 0x0E;
    pub(crate) const CHANGE_USER: u8 = 0x11;
    pub(crate) const STMT_PREPARE: u8 = 0x16;
    pub(crate) const STMT_EXECUTE: u8 = 0x17;
    pub(crate) const STMT_SEND_LONG_DATA: u8 = 0x18;
    pub(crate) const STMT_CLOSE: u8 = 0x19;
    pub(crate) const STMT_RESET: u8 = 0x1A;
    pub(crate) const SET_OPTION: u8 = 0x1B;
    pub(crate) const STMT_FETCH: u8 = 0x1C;
    pub(crate) const RESET_CONNECTION: u8 = 0x1F;
}

/// What Gate sends the client for one command, re-sequenced from 1.
#[derive(Debug)]
pub(super) struct Out {
    buf: BytesMut,
    seq: u8,
}

impl Out {
    fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(8192),
            seq: 1,
        }
    }

    /// A packet as it arrived, unless its sequence ids do not fit here.
    pub(super) fn forward(&mut self, packet: &Packet) {
        let physical = packet.last_seq.wrapping_sub(packet.seq);
        if packet.seq == self.seq {
            self.buf.extend_from_slice(&packet.raw);
            self.seq = self.seq.wrapping_add(physical).wrapping_add(1);
        } else {
            self.send(&packet.payload);
        }
    }

    /// A new packet.
    pub(super) fn send(&mut self, payload: &[u8]) {
        self.seq = put_packet(&mut self.buf, self.seq, payload);
    }

    pub(super) fn send_err(&mut self, err: &ErrPacket) {
        self.seq = put_err(&mut self.buf, self.seq, err);
    }

    pub(super) async fn flush(&mut self, client: &mut ClientStream) -> Result<(), MyError> {
        if !self.buf.is_empty() {
            client.write_all(&self.buf).await?;
            self.buf.clear();
        }
        Ok(())
    }

    pub(super) async fn flush_if_large(
        &mut self,
        client: &mut ClientStream,
    ) -> Result<(), MyError> {
        if self.buf.len() > CLIENT_WRITE_CHUNK {
            self.flush(client).await?;
        }
        Ok(())
    }
}

/// One session's relay state.
pub(super) struct Relay<'s> {
    pub(super) session: &'s Session<'s>,
    pub(super) capabilities: u32,
    pub(super) plans: PlanCache<ResultPlan>,
    /// Some result of this session was masked: upstream errors are redacted.
    pub(super) masks_seen: bool,
    pub(super) statements: HashMap<u32, Prepared>,
    /// A refusal owed after the last result of the statements before a
    /// refused one in a multi-statement ([`Refused::before`]).
    pub(super) then_refuse: Option<String>,
    /// Result sets carry MariaDB's "metadata follows" byte (metadata caching negotiated).
    pub(super) cache_metadata: bool,
    /// The prepared statement whose COM_STMT_EXECUTE is being answered.
    pub(super) executing: Option<u32>,
}

/// A refused text: why, and the statements before the refused one, which
/// run first, as MySQL runs a multi-statement up to its first failing statement.
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) reason: String,
    pub(super) before: Option<String>,
}

/// Relay until either side ends, then return the upstream connection to
/// its pool when it is idle and clean.
pub(super) async fn run(established: Established<'_>, mut client: ClientStream, mut buf: BytesMut) {
    let Established {
        session,
        mut lease,
        pool,
        capabilities,
        mariadb,
    } = established;
    let mut relay = Relay {
        session: &session,
        capabilities,
        plans: PlanCache::default(),
        masks_seen: false,
        statements: HashMap::new(),
        then_refuse: None,
        cache_metadata: mariadb & super::handshake::caps::MARIADB_CACHE_METADATA != 0,
        executing: None,
    };
    let result = loop {
        let packet = tokio::select! {
            packet = read_packet(&mut client, &mut buf) => packet,
            reason = session.grant_ended() => Err(MyError::GrantEnded(reason)),
        };
        let packet = match packet {
            Ok(Some(packet)) => packet,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        if packet.first() == Some(com::QUIT) {
            break Ok(());
        }
        let started = Instant::now();
        if let Err(e) = relay.command(&packet, &mut client, &mut lease.conn).await {
            break Err(e);
        }
        session.record_duration(started);
        session.flush();
    };
    if let Err(MyError::GrantEnded(reason)) = &result {
        session.audit_grant_ended(reason);
    }
    session.end();
    let reusable = result.is_ok() && lease.conn.buf.is_empty();
    pool.release(lease, reusable).await;
    if let Err(ended @ MyError::GrantEnded(_)) = &result {
        answer_next_command(&mut client, &mut buf, ended).await;
    }
    if let Err(error) = result {
        tracing::info!(
            protocol = "mysql",
            client = %session.parties.client,
            identity = session.identity(),
            resource = %session.resource.name,
            %error,
            "session ended"
        );
    }
}

/// How long a killed session waits for the client's next command, to answer it with the reason.
const KILLED_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Answer the client's next command (within [`KILLED_WAIT`]) with `ended`'s
/// ERR, then close: drivers read an ERR only as the answer to a command
/// (one sent unasked, with sequence id 0, reads as a lost connection).
async fn answer_next_command(client: &mut ClientStream, buf: &mut BytesMut, ended: &MyError) {
    let next = tokio::time::timeout(KILLED_WAIT, read_packet(client, buf)).await;
    if let Ok(Ok(Some(packet))) = next
        && packet.first() != Some(com::QUIT)
        && let Some(err) = ended.err_message(packet.last_seq.wrapping_add(1))
    {
        let _ = client.write_all(&err).await;
    }
}

impl Relay<'_> {
    /// One command and its whole response.
    async fn command(
        &mut self,
        packet: &Packet,
        client: &mut ClientStream,
        upstream: &mut Upstream,
    ) -> Result<(), MyError> {
        let mut out = Out::new();
        let body = packet.payload.get(1..).unwrap_or_default();
        match packet.first() {
            Some(com::QUERY) => self.query(packet, body, client, upstream, &mut out).await?,
            Some(com::STMT_PREPARE) => self.prepare(body, client, upstream, &mut out).await?,
            Some(com::STMT_EXECUTE) => {
                self.execute(packet, body, client, upstream, &mut out, false)
                    .await?
            }
            Some(com::STMT_FETCH) => {
                self.execute(packet, body, client, upstream, &mut out, true)
                    .await?
            }
            Some(com::STMT_CLOSE) => {
                if let Ok(id) = Reader::new(body).u32("statement id") {
                    self.statements.remove(&id);
                }
                upstream.stream.write_all(&packet.raw).await?;
            }
            Some(com::STMT_SEND_LONG_DATA) => upstream.stream.write_all(&packet.raw).await?,
            Some(com::INIT_DB) => {
                let db = String::from_utf8_lossy(body).into_owned();
                let query = QueryInfo {
                    raw: format!("USE `{}`", db.replace('`', "``")),
                    kind: "use".into(),
                    database: Some(db),
                    ..Default::default()
                };
                let text: Arc<str> = query.raw.as_str().into();
                let decided =
                    self.session
                        .request(&query, AuditText::Text(text), "refused by policy", None);
                match decided.decision {
                    Decision::Block(reason) => out.send_err(&refusal(reason)),
                    _ => self.one_answer(packet, upstream, &mut out).await?,
                }
                self.session
                    .complete(decided.audit, std::time::Duration::ZERO);
            }
            Some(com::RESET_CONNECTION) => {
                self.statements.clear();
                self.one_answer(packet, upstream, &mut out).await?;
            }
            Some(com::PING | com::STMT_RESET | com::SET_OPTION | com::STATISTICS) => {
                self.one_answer(packet, upstream, &mut out).await?;
            }
            Some(com::FIELD_LIST) => {
                upstream.stream.write_all(&packet.raw).await?;
                let deprecate_eof = self.capabilities & super::handshake::caps::DEPRECATE_EOF != 0;
                loop {
                    let answer = expect_packet(&mut upstream.stream, &mut upstream.buf).await?;
                    out.forward(&answer);
                    if answer.first() == Some(ERR)
                        || super::packets::ends_rows(&answer.payload, deprecate_eof)
                    {
                        break;
                    }
                }
            }
            Some(com::CHANGE_USER) => out.send_err(&ErrPacket::new(
                1148,
                "42000",
                "COM_CHANGE_USER is not supported through Gate: reconnect as the other user",
            )),
            _ => out.send_err(&ErrPacket::new(
                1047,
                "08S01",
                "Unknown command (not supported through Gate)",
            )),
        }
        out.flush(client).await
    }

    /// Forward a command whose answer is one packet.
    async fn one_answer(
        &mut self,
        packet: &Packet,
        upstream: &mut Upstream,
        out: &mut Out,
    ) -> Result<(), MyError> {
        upstream.stream.write_all(&packet.raw).await?;
        let answer = expect_packet(&mut upstream.stream, &mut upstream.buf).await?;
        out.forward(&answer);
        Ok(())
    }

    /// Decide every statement of `text`: the text to send upstream (`None`:
    /// as sent), or the refusal; the request with its audit events either way.
    pub(super) fn decide(&mut self, text: &str) -> (Result<Option<String>, Refused>, Request) {
        let queries: Arc<[QueryInfo]> = statements::classify(text).into();
        self.decide_queries(text.into(), queries)
    }

    /// [`Relay::decide`] for statements already classified.
    pub(super) fn decide_queries(
        &mut self,
        text: Arc<str>,
        queries: Arc<[QueryInfo]>,
    ) -> (Result<Option<String>, Refused>, Request) {
        let mut request = Request {
            text: text.clone(),
            queries: queries.clone(),
            audits: Vec::new(),
        };
        let mut rewritten = false;
        let mut parts = Vec::new();
        for (i, query) in queries.iter().enumerate() {
            let decided = self.session.request(
                query,
                AuditText::Query(queries.clone(), i),
                "statement refused by policy",
                None,
            );
            request.audits.push(decided.audit);
            let part = match decided.decision {
                Decision::Forward => match self.guard(query, &text) {
                    Some(reason) => Err(reason),
                    None => Ok(query.statement.clone().unwrap_or_else(|| query.raw.clone())),
                },
                Decision::Rewrite(sql) => {
                    rewritten = true;
                    Ok(sql)
                }
                Decision::Block(reason) => Err(reason),
            };
            match part {
                Ok(part) => parts.push(part),
                // The statements after a refused one never run (nor are they decided).
                Err(reason) => {
                    let before = (!parts.is_empty()).then(|| parts.join(";\n"));
                    return (Err(Refused { reason, before }), request);
                }
            }
        }
        let sent = if rewritten {
            Some(parts.join(";\n"))
        } else {
            None
        };
        (Ok(sent), request)
    }

    /// Why a forwarded statement is refused anyway: LOAD DATA LOCAL, or a
    /// statement that moves masked data while masks apply.
    fn guard(&self, query: &QueryInfo, text: &str) -> Option<String> {
        if statements::is_local_infile(text) {
            return Some(
                "LOAD DATA LOCAL INFILE is refused by Gate (it never reads client files)".into(),
            );
        }
        if !statements::needs_guard(query, text) {
            return None;
        }
        let verdict = self.session.expected_masks(query);
        if verdict.masks.is_empty() {
            return None;
        }
        statements::masking_guard(&verdict, query, text)
    }

    pub(super) fn complete(&self, request: &Request, started: Instant) {
        for id in &request.audits {
            self.session.complete(*id, started.elapsed());
        }
    }

    async fn query(
        &mut self,
        packet: &Packet,
        body: &[u8],
        client: &mut ClientStream,
        upstream: &mut Upstream,
        out: &mut Out,
    ) -> Result<(), MyError> {
        let started = Instant::now();
        let text = String::from_utf8_lossy(body);
        let (sent, request) = self.decide(&text);
        match sent {
            Err(Refused {
                reason,
                before: None,
            }) => out.send_err(&refusal(reason)),
            Err(Refused {
                reason,
                before: Some(sql),
            }) => {
                send_command(upstream, com::QUERY, &sql).await?;
                self.then_refuse = Some(reason);
                let relayed = self
                    .relay_results(upstream, client, out, Format::Text, &request)
                    .await;
                self.then_refuse = None;
                relayed?;
            }
            Ok(rewritten) => {
                match rewritten {
                    None => upstream.stream.write_all(&packet.raw).await?,
                    Some(sql) => send_command(upstream, com::QUERY, &sql).await?,
                }
                self.relay_results(upstream, client, out, Format::Text, &request)
                    .await?;
            }
        }
        self.complete(&request, started);
        Ok(())
    }
}

/// Send `sql` upstream as the command `command` (COM_QUERY, COM_STMT_PREPARE).
pub(super) async fn send_command(
    upstream: &mut Upstream,
    command: u8,
    sql: &str,
) -> Result<(), MyError> {
    let mut payload = BytesMut::with_capacity(sql.len() + 1);
    payload.put_u8(command);
    payload.put_slice(sql.as_bytes());
    let mut raw = BytesMut::new();
    put_packet(&mut raw, 0, &payload);
    upstream.stream.write_all(&raw).await?;
    Ok(())
}
