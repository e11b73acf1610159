//! Transaction pooling (`pool.mode: transaction`): the client keeps its Gate session, while an upstream connection is lent from the first message of a transaction (or lone statement, or extended-protocol pipeline) to the ReadyForQuery that finds it idle, unless session state pins the client to it.

use std::sync::atomic::Ordering;

use bytes::BytesMut;
use gate_policy::QueryInfo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Shared;
use super::codec::{self, backend, frontend};
use super::error::PgError;
use super::login::Established;
use super::pool::{Key, Lease, Pool};
use super::prepared::Deferred;
use super::session_state;
use super::state::{Context, Pooling};
use crate::stream::ClientStream;

/// Rows stream: never hold more than this for the client.
const CLIENT_WRITE_CHUNK: usize = 65_536;
/// Room made for what an idle client sends when it speaks again.
const CLIENT_READ_RESERVE: usize = 8192;

/// How the relay ended.
enum Ended {
    /// The client said goodbye (Terminate) or closed its socket.
    Client,
    /// The upstream closed its socket.
    Upstream,
}

/// One client's use of the pool.
struct Lent<'p> {
    pool: &'p Pool,
    key: &'p Key,
    cancel_key: (u32, u32),
    /// The connection lent to the client, while it is.
    held: Option<Lease>,
    /// Extended-protocol messages were sent since the last Sync.
    in_pipeline: bool,
    /// Session state pinned the client to `held` for good.
    pinned: bool,
    /// Gate answered Parses itself since the last Sync (no connection held).
    answered: bool,
}

impl Context<'_> {
    /// The 0A000 message for a statement in `queries` that would leave session state on a shared
    /// connection, when the session refuses such statements; when it pins instead, the session
    /// is marked pinned and `None` returned (as it is in session mode, or once pinned).
    pub(super) fn session_state(&self, queries: &[QueryInfo]) -> Option<String> {
        let pooling = self.pooling.as_ref()?;
        let mut pinned = pooling
            .pinned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let found = session_state::find(queries)?;
        if found == "DISCARD" || found == "DEALLOCATE" {
            pooling.forget_prepared.store(true, Ordering::Relaxed);
        }
        if pinned.is_some() {
            return None;
        }
        if pooling.pin_on_session_state {
            *pinned = Some(found);
            return None;
        }
        Some(format!(
            "{found} is not supported with transaction pooling: it would leave session state on \
             a shared server connection (use SET LOCAL or the _xact_ advisory locks, or set \
             pool.pin_on_session_state: true to pin such clients to one connection)"
        ))
    }

    /// What pinned the session, once something did.
    fn pinned_by(&self) -> Option<String> {
        self.pooling.as_ref().and_then(|p| {
            p.pinned
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        })
    }
}

/// Relay a transaction-mode session until either side ends.
pub(super) async fn run(
    established: Established<'_>,
    mut client: ClientStream,
    client_buf: BytesMut,
    shared: &Shared,
) {
    let Established {
        session,
        lease,
        pool,
        cancel_key,
        upstream_user,
        upstream_db,
        key,
    } = established;
    let pooling = Pooling {
        pin_on_session_state: pool.config().pin_on_session_state,
        max_prepared: usize::try_from(pool.config().max_prepared_statements).unwrap_or(usize::MAX),
        ..Default::default()
    };
    let ctx = Context::new(session, shared, &upstream_user, &upstream_db, Some(pooling));
    let mut lent = Lent {
        pool: &pool,
        key: &key,
        cancel_key,
        held: Some(lease),
        in_pipeline: false,
        pinned: false,
        answered: false,
    };
    // The login's connection is idle: the client gets one when it sends something.
    lent.give_back(&ctx, shared);
    let mut buf = client_buf;
    let result = {
        let relay = async {
            loop {
                // The machinery of a transaction exists only while one runs.
                let step = Box::pin(lent.relay(&ctx, shared, &mut client, &mut buf)).await?;
                if let Some(ended) = step {
                    return Ok(ended);
                }
                // Idle between transactions: no buffer is held until the client speaks.
                if buf.is_empty() {
                    buf = BytesMut::new();
                }
                if client
                    .read_when_ready(&mut buf, CLIENT_READ_RESERVE)
                    .await?
                    == 0
                {
                    return Ok(Ended::Client);
                }
            }
        };
        let grant_ended =
            async { Err::<Ended, PgError>(PgError::GrantEnded(ctx.session.grant_ended().await)) };
        tokio::select! {
            r = relay => r,
            r = grant_ended => r,
        }
    };
    if let Err(PgError::GrantEnded(reason)) = &result {
        ctx.session.audit_grant_ended(reason);
    }
    if let Err(error) = &result
        && let Some(fatal) = error.fatal_message()
    {
        let _ = client.write_all(&fatal).await;
    }
    ctx.session.end();
    shared.cancels.remove(cancel_key);
    if let Some(lease) = lent.held.take() {
        let idle = matches!(result, Ok(Ended::Client))
            && ctx.idle()
            && !lent.in_pipeline
            && lease.conn.leftover.is_empty();
        if lent.pinned || !idle {
            // Session state goes with DISCARD ALL; a busy connection is closed.
            Box::pin(pool.release(lease, idle)).await;
        } else {
            pool.put_back(lease);
        }
    }
    if lent.pinned {
        pool.count("gate_connpool_pinned_clients", -1.0);
    }
    if let Err(error) = result {
        super::relay::log_end(&ctx, &error);
    }
}

