//! The result side of the statement loop: each RowDescription gets a plan (`post_request`)
//! for its shape: pass, mask (re-described as text), or refuse; plans are cached per shape.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use gate_policy::{
    Action, OnDerived, PolicyInput, QueryInfo, ResponseColumn, ResponseInfo, Reuse, Stage,
    Strategy, TimeInfo, Verdict,
};

use super::codec::{self, ErrorFields, Frame};
use super::deferred::AuditText;
use super::error::PgError;
use super::relay::{Context, Expect, ResultPlan, Sql, Tracker};
use super::rows::{self, Field, Formats, MaskPlan};
use crate::fasthash::FastHasher;
use crate::verdicts;

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

/// How long a result plan is reused for the same shape.
const PLAN_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// Result shapes remembered per session.
const PLAN_CAPACITY: usize = 256;

/// What, besides the RowDescription, a cached result plan is keyed by.
#[derive(Debug)]
enum PlanContext {
    /// The whole statement text: some column is computed (whether it derives
    /// from a masked column depends on the text), or the policies read the text.
    Text(Arc<str>),
    /// The statement's shape (kind, tables, …; see [`verdicts::SHAPE`]).
    Shape(Option<Box<QueryInfo>>),
}

/// A result plan remembered for one result shape.
#[derive(Debug)]
pub(super) struct CachedPlan {
    description: Vec<u8>,
    context: PlanContext,
    second: Option<i64>,
    plan: ResultPlan,
    verdict: Arc<Verdict>,
    at: Instant,
}

/// How result plans may be reused under the policies in force: keyed by
/// shape or by text, and whether within one wall-clock second only; `None`
/// when `post_request` must run for every result.
pub(super) fn plan_reuse(
    engine: &gate_policy::PolicyEngine,
    resource: &str,
) -> Option<(bool, Reuse)> {
    let by_shape: Vec<&str> = verdicts::SHAPE
        .iter()
        .copied()
        .chain(["response"])
        .collect();
    match engine.reuse(Stage::PostRequest, resource, &by_shape) {
        Reuse::Never => {}
        reuse => return Some((false, reuse)),
    }
    let by_text: Vec<&str> = by_shape
        .iter()
        .copied()
        .chain(["query.raw", "query.statement"])
        .collect();
    match engine.reuse(Stage::PostRequest, resource, &by_text) {
        Reuse::Never => None,
        reuse => Some((true, reuse)),
    }
}

/// The hash of a plan's key: the RowDescription, the statement text (`by_text`) or shape, the second.
fn hash_plan_key(
    description: &[u8],
    by_text: bool,
    text: &str,
    query: Option<&QueryInfo>,
    second: Option<i64>,
) -> u64 {
    let mut h = FastHasher::default();
    description.hash(&mut h);
    match (by_text, query) {
        (true, _) => text.hash(&mut h),
        (false, Some(q)) => verdicts::hash_shape(q, &mut h),
        (false, None) => {}
    }
    second.hash(&mut h);
    h.finish()
}

fn same_context(
    cached: &PlanContext,
    text: &str,
    query: Option<&QueryInfo>,
    by_text: bool,
) -> bool {
    match (cached, by_text, query) {
        (PlanContext::Text(t), true, _) => **t == *text,
        (PlanContext::Shape(Some(a)), false, Some(b)) => verdicts::same_shape(a, b),
        (PlanContext::Shape(None), false, None) => true,
        _ => false,
    }
}

