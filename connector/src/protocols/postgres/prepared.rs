//! Protocol-level prepared statements under transaction pooling: a client's named statements are kept by Gate and prepared, as `gate_s_<n>`, on whichever upstream connection runs them (least recently used closed past `pool.max_prepared_statements`); responses Gate gives itself keep their place in the stream.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use super::codec::{self, Frame, backend, frontend};
use super::error::{self, PgError};
use super::state::{BLOCK_MARKER, Context, Expect, Sql};
use crate::session::AuditId;

/// What makes two prepared statements the same on the server: text and parameter types.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct StatementKey {
    text: Arc<str>,
    /// The parameter type count and OIDs, as the client sent them.
    types: Arc<[u8]>,
}

/// The statements Gate prepared on one upstream connection.
#[derive(Debug, Default)]
pub(super) struct ServerStatements {
    /// Server-side name and last use, by statement.
    by_key: HashMap<StatementKey, (Arc<str>, u64)>,
    next_id: u64,
    clock: u64,
    hits: u64,
    misses: u64,
}

impl ServerStatements {
    /// The server-side name of `key` here, if it is prepared (a cache hit).
    fn get(&mut self, key: &StatementKey) -> Option<Arc<str>> {
        self.clock += 1;
        let (name, used) = self.by_key.get_mut(key)?;
        *used = self.clock;
        self.hits += 1;
        Some(name.clone())
    }

    /// Name a statement about to be prepared here (a miss), and the least
    /// recently used one to close first when `max` are already prepared.
    fn insert(&mut self, key: StatementKey, max: usize) -> (Arc<str>, Option<Arc<str>>) {
        self.clock += 1;
        self.misses += 1;
        let evicted = if self.by_key.len() >= max.max(1) {
            let oldest = self
                .by_key
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            oldest.and_then(|k| self.by_key.remove(&k)).map(|(n, _)| n)
        } else {
            None
        };
        self.next_id += 1;
        let name: Arc<str> = format!("gate_s_{}", self.next_id).into();
        self.by_key.insert(key, (name.clone(), self.clock));
        (name, evicted)
    }

    /// Forget a statement whose Parse failed.
    fn remove(&mut self, name: &str) {
        self.by_key.retain(|_, (n, _)| &**n != name);
    }

    /// Forget everything (the connection ran `DISCARD ALL`).
    pub(super) fn clear(&mut self) {
        self.by_key.clear();
    }

    /// Cache hits and misses since the last call.
    pub(super) fn take_counts(&mut self) -> (u64, u64) {
        (
            std::mem::take(&mut self.hits),
            std::mem::take(&mut self.misses),
        )
    }
}

/// What became of a Parse sent while the client held no connection.
pub(super) enum Deferred {
    /// Kept by Gate and answered.
    Answered,
    /// Unnamed (or named statements are off): it goes to a connection as it is.
    NotNamed,
    /// Refused: the marker statement goes to a connection to fail there.
    Refused(Sql, Vec<AuditId>),
}

/// A Bind with `statement` in place of the client's statement name.
fn put_bind_renamed(
    out: &mut BytesMut,
    body: &[u8],
    portal: &str,
    client_name: &str,
    statement: &str,
) {
    let rest = body
        .get(portal.len() + client_name.len() + 2..)
        .unwrap_or_default();
    codec::put_message(out, frontend::BIND, |b| {
        codec::put_cstr(b, portal);
        codec::put_cstr(b, statement);
        b.put_slice(rest);
    });
}

