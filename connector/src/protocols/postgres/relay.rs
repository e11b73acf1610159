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
use gate_policy::{
    Action, OnDerived, PolicyInput, ResponseColumn, ResponseInfo, SessionInput, Stage, Strategy,
    TimeInfo, Verdict,
};

use super::catalog::Catalog;
use super::codec::{self, ErrorFields, Frame};
use super::error::PgError;
use super::rows::{self, Field, Formats, MaskPlan};
use crate::server::Gate;

/// Statement text that fails upstream with a syntax error naming it; its
/// error is replaced by the policy's refusal on the way back.
const BLOCK_MARKER: &str = "gate_policy_block_";
/// Statement kinds after which cached column names may be stale.
const DDL: &[&str] = &["create", "alter", "drop", "comment", "rename"];
/// Functions that turn a whole row (every column, masked ones included) into one value.
const WHOLE_ROW: &[&str] = &[
    "row_to_json",
    "to_json",
    "to_jsonb",
    "json_agg",
    "jsonb_agg",
    "array_agg",
    "hstore",
    "row(",
];

/// What one upstream response belongs to.
#[derive(Debug)]
enum Expect {
    Query {
        sql: Arc<str>,
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
enum ResultPlan {
    Pass,
    Mask(Arc<MaskPlan>),
    Refuse(String),
}

#[derive(Debug)]
struct Statement {
    sql: Arc<str>,
    plan: Option<ResultPlan>,
}

/// Session state shared by both directions.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    expect: VecDeque<Expect>,
    statements: HashMap<String, Statement>,
    portals: HashMap<String, (String, Formats)>,
    blocked: HashMap<u64, String>,
    /// Plan of the simple-query result being streamed.
    current: Option<ResultPlan>,
    /// Transaction status of the last ReadyForQuery (`I`, `T`, `E`).
    last_status: u8,
    /// Recent result plans by shape (see [`plan_key`]), for one second.
    plans: HashMap<(Vec<u8>, String), (ResultPlan, Verdict, Instant)>,
    /// The policy generation the cached plans were made under.
    plans_generation: u64,
}

/// How long a result plan is reused for the same shape.
const PLAN_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// The cache key of a result plan: the RowDescription bytes plus, when every
/// column comes from a table, the statement's kind and tables; when any
/// column is computed, the whole statement text (whether it derives from a
/// masked column depends on the text).
fn plan_key(
    raw: &[u8],
    fields: &[Field],
    sql: &str,
    query: Option<&gate_policy::QueryInfo>,
) -> (Vec<u8>, String) {
    let context = if fields.iter().any(|f| f.table_oid == 0) {
        sql.to_owned()
    } else {
        query
            .map(|q| format!("{}:{}", q.kind, q.tables.join(",")))
            .unwrap_or_else(|| sql.to_owned())
    };
    (raw.to_vec(), context)
}

/// Everything a session's statements need.
pub(super) struct Context<'a> {
    pub(super) gate: &'a Gate,
    pub(super) input: &'a SessionInput,
    pub(super) resource: &'a ResourceConfig,
    pub(super) identity: &'a str,
    pub(super) client: &'a str,
    pub(super) catalog: Arc<Catalog>,
    pub(super) upstream_user: &'a str,
    pub(super) upstream_db: &'a str,
    pub(super) tracker: Mutex<Tracker>,
    /// Recent classifications by statement text: the result stage reuses
    /// what the request stage parsed.
    pub(super) classified: Mutex<HashMap<String, Vec<gate_policy::QueryInfo>>>,
    pub(super) next_marker: AtomicU64,
}

/// What to do with one client message that carries SQL.
enum Plan {
    Forward,
    Rewrite(String),
    Block(String),
}

