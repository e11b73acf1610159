//! The result side of the statement loop: each RowDescription gets a plan
//! for its shape from the session layer (`post_request`, plan cache,
//! masking decision): pass, mask (re-described as text), or refuse. Gate
//! follows each result back to what produced it; a result whose statement
//! or columns Gate cannot tell is refused.

use std::sync::Arc;

use bytes::BytesMut;
use gate_policy::{ResponseColumn, Strategy, Verdict};

use super::codec::Frame;
use super::error::{self, PgError};
use super::rows::{self, Field, Formats, MaskPlan};
use super::state::{Context, Expect, ResultPlan, Sql, Tracker};
use super::taint;
use crate::session::AuditId;
use crate::session::masking::{self, ColumnPlan, OutputColumn};
use crate::session::results::{ResultOutcome, ResultShape};

/// Which statement a RowDescription describes.
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

impl Context<'_> {
    pub(super) async fn on_row_description(
        &self,
        frame: Frame,
        out: &mut BytesMut,
    ) -> Result<(), PgError> {
        // The column names are only needed to decide a new plan or to
        // re-describe masked columns, not for a cached plan.
        let computed = rows::any_computed_column(frame.body())?;
        let (target, request) = self.target();
        let plan = match &target {
            Target::Query(sql) | Target::Statement { sql, .. } | Target::Portal { sql } => {
                self.result_plan(frame.body(), computed, sql, request)
                    .await?
            }
            Target::Unknown => {
                ResultPlan::Refuse("Gate cannot tell which statement produced this result".into())
            }
        };
        let mut track = self.track();
        match target {
            Target::Query(_) => {
                match &plan {
                    ResultPlan::Refuse(reason) => error::put_refusal(out, reason.clone()),
                    _ => describe(out, &frame, &plan)?,
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

    /// The statement a RowDescription describes, and the request (audit
    /// event) it belongs to.
    fn target(&self) -> (Target, Option<AuditId>) {
        let track = self.track();
        let first = |name: &str| {
            track
                .statements
                .get(name)
                .and_then(|s| s.audits.first().copied())
        };
        let request = match track.expect.front() {
            Some(Expect::Query {
                audits, completed, ..
            }) => audits.get(*completed).copied(),
            Some(Expect::Describe {
                statement: true,
                name,
                ..
            }) => first(name),
            Some(Expect::Describe {
                statement: false,
                name,
                ..
            }) => track.portals.get(name).and_then(|(s, _)| first(s)),
            _ => None,
        };
        let target = match track.expect.front() {
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
            }) => match track
                .portals
                .get(name)
                .and_then(|(s, _)| track.statements.get(s))
            {
                Some(s) => Target::Portal { sql: s.sql.clone() },
                None => Target::Unknown,
            },
            _ => Target::Unknown,
        };
        (target, request)
    }

    /// Decide how to mask a result described by `raw` produced by `sql`
    /// (from the session's plan cache when it may be reused); audit results
    /// that are masked or refused; the action goes on `request`'s span.
    async fn result_plan(
        &self,
        raw: &[u8],
        computed: bool,
        sql: &Sql,
        request: Option<AuditId>,
    ) -> Result<ResultPlan, PgError> {
        let shape = ResultShape {
            description: raw,
            computed,
            text: &sql.text,
            query: sql.queries.first(),
        };
        let cached = self.track().plans.get(&self.session, &shape);
        let (plan, verdict) = match cached {
            Ok(hit) => hit,
            Err(slot) => {
                let fields = rows::parse_row_description(raw)?;
                let (plan, verdict, cacheable) = self.decide_result(&fields, sql).await;
                let verdict = Arc::new(verdict);
                if let Some(slot) = slot.filter(|_| cacheable) {
                    self.track()
                        .plans
                        .put(slot, &shape, plan.clone(), verdict.clone());
                }
                (plan, verdict)
            }
        };
        let outcome = match &plan {
            ResultPlan::Pass => ResultOutcome::Pass,
            ResultPlan::Mask(_) => ResultOutcome::Mask,
            ResultPlan::Refuse(reason) => ResultOutcome::Refuse(reason),
        };
        self.session
            .result_decided(request, &sql.text, &verdict, outcome);
        Ok(plan)
    }

    /// The plan for a result, its verdict, and whether it may be cached (not
    /// when the catalog could not be read).
    async fn decide_result(&self, fields: &[Field], sql: &Sql) -> (ResultPlan, Verdict, bool) {
        let oids: Vec<u32> = fields.iter().map(|f| f.table_oid).collect();
        let tables = match self
            .catalog
            .tables(
                self.session.resource,
                self.upstream_user,
                self.upstream_db,
                &oids,
            )
            .await
        {
            Ok(t) => t,
            Err(e) => {
                let reason = format!("Gate could not resolve the result's columns: {e}");
                return (ResultPlan::Refuse(reason), Verdict::refusal(), false);
            }
        };
        let sources: Vec<Option<(&str, &str)>> = fields
            .iter()
            .map(|f| {
                let table = tables.get(&f.table_oid)?;
                Some((table.name.as_str(), table.columns.get(&f.column)?.as_str()))
            })
            .collect();
        let columns = fields
            .iter()
            .zip(&sources)
            .map(|(f, source)| ResponseColumn {
                name: source.map_or_else(|| f.name.clone(), |(_, c)| c.to_owned()),
                table: source.map(|(t, _)| t.to_owned()),
                type_name: Some(f.type_oid.to_string()),
            })
            .collect();
        let verdict = self
            .session
            .post_request(sql.queries.first().cloned(), columns);
        let computed = if verdict.masks.is_empty() {
            None
        } else {
            match self.computed_derived(&verdict, &sources, sql).await {
                Ok(derived) => derived,
                Err(reason) => return (ResultPlan::Refuse(reason), verdict, false),
            }
        };
        let outputs: Vec<OutputColumn<'_>> = fields
            .iter()
            .zip(&sources)
            .map(|(f, source)| {
                let view_of = tables.get(&f.table_oid).and_then(|t| t.view_of.as_ref());
                OutputColumn {
                    name: &f.name,
                    source: *source,
                    derived: match (source, view_of) {
                        (None, _) => computed,
                        (Some(_), Some(base)) => view_derived(&verdict, base),
                        (Some(_), None) => None,
                    },
                }
            })
            .collect();
        let plan = match masking::plan_columns(
            &verdict,
            &outputs,
            self.session.gate.masking_key.is_some(),
        ) {
            ColumnPlan::Pass => ResultPlan::Pass,
            ColumnPlan::Refuse(reason) => ResultPlan::Refuse(reason),
            ColumnPlan::Mask(columns) => ResultPlan::Mask(Arc::new(MaskPlan {
                columns,
                types: fields.iter().map(|f| f.type_oid).collect(),
            })),
        };
        (plan, verdict, true)
    }
}

impl Context<'_> {
    /// The strongest mask a computed column of this result may carry: every
    /// mask when the statement cannot be parsed, calls a user-defined
    /// function, or uses whole rows of a table with masked columns; none when
    /// it reads no such table; else the masks of the columns it names. `Err`
    /// is the refusal when the catalog cannot be read.
    async fn computed_derived(
        &self,
        verdict: &Verdict,
        sources: &[Option<(&str, &str)>],
        sql: &Sql,
    ) -> Result<Option<Strategy>, String> {
        // (A whole-row reference names its table with column number 0: no source either.)
        if sources.iter().all(Option::is_some) {
            return Ok(None);
        }
        let taint = taint::analyze(&sql.text);
        if taint.unparsed {
            return Ok(masking::strongest(verdict));
        }
        let masked: Vec<String> = verdict
            .masks
            .iter()
            .map(|m| m.column.to_ascii_lowercase())
            .collect();
        let holders = self
            .catalog
            .tables_with_columns(
                self.session.resource,
                self.upstream_user,
                self.upstream_db,
                &masked,
            )
            .await
            .map_err(|e| format!("Gate could not resolve the tables this statement reads: {e}"))?;
        let reads_masked = taint.relations.iter().any(|r| {
            let name = r.rsplit('.').next().unwrap_or(r).trim_matches('"');
            holders.iter().any(|h| h == name)
        });
        if reads_masked && taint.whole_row {
            return Ok(masking::strongest(verdict));
        }
        if !taint.functions.is_empty() {
            let functions: Vec<&str> = taint.functions.iter().map(String::as_str).collect();
            let user = self
                .catalog
                .user_functions(
                    self.session.resource,
                    self.upstream_user,
                    self.upstream_db,
                    &functions,
                )
                .await
                .map_err(|e| {
                    format!("Gate could not resolve the functions this statement calls: {e}")
                })?;
            if !user.is_empty() {
                return Ok(masking::strongest(verdict));
            }
        }
        if !reads_masked {
            return Ok(None);
        }
        Ok(masking::sql_derived(verdict, &sql.text))
    }
}

/// The strongest mask among the base columns a view reads.
fn view_derived(verdict: &Verdict, base: &[(String, String)]) -> Option<Strategy> {
    verdict
        .masks
        .iter()
        .filter(|m| {
            base.iter().any(|(table, column)| {
                m.column == *column && m.table.as_ref().is_none_or(|t| t == table)
            })
        })
        .map(|m| m.strategy)
        .max()
}

/// The plan and formats for the rows arriving now.
pub(super) fn active_plan(track: &Tracker) -> (ResultPlan, Formats) {
    match track.expect.front() {
        Some(Expect::Execute { portal, .. }) => match track.portals.get(portal) {
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

/// The RowDescription the client sees for a result under `plan`.
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