/// Whether an idle connection is still open: it has nothing to say (a
/// closed one reads end-of-file, or the FATAL the server sent before closing).
async fn alive(lease: &mut Lease) -> bool {
    let conn = &mut lease.conn;
    if !conn.leftover.is_empty() {
        return false;
    }
    // A zero timeout polls the read once: pending means open and quiet.
    let read = tokio::time::timeout(
        std::time::Duration::ZERO,
        conn.stream.read_buf(&mut conn.leftover),
    )
    .await;
    read.is_err()
}

impl Lent<'_> {
    /// Borrow a connection for the client's next transaction. An idle
    /// connection the server closed meanwhile (a restart, `idle_session_timeout`,
    /// `pg_terminate_backend`) is dropped and another one taken.
    async fn lend(&mut self, shared: &Shared) -> Result<(), PgError> {
        let mut lease = self.pool.acquire(self.key).await?;
        for _ in 0..=self.pool.config().max_connections {
            if alive(&mut lease).await {
                break;
            }
            self.pool.release(lease, false).await;
            lease = self.pool.acquire(self.key).await?;
        }
        shared.cancels.register(
            self.cancel_key,
            (lease.conn.addr.clone(), lease.conn.pid, lease.conn.secret),
        );
        self.held = Some(lease);
        Ok(())
    }

    /// Give the held connection back when it is idle and the client is not pinned to it.
    fn give_back(&mut self, ctx: &Context<'_>, shared: &Shared) {
        let idle = self
            .held
            .as_ref()
            .is_some_and(|l| l.conn.leftover.is_empty());
        if self.pinned || self.in_pipeline || !idle || !ctx.idle() {
            return;
        }
        if let Some(lease) = self.held.take() {
            shared.cancels.remove(self.cancel_key);
            self.pool.put_back(lease);
        }
    }

    /// Note what a client message means for the lease.
    fn note_client(&mut self, tag: u8) {
        match tag {
            frontend::PARSE
            | frontend::BIND
            | frontend::DESCRIBE
            | frontend::EXECUTE
            | frontend::CLOSE
            | frontend::FLUSH => self.in_pipeline = true,
            frontend::SYNC => self.in_pipeline = false,
            _ => {}
        }
    }

    /// Pin the client once a statement it sent left session state.
    fn check_pinned(&mut self, ctx: &Context<'_>) {
        if self.pinned {
            return;
        }
        if let Some(reason) = ctx.pinned_by() {
            self.pinned = true;
            self.pool.count("gate_connpool_pinned_clients", 1.0);
            tracing::info!(
                protocol = "postgres",
                identity = ctx.session.identity(),
                resource = %ctx.session.resource.name,
                statement = %reason,
                "client pinned to its upstream connection"
            );
            ctx.session
                .audit_pinned(format!("pinned to one upstream connection by {reason}"));
        }
    }

    async fn relay(
        &mut self,
        ctx: &Context<'_>,
        shared: &Shared,
        client: &mut ClientStream,
        buf: &mut BytesMut,
    ) -> Result<Option<Ended>, PgError> {
        // Buffers grow with use and go with this future when the client is idle (`None`).
        let mut to_upstream = BytesMut::new();
        let mut to_client = BytesMut::new();
        loop {
            // Everything the client has sent goes to the connection lent for it.
            while let Some(frame) = codec::decode_frame(buf)? {
                if frame.tag == frontend::TERMINATE {
                    // What came before the goodbye (a COMMIT) still reaches the server.
                    if let Some(lease) = self.held.as_mut()
                        && !to_upstream.is_empty()
                    {
                        lease.conn.stream.write_all(&to_upstream).await?;
                    }
                    return Ok(Some(Ended::Client));
                }
                let mut refused = None;
                if self.held.is_none() {
                    // Parse and Sync alone need no connection.
                    match frame.tag {
                        frontend::PARSE => {
                            match ctx.parse_deferred(&frame, &mut to_client).await? {
                                Deferred::Answered => {
                                    self.answered = true;
                                    continue;
                                }
                                Deferred::NotNamed => {}
                                Deferred::Refused(sql, audits) => refused = Some((sql, audits)),
                            }
                        }
                        frontend::SYNC | frontend::FLUSH if self.answered => {
                            if frame.tag == frontend::SYNC {
                                self.answered = false;
                                // Holding no connection, the client is idle.
                                codec::put_ready(&mut to_client, b'I');
                            }
                            continue;
                        }
                        _ => {}
                    }
                    self.lend(shared).await?;
                }
                self.answered = false;
                self.note_client(frame.tag);
                let Some(lease) = self.held.as_mut() else {
                    continue;
                };
                match refused {
                    Some((sql, audits)) => {
                        let parse = codec::parse_parse(frame.body())?;
                        ctx.finish_parse(
                            &parse,
                            sql,
                            audits,
                            &mut to_upstream,
                            &mut lease.conn.prepared,
                        );
                    }
                    None => {
                        ctx.relay_pooled_frame(&frame, &mut to_upstream, &mut lease.conn.prepared)
                            .await?
                    }
                }
            }
            self.check_pinned(ctx);
            if let Some(lease) = self.held.as_mut()
                && ctx
                    .pooling
                    .as_ref()
                    .is_some_and(|p| p.forget_prepared.swap(false, Ordering::Relaxed))
            {
                lease.conn.prepared.clear();
            }
            // Answers Gate gives itself with nothing before them go out now.
            ctx.answer_front(&mut to_client);
            if !to_client.is_empty() {
                client.write_all(&to_client).await?;
                to_client.clear();
            }
            let Some(lease) = self.held.as_mut() else {
                // Nothing lent and nothing left to relay: the client is idle.
                return Ok(None);
            };
            if !to_upstream.is_empty() {
                lease.conn.stream.write_all(&to_upstream).await?;
                to_upstream.clear();
                ctx.session.flush();
            }
            let conn = &mut lease.conn;
            tokio::select! {
                read = client.read_buf(buf) => {
                    if read? == 0 {
                        return Ok(Some(Ended::Client));
                    }
                }
                read = conn.stream.read_buf(&mut conn.leftover) => {
                    if read? == 0 {
                        return Ok(Some(Ended::Upstream));
                    }
                    let mut ready = false;
                    while let Some(frame) = codec::decode_frame(&mut conn.leftover)? {
                        ready |= frame.tag == backend::READY_FOR_QUERY;
                        ctx.relay_upstream_frame(frame, &mut to_client).await?;
                        if to_client.len() > CLIENT_WRITE_CHUNK {
                            client.write_all(&to_client).await?;
                            to_client.clear();
                        }
                    }
                    ctx.forget_failed_parses(&mut conn.prepared);
                    let (hits, misses) = conn.prepared.take_counts();
                    if hits + misses > 0 {
                        self.pool.count("gate_connpool_prepared_hits_total", hits as f64);
                        self.pool.count("gate_connpool_prepared_misses_total", misses as f64);
                    }
                    client.write_all(&to_client).await?;
                    to_client.clear();
                    ctx.session.flush();
                    if ready {
                        self.give_back(ctx, shared);
                    }
                }
            }
        }
    }
}
