//! The statement loop: client messages are checked against `pre_request`
//! and forwarded; upstream responses are tracked message by message so every
//! result is masked under the plan for its shape (`post_request`).
//!
//! Gate follows each result back to what produced it: a simple Query, or an
//! Execute of a portal bound to a prepared statement. After every Parse Gate
//! sends its own Describe of the statement (its answer is swallowed), so the
//! row shape of every prepared statement is known before it runs. A result
//! whose shape is unknown, or whose plan refuses it, never reaches the client.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::BytesMut;
use gate_config::connector::ResourceConfig;
use gate_policy::{Action, PolicyInput, QueryInfo, Reuse, SessionInput, Stage, TimeInfo, Verdict};

use super::catalog::Catalog;
use super::codec::{self, Frame};
use super::deferred::{AuditText, Deferred};
use super::error::PgError;
use super::results::{CachedPlan, active_plan, refuse};
use super::rows::{self, Formats, MaskPlan};
use crate::audit::Parties;
use crate::fasthash::PrehashedMap;
use crate::server::Gate;
use crate::verdicts::VerdictCache;

/// Statement text that fails upstream with a syntax error naming it; its
/// error is replaced by the policy's refusal on the way back.
const BLOCK_MARKER: &str = "gate_policy_block_";
/// Statement kinds after which cached column names may be stale.
const DDL: &[&str] = &["create", "alter", "drop", "comment", "rename"];
/// Statement text as sent upstream, with its classification.
#[derive(Debug, Clone)]
pub(super) struct Sql {
    pub(super) text: Arc<str>,
    pub(super) queries: Arc<[QueryInfo]>,
}

/// What one upstream response belongs to.
#[derive(Debug)]
pub(super) enum Expect {
    Query {
        sql: Sql,
        started: Instant,
    },
    Describe {
        statement: bool,
        name: String,
        internal: bool,
    },
    Execute {
        portal: String,
    },
    Sync {
        started: Instant,
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
}

/// Session state shared by both directions.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    pub(super) expect: VecDeque<Expect>,
    pub(super) statements: HashMap<String, Statement>,
    pub(super) portals: HashMap<String, (String, Formats)>,
    pub(super) blocked: HashMap<u64, String>,
    /// Plan of the simple-query result being streamed.
    pub(super) current: Option<ResultPlan>,
    /// Transaction status of the last ReadyForQuery (`I`, `T`, `E`).
    pub(super) last_status: u8,
    /// Recent result plans by shape, for one second (see `results::CachedPlan`).
    pub(super) plans: PrehashedMap<CachedPlan>,
    /// The policy generation the cached plans were made under.
    pub(super) plans_generation: u64,
    /// How plans may be reused under that generation (`results::plan_reuse`).
    pub(super) plans_reuse: Option<Option<(bool, Reuse)>>,
}

/// Everything a session's statements need.
pub(super) struct Context<'a> {
    pub(super) gate: &'a Gate,
    pub(super) input: &'a SessionInput,
    pub(super) resource: &'a ResourceConfig,
    /// Who this session's audit events are about.
    pub(super) parties: &'a Parties,
    pub(super) catalog: Arc<Catalog>,
    pub(super) upstream_user: &'a str,
    pub(super) upstream_db: &'a str,
    pub(super) tracker: Mutex<Tracker>,
    pub(super) next_marker: AtomicU64,
    /// Reusable `pre_request` verdicts by statement shape.
    pub(super) verdicts: Mutex<VerdictCache>,
    /// Audit events and durations waiting for the next write (see `deferred`).
    pub(super) deferred: Mutex<Deferred>,
}

/// What to do with one client message that carries SQL.
enum Plan {
    Forward,
    Rewrite(String),
    Block(String),
}

/// No classification (the text Gate sends instead of a blocked statement).
fn unclassified() -> Arc<[QueryInfo]> {
    Arc::from(Vec::new())
}