impl Context<'_> {
    pub(super) fn active_plan(&self) -> (ResultPlan, Formats) {
        active_plan(&self.track())
    }

    pub(super) async fn on_row_description(
        &self,
        frame: Frame,
        out: &mut BytesMut,
    ) -> Result<(), PgError> {
        // The column names are only needed to decide a new plan or to
        // re-describe masked columns, not for a cached plan.
        let computed = rows::any_computed_column(frame.body())?;
        enum Target {
            Query(Sql),
            Statement {
                name: String,
                internal: bool,
                sql: Sql,
            },
            Portal {
                sql: Sql,
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
        let plan = match &target {
            Target::Query(sql) | Target::Statement { sql, .. } | Target::Portal { sql } => {
                self.result_plan(frame.body(), computed, sql).await?
            }
            Target::Unknown => {
                ResultPlan::Refuse("Gate cannot tell which statement produced this result".into())
            }
        };
        let mut track = self.track();
        match target {
            Target::Query(_) => {
                match &plan {
                    ResultPlan::Refuse(reason) => refuse(out, reason.clone()),
                    ResultPlan::Mask(mask) => rows::put_row_description(
                        out,
                        &mask.describe(&rows::parse_row_description(frame.body())?),
                    ),
                    ResultPlan::Pass => out.extend_from_slice(&frame.raw),
                }
                track.current = Some(plan);
            }
            Target::Statement { name, internal, .. } => {
                track.expect.pop_front();
                if !internal {
                    describe(out, &frame, &plan)?;
                }
                if let Some(s) = track.statements.get_mut(&name) {
                    s.plan = Some(plan);
                }
            }
            Target::Portal { .. } | Target::Unknown => {
                track.expect.pop_front();
                describe(out, &frame, &plan)?;
            }
        }
        Ok(())
    }

    /// Decide how to mask a result of `fields` produced by `sql`; audit
    /// results that are masked or refused.
    async fn result_plan(
        &self,
        raw: &[u8],
        computed: bool,
        sql: &Sql,
    ) -> Result<ResultPlan, PgError> {
        let query = sql.queries.first();
        let generation = self.gate.live.generation();
        // The cache key, when the policies in force allow reuse at all.
        let key = {
            let mut track = self.track();
            if track.plans_generation != generation || track.plans_reuse.is_none() {
                track.plans.clear();
                track.plans_generation = generation;
                track.plans_reuse = Some(plan_reuse(&self.gate.live.engine(), &self.resource.name));
            }
            track.plans_reuse.flatten().map(|(by_text, reuse)| {
                let by_text = by_text || computed;
                let second =
                    (reuse == Reuse::WithinSecond).then(|| TimeInfo::now().unix_ns / 1_000_000_000);
                let hash = hash_plan_key(raw, by_text, &sql.text, query, second);
                (hash, second, by_text)
            })
        };
        let cached = key.as_ref().and_then(|(hash, second, by_text)| {
            let track = self.track();
            let hit = track.plans.get(hash)?;
            (hit.description == raw
                && hit.second == *second
                && hit.at.elapsed() < PLAN_TTL
                && same_context(&hit.context, &sql.text, query, *by_text))
            .then(|| (hit.plan.clone(), hit.verdict.clone()))
        });
        let (plan, verdict) = match cached {
            Some(hit) => hit,
            None => {
                let fields = rows::parse_row_description(raw)?;
                let (plan, verdict, cacheable) = self.decide_result(&fields, sql).await;
                let verdict = Arc::new(verdict);
                if let Some((hash, second, by_text)) = key
                    && cacheable
                    && verdict.errors.is_empty()
                {
                    let context = if by_text {
                        PlanContext::Text(sql.text.clone())
                    } else {
                        PlanContext::Shape(query.map(|q| Box::new(verdicts::shape_of(q))))
                    };
                    let mut track = self.track();
                    if track.plans.len() >= PLAN_CAPACITY {
                        track.plans.clear();
                    }
                    track.plans.insert(
                        hash,
                        CachedPlan {
                            description: raw.to_vec(),
                            context,
                            second,
                            plan: plan.clone(),
                            verdict: verdict.clone(),
                            at: Instant::now(),
                        },
                    );
                }
                (plan, verdict)
            }
        };
        match &plan {
            ResultPlan::Pass => {}
            ResultPlan::Mask(_) => {
                self.audit("result", AuditText::Text(sql.text.clone()), &verdict);
            }
            ResultPlan::Refuse(reason) => {
                let mut refused = (*verdict).clone();
                refused.action = Action::Block;
                refused.reason = Some(reason.clone());
                self.audit(
                    "result",
                    AuditText::Text(sql.text.clone()),
                    &Arc::new(refused),
                );
            }
        }
        Ok(plan)
    }

    /// The plan for a result, its verdict, and whether it may be cached (not
    /// when the catalog could not be read).
    async fn decide_result(&self, fields: &[Field], sql: &Sql) -> (ResultPlan, Verdict, bool) {
        let oids: Vec<u32> = fields.iter().map(|f| f.table_oid).collect();
        let tables = match self
            .catalog
            .tables(self.resource, self.upstream_user, self.upstream_db, &oids)
            .await
        {
            Ok(t) => t,
            Err(e) => {
                let reason = format!("Gate could not resolve the result's columns: {e}");
                return (ResultPlan::Refuse(reason), Verdict::refusal(), false);
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
        let query = sql.queries.first().cloned();
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
            return (ResultPlan::Refuse(reason), verdict, true);
        }
        if verdict.masks.is_empty() {
            return (ResultPlan::Pass, verdict, true);
        }
        let lowered = sql.text.to_ascii_lowercase();
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
                            return (ResultPlan::Refuse(reason), verdict, true);
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
            return (ResultPlan::Refuse(reason), verdict, true);
        }
        let plan = if plan.masks_anything() {
            ResultPlan::Mask(Arc::new(plan))
        } else {
            ResultPlan::Pass
        };
        (plan, verdict, true)
    }
}

/// The plan and formats for the rows arriving now.
pub(super) fn active_plan(track: &Tracker) -> (ResultPlan, Formats) {
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

fn describe(out: &mut BytesMut, frame: &Frame, plan: &ResultPlan) -> Result<(), PgError> {
    match plan {
        ResultPlan::Mask(mask) => rows::put_row_description(
            out,
            &mask.describe(&rows::parse_row_description(frame.body())?),
        ),
        _ => out.extend_from_slice(&frame.raw),
    }
    Ok(())
}

pub(super) fn refuse(out: &mut BytesMut, reason: String) {
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