impl Context<'_> {
    /// Whether the upstream is idle: no response outstanding, not in a transaction.
    pub(super) fn idle(&self) -> bool {
        let track = self.track();
        track.expect.is_empty() && matches!(track.last_status, 0 | b'I')
    }

    fn track(&self) -> std::sync::MutexGuard<'_, Tracker> {
        // A poisoned lock only means another thread panicked mid-update; keep going with its state.
        self.tracker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn audit(&self, kind: &'static str, statement: Option<&str>, verdict: &Verdict) {
        super::session::audit(
            self.gate,
            kind,
            self.identity,
            &self.resource.name,
            self.client,
            statement,
            verdict,
        );
    }

    fn evaluate(&self, stage: Stage, request: PolicyInput) -> Verdict {
        self.gate.evaluate(
            "postgres",
            stage,
            &self.resource.name,
            &self.input.request(stage, &request),
        )
    }

    /// Classify `sql`, evaluate `pre_request` per statement and audit each decision.
    fn classify(&self, sql: &str) -> Vec<gate_policy::QueryInfo> {
        if let Ok(memo) = self.classified.lock()
            && let Some(found) = memo.get(sql)
        {
            return found.clone();
        }
        let statements = self.gate.statements.classify(sql);
        if let Ok(mut memo) = self.classified.lock() {
            if memo.len() >= 128 {
                memo.clear();
            }
            memo.insert(sql.to_owned(), statements.clone());
        }
        statements
    }

    fn plan(&self, sql: &str) -> Plan {
        let statements = self.classify(sql);
        let single = statements.len() == 1;
        let mut plan = Plan::Forward;
        for query in statements {
            let statement = query.statement.clone().unwrap_or_else(|| query.raw.clone());
            if DDL.contains(&query.kind.as_str()) {
                self.catalog.invalidate();
            }
            let copy_out = query.kind == "copy" && statement.to_ascii_uppercase().contains(" TO ");
            let verdict = self.evaluate(
                Stage::PreRequest,
                PolicyInput {
                    time: Some(TimeInfo::now()),
                    query: Some(query.clone()),
                    ..Default::default()
                },
            );
            self.audit("statement", Some(&statement), &verdict);
            if matches!(plan, Plan::Block(_)) {
                continue;
            }
            plan = match verdict.action {
                Action::Block => Plan::Block(verdict.reason.unwrap_or_else(|| "statement refused by policy".into())),
                Action::Rewrite if single => Plan::Rewrite(verdict.query.unwrap_or_default()),
                Action::Rewrite => Plan::Block("a policy rewrite cannot apply to one statement of a multi-statement query".into()),
                _ if copy_out && self.masks_apply(query) => {
                    Plan::Block("COPY ... TO is refused while masking applies to this session (COPY output is not masked)".into())
                }
                _ => plan,
            };
        }
        plan
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
                let sql = match self.plan(codec::parse_query(frame.body())?) {
                    Plan::Forward => {
                        out.extend_from_slice(&frame.raw);
                        codec::parse_query(frame.body())?.to_owned()
                    }
                    Plan::Rewrite(sql) => {
                        codec::put_query(out, &sql);
                        sql
                    }
                    Plan::Block(reason) => {
                        let marker = self.marker(reason);
                        codec::put_query(out, &marker);
                        marker
                    }
                };
                self.track().expect.push_back(Expect::Query {
                    sql: sql.into(),
                    started: Instant::now(),
                });
            }
            b'P' => {
                let parse = codec::parse_parse(frame.body())?;
                let sql = match self.plan(parse.query) {
                    Plan::Forward => {
                        out.extend_from_slice(&frame.raw);
                        parse.query.to_owned()
                    }
                    Plan::Rewrite(sql) => {
                        codec::put_parse_with(out, parse.name, &sql, parse.param_types);
                        sql
                    }
                    Plan::Block(reason) => {
                        let marker = self.marker(reason);
                        codec::put_parse_with(out, parse.name, &marker, &[]);
                        marker
                    }
                };
                codec::put_describe(out, b'S', parse.name);
                let mut track = self.track();
                track.statements.insert(
                    parse.name.to_owned(),
                    Statement {
                        sql: sql.into(),
                        plan: None,
                    },
                );
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
                        self.gate.metrics.observe(
                            "gate_request_duration_seconds",
                            &[("protocol", "postgres"), ("resource", &self.resource.name)],
                            started.elapsed(),
                        );
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

    fn active_plan(&self) -> (ResultPlan, Formats) {
        active_plan(&self.track())
    }

    async fn on_row_description(&self, frame: Frame, out: &mut BytesMut) -> Result<(), PgError> {
        let fields = rows::parse_row_description(frame.body())?;
        enum Target {
            Query(Arc<str>),
            Statement {
                name: String,
                internal: bool,
                sql: Arc<str>,
            },
            Portal {
                sql: Arc<str>,
            },
            Unknown,
        }
        let target = {
            let track = self.track();
            match track.expect.front() {
                Some(Expect::Query { sql, .. }) => Target::Query(sql.clone()),
                Some(Expect::Describe {
                    statement: true,
                    name,
                    internal,
                }) => match track.statements.get(name) {
                    Some(s) => Target::Statement {
                        name: name.clone(),
                        internal: *internal,
                        sql: s.sql.clone(),
                    },
                    None => Target::Unknown,
                },
                Some(Expect::Describe {
                    statement: false,
                    name,
                    ..
                }) => {
                    match track
                        .portals
                        .get(name)
                        .and_then(|(s, _)| track.statements.get(s))
                    {
                        Some(s) => Target::Portal { sql: s.sql.clone() },
                        None => Target::Unknown,
                    }
                }
                _ => Target::Unknown,
            }
        };
        let sql = match &target {
            Target::Query(sql) | Target::Statement { sql, .. } | Target::Portal { sql } => {
                sql.clone()
            }
            Target::Unknown => Arc::from(""),
        };
        let plan = match target {
            Target::Unknown => {
                ResultPlan::Refuse("Gate cannot tell which statement produced this result".into())
            }
            _ => self.result_plan(frame.body(), &fields, &sql).await,
        };
        let mut track = self.track();
        match target {
            Target::Query(_) => {
                match &plan {
                    ResultPlan::Refuse(reason) => refuse(out, reason.clone()),
                    ResultPlan::Mask(mask) => {
                        rows::put_row_description(out, &mask.describe(&fields))
                    }
                    ResultPlan::Pass => out.extend_from_slice(&frame.raw),
                }
                track.current = Some(plan);
            }
            Target::Statement { name, internal, .. } => {
                track.expect.pop_front();
                if !internal {
                    describe(out, &frame, &fields, &plan);
                }
                if let Some(s) = track.statements.get_mut(&name) {
                    s.plan = Some(plan);
                }
            }
            Target::Portal { .. } | Target::Unknown => {
                track.expect.pop_front();
                describe(out, &frame, &fields, &plan);
            }
        }
        Ok(())
    }

    /// Decide how to mask a result of `fields` produced by `sql`; audit
    /// results that are masked or refused.
    async fn result_plan(&self, raw: &[u8], fields: &[Field], sql: &str) -> ResultPlan {
        let query = self.classify(sql).into_iter().next();
        let key = plan_key(raw, fields, sql, query.as_ref());
        let generation = self.gate.live.generation();
        let cached = {
            let mut track = self.track();
            if track.plans_generation != generation {
                track.plans.clear();
                track.plans_generation = generation;
            }
            track.plans.get(&key).cloned()
        };
        let cached = cached
            .filter(|(_, _, at)| at.elapsed() < PLAN_TTL)
            .map(|(p, v, _)| (p, v));
        let (plan, mut verdict) = match cached {
            Some(hit) => hit,
            None => {
                let decided = self.decide_result(fields, sql).await;
                let mut track = self.track();
                if track.plans.len() >= 256 {
                    track.plans.clear();
                }
                track
                    .plans
                    .insert(key, (decided.0.clone(), decided.1.clone(), Instant::now()));
                decided
            }
        };
        match &plan {
            ResultPlan::Pass => {}
            ResultPlan::Mask(_) => self.audit("result", Some(sql), &verdict),
            ResultPlan::Refuse(reason) => {
                verdict.action = Action::Block;
                verdict.reason = Some(reason.clone());
                self.audit("result", Some(sql), &verdict);
            }
        }
        plan
    }

    async fn decide_result(&self, fields: &[Field], sql: &str) -> (ResultPlan, Verdict) {
        let oids: Vec<u32> = fields.iter().map(|f| f.table_oid).collect();
        let tables = match self
            .catalog
            .tables(self.resource, self.upstream_user, self.upstream_db, &oids)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                let reason = format!("Gate could not resolve the result's columns: {e}");
                return (ResultPlan::Refuse(reason), Verdict::refusal());
            }
        };
        let sources: Vec<Option<(String, String)>> = fields
            .iter()
            .map(|f| {
                tables
                    .get(&f.table_oid)
                    .and_then(|t| Some((t.name.clone(), t.columns.get(&f.column)?.clone())))
            })
            .collect();
        let columns = fields
            .iter()
            .zip(&sources)
            .map(|(f, source)| ResponseColumn {
                name: source
                    .as_ref()
                    .map_or_else(|| f.name.clone(), |(_, c)| c.clone()),
                table: source.as_ref().map(|(t, _)| t.clone()),
                type_name: Some(f.type_oid.to_string()),
            })
            .collect();
        let query = self.classify(sql).into_iter().next();
        let verdict = self.evaluate(
            Stage::PostRequest,
            PolicyInput {
                time: Some(TimeInfo::now()),
                query,
                response: Some(ResponseInfo {
                    columns,
                    status: None,
                }),
                ..Default::default()
            },
        );
        if verdict.is_blocked() {
            let reason = verdict
                .reason
                .clone()
                .unwrap_or_else(|| "result refused by policy".into());
            return (ResultPlan::Refuse(reason), verdict);
        }
        if verdict.masks.is_empty() {
            return (ResultPlan::Pass, verdict);
        }
        let lowered = sql.to_ascii_lowercase();
        let mentioned: Vec<Strategy> = verdict
            .masks
            .iter()
            .filter(|m| mentions_word(&lowered, &m.column.to_ascii_lowercase()))
            .map(|m| m.strategy)
            .collect();
        let whole_row = WHOLE_ROW.iter().any(|f| lowered.contains(f));
        let strongest_all = verdict.masks.iter().map(|m| m.strategy).max();
        let mut plan = MaskPlan {
            columns: Vec::with_capacity(fields.len()),
            types: fields.iter().map(|f| f.type_oid).collect(),
        };
        for (field, source) in fields.iter().zip(&sources) {
            let strategy = match source {
                Some((table, column)) => verdict
                    .masks
                    .iter()
                    .filter(|m| m.column == *column && m.table.as_ref().is_none_or(|t| t == table))
                    .map(|m| m.strategy)
                    .max(),
                // Computed outputs: masked if they may derive from a masked column.
                None => {
                    let derived = if whole_row {
                        strongest_all
                    } else {
                        mentioned.iter().copied().max()
                    };
                    match (derived, verdict.on_derived) {
                        (None, _) => None,
                        (Some(_), OnDerived::Block) => {
                            let reason = format!(
                                "column \"{}\" is computed from a masked column (on_derived: block)",
                                field.name
                            );
                            return (ResultPlan::Refuse(reason), verdict);
                        }
                        (Some(s), OnDerived::Mask) => Some(s),
                    }
                }
            };
            plan.columns.push(strategy);
        }
        if plan.columns.contains(&Some(Strategy::Hash)) && self.gate.masking_key.is_none() {
            let reason =
                "the hash masking strategy needs masking.hash_key to be configured".to_owned();
            return (ResultPlan::Refuse(reason), verdict);
        }
        let plan = if plan.masks_anything() {
            ResultPlan::Mask(Arc::new(plan))
        } else {
            ResultPlan::Pass
        };
        (plan, verdict)
    }
}

