//! The result side of the statement loop: each RowDescription gets a plan (`post_request`)
//! for its shape: pass, mask (re-described as text), or refuse; plans are cached per shape.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use gate_policy::{
    Action, OnDerived, PolicyInput, ResponseColumn, ResponseInfo, Stage, Strategy, TimeInfo,
    Verdict,
};

use super::codec::{self, ErrorFields, Frame};
use super::error::PgError;
use super::relay::{Context, Expect, ResultPlan, Tracker};
use super::rows::{self, Field, Formats, MaskPlan};

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

impl Context<'_> {
    pub(super) fn active_plan(&self) -> (ResultPlan, Formats) {
        active_plan(&self.track())
    }

    pub(super) async fn on_row_description(
        &self,
        frame: Frame,
        out: &mut BytesMut,
    ) -> Result<(), PgError> {
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

fn describe(out: &mut BytesMut, frame: &Frame, fields: &[Field], plan: &ResultPlan) {
    match plan {
        ResultPlan::Mask(mask) => rows::put_row_description(out, &mask.describe(fields)),
        _ => out.extend_from_slice(&frame.raw),
    }
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