impl Context<'_> {
    /// Whether the upstream is idle: no response outstanding, not in a transaction.
    pub(super) fn idle(&self) -> bool {
        let track = self.track();
        track.expect.is_empty() && matches!(track.last_status, 0 | b'I')
    }

    pub(super) fn track(&self) -> std::sync::MutexGuard<'_, Tracker> {
        // A poisoned lock only means another thread panicked mid-update; keep going with its state.
        self.tracker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn evaluate(&self, stage: Stage, request: PolicyInput) -> Verdict {
        self.gate.evaluate(
            "postgres",
            stage,
            &self.resource.name,
            &self.input.request(stage, &request),
        )
    }

    /// Classify `sql` (kind and tables, from the shared cache by shape).
    pub(super) fn classify(&self, sql: &str) -> Arc<[QueryInfo]> {
        self.gate.statements.classify(sql)
    }

    /// Classify `sql`, evaluate `pre_request` per statement and audit each
    /// decision; also returns the classification.
    fn plan(&self, sql: &str) -> (Plan, Arc<[QueryInfo]>) {
        let statements = self.classify(sql);
        let single = statements.len() == 1;
        let mut plan = Plan::Forward;
        for (i, query) in statements.iter().enumerate() {
            let statement = query.statement.as_deref().unwrap_or(&query.raw);
            if DDL.contains(&query.kind.as_str()) {
                self.catalog.invalidate();
            }
            let copy_out = query.kind == "copy" && statement.to_ascii_uppercase().contains(" TO ");
            let verdict = self.pre_request(query);
            self.audit(
                "statement",
                AuditText::Query(statements.clone(), i),
                &verdict,
            );
            if matches!(plan, Plan::Block(_)) {
                continue;
            }
            plan = match verdict.action {
                Action::Block => Plan::Block(verdict.reason.clone().unwrap_or_else(|| "statement refused by policy".into())),
                Action::Rewrite if single => Plan::Rewrite(verdict.query.clone().unwrap_or_default()),
                Action::Rewrite => Plan::Block("a policy rewrite cannot apply to one statement of a multi-statement query".into()),
                _ if copy_out && self.masks_apply(query.clone()) => {
                    Plan::Block("COPY ... TO is refused while masking applies to this session (COPY output is not masked)".into())
                }
                _ => plan,
            };
        }
        (plan, statements)
    }

    /// The `pre_request` verdict for one statement, reused for statements of
    /// the same shape when the policies allow it (see [`crate::verdicts`]).
    fn pre_request(&self, query: &gate_policy::QueryInfo) -> Arc<Verdict> {
        let mut verdicts = self
            .verdicts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        verdicts.verdict(
            self.gate,
            "postgres",
            &self.resource.name,
            Stage::PreRequest,
            query,
            || {
                self.evaluate(
                    Stage::PreRequest,
                    PolicyInput {
                        time: Some(TimeInfo::now()),
                        query: Some(query.clone()),
                        ..Default::default()
                    },
                )
            },
        )
    }

    fn masks_apply(&self, query: gate_policy::QueryInfo) -> bool {
        let verdict = self.evaluate(
            Stage::PostRequest,
            PolicyInput {
                time: Some(TimeInfo::now()),
                query: Some(query),
                ..Default::default()
            },
        );
        verdict.is_blocked() || !verdict.masks.is_empty()
    }

    fn marker(&self, reason: String) -> String {
        let id = self.next_marker.fetch_add(1, Ordering::Relaxed);
        self.track().blocked.insert(id, reason);
        format!("{BLOCK_MARKER}{id}")
    }

    /// Append what goes upstream for one client frame.
    pub(super) fn relay_client_frame(
        &self,
        frame: &Frame,
        out: &mut BytesMut,
    ) -> Result<(), PgError> {
        match frame.tag {
            b'Q' => {
                let text = codec::parse_query(frame.body())?;
                let sql = match self.plan(text) {
                    (Plan::Forward, queries) => {
                        out.extend_from_slice(&frame.raw);
                        Sql {
                            text: text.into(),
                            queries,
                        }
                    }
                    (Plan::Rewrite(sql), _) => {
                        codec::put_query(out, &sql);
                        Sql {
                            queries: self.classify(&sql),
                            text: sql.into(),
                        }
                    }
                    (Plan::Block(reason), _) => {
                        let marker = self.marker(reason);
                        codec::put_query(out, &marker);
                        Sql {
                            text: marker.into(),
                            queries: unclassified(),
                        }
                    }
                };
                self.track().expect.push_back(Expect::Query {
                    sql,
                    started: Instant::now(),
                });
            }
            b'P' => {
                let parse = codec::parse_parse(frame.body())?;
                let sql = match self.plan(parse.query) {
                    (Plan::Forward, queries) => {
                        out.extend_from_slice(&frame.raw);
                        Sql {
                            text: parse.query.into(),
                            queries,
                        }
                    }
                    (Plan::Rewrite(sql), _) => {
                        codec::put_parse_with(out, parse.name, &sql, parse.param_types);
                        Sql {
                            queries: self.classify(&sql),
                            text: sql.into(),
                        }
                    }
                    (Plan::Block(reason), _) => {
                        let marker = self.marker(reason);
                        codec::put_parse_with(out, parse.name, &marker, &[]);
                        Sql {
                            text: marker.into(),
                            queries: unclassified(),
                        }
                    }
                };
                codec::put_describe(out, b'S', parse.name);
                let mut track = self.track();
                track
                    .statements
                    .insert(parse.name.to_owned(), Statement { sql, plan: None });
                track.expect.push_back(Expect::Describe {
                    statement: true,
                    name: parse.name.to_owned(),
                    internal: true,
                });
            }
            b'B' => {
                let bind = codec::parse_bind(frame.body())?;
                self.track().portals.insert(
                    bind.portal.to_owned(),
                    (bind.statement.to_owned(), Formats(bind.result_formats)),
                );
                out.extend_from_slice(&frame.raw);
            }
            b'D' => {
                let (kind, name) = codec::parse_target(frame.body())?;
                self.track().expect.push_back(Expect::Describe {
                    statement: kind == b'S',
                    name: name.to_owned(),
                    internal: false,
                });
                out.extend_from_slice(&frame.raw);
            }
            b'E' => {
                let portal = codec::Reader::new(frame.body()).cstr()?.to_owned();
                self.track().expect.push_back(Expect::Execute { portal });
                out.extend_from_slice(&frame.raw);
            }
            b'S' => {
                self.track().expect.push_back(Expect::Sync {
                    started: Instant::now(),
                });
                out.extend_from_slice(&frame.raw);
            }
            b'C' => {
                let (kind, name) = codec::parse_target(frame.body())?;
                let mut track = self.track();
                if kind == b'S' {
                    track.statements.remove(name);
                } else {
                    track.portals.remove(name);
                }
                out.extend_from_slice(&frame.raw);
            }
            _ => out.extend_from_slice(&frame.raw),
        }
        Ok(())
    }

    /// Append what goes to the client for one upstream frame.
    pub(super) async fn relay_upstream_frame(
        &self,
        frame: Frame,
        out: &mut BytesMut,
    ) -> Result<(), PgError> {
        match frame.tag {
            b'T' => self.on_row_description(frame, out).await,
            b'n' | b't' => {
                let mut track = self.track();
                let internal = matches!(
                    track.expect.front(),
                    Some(Expect::Describe { internal: true, .. })
                );
                // NoData ends a Describe: the statement returns no rows.
                let ends_describe = frame.tag == b'n'
                    && matches!(track.expect.front(), Some(Expect::Describe { .. }));
                if ends_describe
                    && let Some(Expect::Describe {
                        statement: true,
                        name,
                        ..
                    }) = track.expect.pop_front()
                    && let Some(s) = track.statements.get_mut(&name)
                {
                    s.plan = Some(ResultPlan::Pass);
                }
                if !internal {
                    out.extend_from_slice(&frame.raw);
                }
                Ok(())
            }
            b'D' => {
                let (plan, formats) = self.active_plan();
                match plan {
                    ResultPlan::Pass => out.extend_from_slice(&frame.raw),
                    ResultPlan::Mask(plan) => rows::mask_data_row(
                        frame.body(),
                        &plan,
                        &formats,
                        self.gate.masking_key.as_ref(),
                        out,
                    )?,
                    ResultPlan::Refuse(_) => {}
                }
                Ok(())
            }
            b'C' | b's' | b'I' => {
                let mut track = self.track();
                match track.expect.front() {
                    Some(Expect::Execute { .. }) => {
                        let plan = active_plan(&track).0;
                        track.expect.pop_front();
                        match plan {
                            ResultPlan::Refuse(reason) if frame.tag != b'I' => refuse(out, reason),
                            _ => out.extend_from_slice(&frame.raw),
                        }
                    }
                    _ => match track.current.take() {
                        Some(ResultPlan::Refuse(_)) => {} // the error went out instead of the RowDescription
                        _ => out.extend_from_slice(&frame.raw),
                    },
                }
                Ok(())
            }
            b'E' => {
                let mut track = self.track();
                track.current = None;
                // The server skips to the next Sync after an error.
                while matches!(
                    track.expect.front(),
                    Some(Expect::Describe { .. } | Expect::Execute { .. })
                ) {
                    track.expect.pop_front();
                }
                let replacement = blocked_reason(&frame, &mut track.blocked)?;
                match replacement {
                    Some(reason) => refuse(out, reason),
                    None => out.extend_from_slice(&frame.raw),
                }
                Ok(())
            }
            b'Z' => {
                let mut track = self.track();
                track.current = None;
                track.last_status = frame.body().first().copied().unwrap_or(b'E');
                while let Some(e) = track.expect.pop_front() {
                    if let Expect::Sync { started } | Expect::Query { started, .. } = e {
                        self.record_duration(started.elapsed());
                        break;
                    }
                }
                out.extend_from_slice(&frame.raw);
                Ok(())
            }
            _ => {
                out.extend_from_slice(&frame.raw);
                Ok(())
            }
        }
    }
}

/// The policy reason for an upstream error caused by a block marker.
fn blocked_reason(
    frame: &Frame,
    blocked: &mut HashMap<u64, String>,
) -> Result<Option<String>, PgError> {
    if blocked.is_empty() {
        return Ok(None);
    }
    let (_, message) = codec::parse_error(frame.body())?;
    let Some(at) = message.find(BLOCK_MARKER) else {
        return Ok(None);
    };
    let digits: String = message[at + BLOCK_MARKER.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Ok(digits
        .parse::<u64>()
        .ok()
        .and_then(|id| blocked.remove(&id)))
}