impl Context<'_> {
    fn max_prepared(&self) -> usize {
        self.pooling.as_ref().map_or(0, |p| p.max_prepared)
    }

    /// Append what goes upstream for one client frame in transaction mode:
    /// named statements are renamed, prepared where missing, or answered by Gate.
    pub(super) async fn relay_pooled_frame(
        &self,
        frame: &Frame,
        out: &mut BytesMut,
        server: &mut ServerStatements,
    ) -> Result<(), PgError> {
        let ack = |tag| Expect::Ack {
            tag,
            hidden: false,
            parsed: None,
        };
        match frame.tag {
            frontend::PARSE => {
                let parse = codec::parse_parse(frame.body())?;
                if parse.name.is_empty() {
                    self.track().expect.push_back(ack(b'1'));
                    return self.relay_client_frame(frame, out).await;
                }
                self.parse_named(parse, out, server).await;
            }
            frontend::BIND => {
                let bind = codec::parse_bind(frame.body())?;
                let statement = self.ensure_prepared(bind.statement, out, server);
                let mut track = self.track();
                track.portals.insert(
                    bind.portal.to_owned(),
                    (
                        bind.statement.to_owned(),
                        super::rows::Formats(bind.result_formats),
                    ),
                );
                track.expect.push_back(ack(b'2'));
                match statement {
                    Some(name) => {
                        put_bind_renamed(out, frame.body(), bind.portal, bind.statement, &name)
                    }
                    None => out.extend_from_slice(&frame.raw),
                }
            }
            frontend::DESCRIBE => {
                let (kind, name) = codec::parse_target(frame.body())?;
                let renamed = if kind == b'S' {
                    self.ensure_prepared(name, out, server)
                } else {
                    None
                };
                let Some(server_name) = renamed else {
                    return self.relay_client_frame(frame, out).await;
                };
                self.track().expect.push_back(Expect::Describe {
                    statement: true,
                    name: name.to_owned(),
                    internal: false,
                });
                codec::put_describe(out, b'S', &server_name);
            }
            frontend::CLOSE => {
                let (kind, name) = codec::parse_target(frame.body())?;
                if kind == b'S' && !name.is_empty() {
                    // The server keeps its copy for other clients; the client's name is gone.
                    let mut track = self.track();
                    track.prepared.remove(name);
                    let closed = track.statements.remove(name);
                    self.settle(closed);
                    track.expect.push_back(Expect::Answer(b'3'));
                    return Ok(());
                }
                self.track().expect.push_back(ack(b'3'));
                return self.relay_client_frame(frame, out).await;
            }
            _ => return self.relay_client_frame(frame, out).await,
        }
        Ok(())
    }

    /// A named Parse: decided like any statement, then prepared on this
    /// connection unless it already has the same statement.
    async fn parse_named(
        &self,
        parse: codec::Parse<'_>,
        out: &mut BytesMut,
        server: &mut ServerStatements,
    ) {
        let (sql, audits) = self.decide_parse(&parse).await;
        self.finish_parse(&parse, sql, audits, out, server);
    }

    /// A named Parse sent while the client holds no connection: when the
    /// statement is allowed, Gate keeps it and answers ParseComplete itself
    /// (it is prepared, and described, where it first runs); `false` when
    /// it needs a connection (a refusal the server must report in order).
    /// Clients that prepare synchronously (pgbench `-M prepared`) then never
    /// wait for a connection just to prepare.
    pub(super) async fn parse_deferred(
        &self,
        frame: &Frame,
        to_client: &mut BytesMut,
    ) -> Result<Deferred, PgError> {
        let parse = codec::parse_parse(frame.body())?;
        if parse.name.is_empty() || self.max_prepared() == 0 {
            return Ok(Deferred::NotNamed);
        }
        let (sql, audits) = self.decide_parse(&parse).await;
        if sql.text.starts_with(BLOCK_MARKER) {
            return Ok(Deferred::Refused(sql, audits));
        }
        let key = StatementKey {
            text: sql.text.clone(),
            types: Arc::from(parse.param_types),
        };
        let mut track = self.track();
        track.prepared.insert(parse.name.to_owned(), key);
        self.keep_statement(&mut track, parse.name, sql, audits, false);
        codec::put_message(to_client, backend::PARSE_COMPLETE, |_| {});
        Ok(Deferred::Answered)
    }

    /// The policy decision on a named Parse (a 0A000 refusal when named
    /// statements are turned off).
    async fn decide_parse(&self, parse: &codec::Parse<'_>) -> (Sql, Vec<AuditId>) {
        let max = self.max_prepared();
        if max == 0 {
            let marker = self.marker_with(
                error::UNSUPPORTED,
                "named prepared statements are turned off for this resource \
                 (pool.max_prepared_statements: 0)"
                    .into(),
            );
            let sql = Sql {
                text: marker.into(),
                queries: Arc::from(Vec::new()),
            };
            return (sql, Vec::new());
        }
        let mut unused = BytesMut::new();
        self.decide_sql(parse.query, &mut unused, &[], |_, _, _| {})
            .await
    }

    /// Send a decided named Parse (`sql`) to this connection, or answer it
    /// when the connection already has the statement; Gate's own Describe follows.
    pub(super) fn finish_parse(
        &self,
        parse: &codec::Parse<'_>,
        sql: Sql,
        audits: Vec<AuditId>,
        out: &mut BytesMut,
        server: &mut ServerStatements,
    ) {
        let max = self.max_prepared();
        let mut track = self.track();
        let server_name: Arc<str> = if sql.text.starts_with(BLOCK_MARKER) {
            // Fails upstream like PostgreSQL's own refusal; the name stays unknown.
            track.prepared.remove(parse.name);
            codec::put_parse_with(out, "", &sql.text, &[]);
            track.expect.push_back(Expect::Ack {
                tag: b'1',
                hidden: false,
                parsed: None,
            });
            Arc::from("")
        } else {
            let key = StatementKey {
                text: sql.text.clone(),
                types: Arc::from(parse.param_types),
            };
            track.prepared.insert(parse.name.to_owned(), key.clone());
            match server.get(&key) {
                Some(name) => {
                    track.expect.push_back(Expect::Answer(b'1'));
                    name
                }
                None => prepare(&mut track.expect, out, server, key, max, false),
            }
        };
        codec::put_describe(out, b'S', &server_name);
        self.keep_statement(&mut track, parse.name, sql, audits, true);
    }

    /// The server-side name of the client's statement `name` on this
    /// connection, prepared first (Gate's own Parse, its answer swallowed)
    /// when the connection does not have it; `None` for the unnamed statement
    /// or a name the client never prepared (the server reports it).
    fn ensure_prepared(
        &self,
        name: &str,
        out: &mut BytesMut,
        server: &mut ServerStatements,
    ) -> Option<Arc<str>> {
        if name.is_empty() {
            return None;
        }
        let mut track = self.track();
        let key = track.prepared.get(name)?.clone();
        let server_name = match server.get(&key) {
            Some(server_name) => server_name,
            None => prepare(
                &mut track.expect,
                out,
                server,
                key,
                self.max_prepared(),
                true,
            ),
        };
        // A statement whose Parse Gate answered is described where it first runs: its rows
        // need their plan.
        let described = track.expect.iter().any(
            |e| matches!(e, Expect::Describe { statement: true, name: n, internal: true } if n == name),
        );
        let undescribed =
            !described && track.statements.get(name).is_some_and(|s| s.plan.is_none());
        if undescribed {
            codec::put_describe(out, b'S', &server_name);
            track.expect.push_back(Expect::Describe {
                statement: true,
                name: name.to_owned(),
                internal: true,
            });
        }
        Some(server_name)
    }

    /// Transaction mode: the responses Gate gives itself that are next in the stream.
    pub(super) fn answer_front(&self, out: &mut BytesMut) {
        let mut track = self.track();
        while let Some(Expect::Answer(tag)) = track.expect.front() {
            codec::put_message(out, *tag, |_| {});
            track.expect.pop_front();
        }
    }

    /// Drop from `server` the statements whose Parse the server refused.
    pub(super) fn forget_failed_parses(&self, server: &mut ServerStatements) {
        let failed = std::mem::take(&mut self.track().failed_parses);
        for name in failed {
            server.remove(&name);
        }
    }
}