/// The plan and formats for the rows arriving now.
fn active_plan(track: &Tracker) -> (ResultPlan, Formats) {
    match track.expect.front() {
        Some(Expect::Execute { portal }) => match track.portals.get(portal) {
            Some((statement, formats)) => {
                match track.statements.get(statement).and_then(|s| s.plan.clone()) {
                    Some(plan) => (plan, formats.clone()),
                    None => (
                        ResultPlan::Refuse(
                            "Gate does not know the columns of this statement".into(),
                        ),
                        Formats::default(),
                    ),
                }
            }
            None => (
                ResultPlan::Refuse("Gate does not know this portal".into()),
                Formats::default(),
            ),
        },
        Some(Expect::Query { .. }) => (
            track.current.clone().unwrap_or(ResultPlan::Pass),
            Formats::default(),
        ),
        _ => (
            ResultPlan::Refuse("rows arrived that Gate did not expect".into()),
            Formats::default(),
        ),
    }
}

fn describe(out: &mut BytesMut, frame: &Frame, fields: &[Field], plan: &ResultPlan) {
    match plan {
        ResultPlan::Mask(mask) => rows::put_row_description(out, &mask.describe(fields)),
        _ => out.extend_from_slice(&frame.raw),
    }
}

fn refuse(out: &mut BytesMut, reason: String) {
    codec::put_error(
        out,
        &ErrorFields {
            severity: "ERROR",
            code: "42501",
            message: reason,
        },
    );
}

/// Whether `word` occurs in `text` as a whole identifier.
fn mentions_word(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
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

#[cfg(test)]
mod tests {
    use super::mentions_word;

    #[test]
    fn whole_identifier_mentions() {
        assert!(mentions_word("select lower(email) from t", "email"));
        assert!(mentions_word("select email||'' from t", "email"));
        assert!(!mentions_word("select email_verified from t", "email"));
        assert!(!mentions_word("select myemail from t", "email"));
    }
}
