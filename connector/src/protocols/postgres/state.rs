//! What one PostgreSQL session tracks while it relays: the responses it
//! waits for (in order), prepared statements and portals with their result
//! plans, block markers, and the session-layer [`Session`] it decides through.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use gate_policy::QueryInfo;

use super::Shared;
use super::catalog::Catalog;
use super::rows::{Formats, MaskPlan};
use crate::session::results::PlanCache;
use crate::session::{AuditId, Session};

/// Statement text that fails upstream with a syntax error naming it; its
/// error is replaced by the policy's refusal on the way back.
pub(super) const BLOCK_MARKER: &str = "gate_policy_block_";

/// Statement text as sent upstream, with its classification.
#[derive(Debug, Clone)]
pub(super) struct Sql {
    pub(super) text: Arc<str>,
    pub(super) queries: Arc<[QueryInfo]>,
}

/// What one upstream response belongs to.
#[derive(Debug)]
pub(super) enum Expect {
    /// A simple Query: one audit event per statement, completed in order by
    /// the CommandCompletes, all timed at ReadyForQuery.
    Query {
        sql: Sql,
        started: Instant,
        audits: Vec<AuditId>,
        completed: usize,
    },
    Describe {
        statement: bool,
        name: String,
        internal: bool,
    },
    Execute {
        portal: String,
        started: Instant,
    },
    /// Transaction mode: a ParseComplete, BindComplete or CloseComplete the
    /// server will send; `hidden` ones answer Gate's own messages, `parsed`
    /// names the server-side statement a ParseComplete confirms.
    Ack {
        tag: u8,
        hidden: bool,
        parsed: Option<Arc<str>>,
    },
    /// Transaction mode: a response Gate gives itself (a ParseComplete for a
    /// statement the connection already has, a CloseComplete), in its place.
    Answer(u8),
    /// A Sync, with the names of the statements parsed since the previous one.
    Sync {
        started: Instant,
        parsed: Vec<String>,
    },
}

/// What to do with the rows of one result shape.
#[derive(Debug, Clone)]
pub(super) enum ResultPlan {
    Pass,
    Mask(Arc<MaskPlan>),
    Refuse(String),
}

#[derive(Debug)]
pub(super) struct Statement {
    pub(super) sql: Sql,
    pub(super) plan: Option<ResultPlan>,
    /// The Parse's audit events, completed by the statement's first
    /// execution (rows, duration), or when it is closed, replaced or failed.
    pub(super) audits: Vec<AuditId>,
}

/// Session state shared by both directions.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    pub(super) expect: VecDeque<Expect>,
    pub(super) statements: HashMap<String, Statement>,
    pub(super) portals: HashMap<String, (String, Formats)>,
    /// Block markers in flight: the SQLSTATE and message each turns into.
    pub(super) blocked: HashMap<u64, (&'static str, String)>,
    /// Names of the statements parsed since the last Sync.
    pub(super) unsynced: Vec<String>,
    /// Plan of the simple-query result being streamed.
    pub(super) current: Option<ResultPlan>,
    /// Transaction status of the last ReadyForQuery (`I`, `T`, `E`).
    pub(super) last_status: u8,
    /// Transaction mode: the client's named prepared statements, by name.
    pub(super) prepared: HashMap<String, super::prepared::StatementKey>,
    /// Transaction mode: server-side statements whose Parse failed.
    pub(super) failed_parses: Vec<Arc<str>>,
    /// Recent result plans by shape (see [`crate::session::results`]).
    pub(super) plans: PlanCache<ResultPlan>,
}

/// Everything a session's messages need.
pub(super) struct Context<'a> {
    pub(super) session: Session<'a>,
    pub(super) shared: &'a Shared,
    pub(super) catalog: Arc<Catalog>,
    pub(super) upstream_user: &'a str,
    pub(super) upstream_db: &'a str,
    pub(super) tracker: Mutex<Tracker>,
    pub(super) next_marker: AtomicU64,
    /// Transaction pooling rules (`None` in session mode).
    pub(super) pooling: Option<Pooling>,
}

/// A transaction-mode session's pooling rules and state.
#[derive(Debug, Default)]
pub(super) struct Pooling {
    /// Pin on session state (`true`) or refuse it with 0A000 (`false`).
    pub(super) pin_on_session_state: bool,
    /// `pool.max_prepared_statements`: per upstream connection.
    pub(super) max_prepared: usize,
    /// What pinned the session to its upstream connection, once something did.
    pub(super) pinned: Mutex<Option<String>>,
    /// The client sent `DISCARD` or `DEALLOCATE`: the statements Gate
    /// prepared on its connection may be gone.
    pub(super) forget_prepared: std::sync::atomic::AtomicBool,
}

impl<'a> Context<'a> {
    pub(super) fn new(
        session: Session<'a>,
        shared: &'a Shared,
        upstream_user: &'a str,
        upstream_db: &'a str,
        pooling: Option<Pooling>,
    ) -> Self {
        let catalog = shared.catalogs.get(&session.resource.name, upstream_db);
        Self {
            session,
            shared,
            catalog,
            upstream_user,
            upstream_db,
            tracker: Mutex::default(),
            next_marker: AtomicU64::new(1),
            pooling,
        }
    }

    /// Whether the upstream is idle: no response outstanding, not in a transaction.
    pub(super) fn idle(&self) -> bool {
        let track = self.track();
        track.expect.is_empty() && matches!(track.last_status, 0 | b'I')
    }

    pub(super) fn track(&self) -> MutexGuard<'_, Tracker> {
        // A poisoned lock only means another thread panicked mid-update; keep going with its state.
        self.tracker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Classify `sql` (kind and tables, from the shared cache by shape).
    pub(super) fn classify(&self, sql: &str) -> Arc<[QueryInfo]> {
        self.shared.statements.classify(sql)
    }

    /// Complete the pending audit events of a statement that will not run
    /// (closed, replaced, failed to parse).
    pub(super) fn settle(&self, statement: Option<Statement>) {
        for audit in statement.map(|s| s.audits).unwrap_or_default() {
            self.session.complete(audit, std::time::Duration::ZERO);
        }
    }

    /// Keep the client's prepared statement `name`, settling the one it
    /// replaces; when Gate's own Describe of it was sent (`described`), its
    /// answer is expected next and the statement is settled at Sync if its
    /// Parse fails.
    pub(super) fn keep_statement(
        &self,
        track: &mut Tracker,
        name: &str,
        sql: Sql,
        audits: Vec<AuditId>,
        described: bool,
    ) {
        if described {
            track.unsynced.push(name.to_owned());
        }
        let replaced = track.statements.insert(
            name.to_owned(),
            Statement {
                sql,
                plan: None,
                audits,
            },
        );
        self.settle(replaced);
        if described {
            track.expect.push_back(Expect::Describe {
                statement: true,
                name: name.to_owned(),
                internal: true,
            });
        }
    }

    /// A block marker statement that will carry `reason` back (a policy refusal, 42501).
    pub(super) fn marker(&self, reason: String) -> String {
        self.marker_with(super::error::REFUSED, reason)
    }

    /// A block marker statement that will come back as ERROR `code` `message`.
    pub(super) fn marker_with(&self, code: &'static str, message: String) -> String {
        let id = self.next_marker.fetch_add(1, Ordering::Relaxed);
        self.track().blocked.insert(id, (code, message));
        format!("{BLOCK_MARKER}{id}")
    }
}