/// Prepare `key` on the connection as a new `gate_s_<n>` (closing the least
/// recently used statement when the connection has `max`), expecting its
/// ParseComplete (swallowed when `hidden`).
fn prepare(
    expect: &mut std::collections::VecDeque<Expect>,
    out: &mut BytesMut,
    server: &mut ServerStatements,
    key: StatementKey,
    max: usize,
    hidden: bool,
) -> Arc<str> {
    let (name, evicted) = server.insert(key.clone(), max);
    if let Some(old) = evicted {
        let mut close = BytesMut::new();
        codec::put_message(&mut close, frontend::CLOSE, |b| {
            b.put_u8(b'S');
            codec::put_cstr(b, &old);
        });
        out.extend_from_slice(&close);
        expect.push_back(Expect::Ack {
            tag: b'3',
            hidden: true,
            parsed: None,
        });
    }
    codec::put_parse_with(out, &name, &key.text, &key.types);
    expect.push_back(Expect::Ack {
        tag: b'1',
        hidden,
        parsed: Some(name.clone()),
    });
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> StatementKey {
        StatementKey {
            text: text.into(),
            types: Arc::from(&[0u8, 0][..]),
        }
    }

    #[test]
    fn the_least_recently_used_statement_is_evicted_and_counts_are_kept() {
        let mut server = ServerStatements::default();
        let (a, none) = server.insert(key("a"), 2);
        assert_eq!((&*a, none), ("gate_s_1", None));
        server.insert(key("b"), 2);
        assert_eq!(server.get(&key("a")).as_deref(), Some("gate_s_1"));
        // "b" is now the least recently used.
        let (c, evicted) = server.insert(key("c"), 2);
        assert_eq!((&*c, evicted.as_deref()), ("gate_s_3", Some("gate_s_2")));
        assert!(server.get(&key("b")).is_none());
        assert_eq!(server.take_counts(), (1, 3));
        assert_eq!(server.take_counts(), (0, 0));
        server.remove("gate_s_1");
        assert!(server.get(&key("a")).is_none());
    }

    #[test]
    fn a_renamed_bind_keeps_everything_after_the_statement_name() {
        let mut body = BytesMut::new();
        codec::put_cstr(&mut body, "p");
        codec::put_cstr(&mut body, "client_stmt");
        body.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, b'7', 0, 0]);
        let mut out = BytesMut::new();
        put_bind_renamed(&mut out, &body, "p", "client_stmt", "gate_s_9");
        let frame = codec::decode_frame(&mut out).unwrap().unwrap();
        let bind = codec::parse_bind(frame.body()).unwrap();
        assert_eq!((bind.portal, bind.statement), ("p", "gate_s_9"));
        assert!(
            frame
                .body()
                .ends_with(&[0, 0, 0, 1, 0, 0, 0, 1, b'7', 0, 0])
        );
    }
}
