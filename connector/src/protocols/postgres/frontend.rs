//! Client → upstream: every message that carries SQL (Query, Parse) is
//! classified and decided by the session layer (`pre_request`); the rest is
//! tracked (Bind, Describe, Execute, Sync, Close) and forwarded as sent.
//!
//! After every Parse Gate sends its own Describe of the statement (its
//! answer is swallowed), so the row shape of every prepared statement is
//! known before it runs.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use gate_policy::QueryInfo;

use super::codec::{self, Frame, frontend};
use super::error::{self, PgError};
use super::rows::Formats;
use super::state::{Context, Expect, Sql};
use crate::session::{AuditId, AuditText, Decision};

/// Statement kinds after which cached column names may be stale.
const DDL: &[&str] = &["create", "alter", "drop", "comment", "rename"];

/// No classification (the text Gate sends instead of a blocked statement).
fn unclassified() -> Arc<[QueryInfo]> {
    Arc::from(Vec::new())
}

impl Context<'_> {
    /// Classify `sql` and decide each statement; a message is blocked when
    /// any of its statements is. Returns the decision, the classification
    /// and one audit event per statement.
    async fn plan(&self, sql: &str) -> (Decision, Arc<[QueryInfo]>, Vec<AuditId>) {
        let statements = self.classify(sql);
        let single = statements.len() == 1;
        let mut plan = Decision::Forward;
        let mut audits = Vec::with_capacity(statements.len());
        for (i, query) in statements.iter().enumerate() {
            let statement = query.statement.as_deref().unwrap_or(&query.raw);
            if DDL.contains(&query.kind.as_str()) {
                self.catalog.invalidate();
            }
            let decided = self.session.request(
                query,
                AuditText::Query(statements.clone(), i),
                "statement refused by policy",
                None,
            );
            audits.push(decided.audit);
            if matches!(plan, Decision::Block(_)) {
                continue;
            }
            plan = match decided.decision {
                Decision::Block(reason) => Decision::Block(reason),
                Decision::Rewrite(sql) if single => Decision::Rewrite(sql),
                Decision::Rewrite(_) => Decision::Block(
                    "a policy rewrite cannot apply to one statement of a multi-statement query"
                        .into(),
                ),
                Decision::Forward => match self.masking_guard(query, statement).await {
                    Some(reason) => Decision::Block(reason),
                    None => plan,
                },
            };
        }
        (plan, statements, audits)
    }

    /// What goes upstream for a message carrying `text`: the original bytes
    /// (`forward`), or a rewritten or block marker statement (`put`, told
    /// whether it is a marker), and what to track.
    pub(super) async fn decide_sql(
        &self,
        text: &str,
        out: &mut BytesMut,
        forward: &[u8],
        put: impl FnOnce(&mut BytesMut, &str, bool),
    ) -> (Sql, Vec<AuditId>) {
        let (decision, queries, audits) = self.plan(text).await;
        if !matches!(decision, Decision::Block(_))
            && let Some(message) = self.session_state(&queries)
        {
            let marker = self.marker_with(error::UNSUPPORTED, message);
            put(out, &marker, true);
            let sql = Sql {
                text: marker.into(),
                queries: unclassified(),
            };
            return (sql, audits);
        }
        let sql = match decision {
            Decision::Forward => {
                out.extend_from_slice(forward);
                Sql {
                    text: text.into(),
                    queries,
                }
            }
            Decision::Rewrite(sql) => {
                put(out, &sql, false);
                Sql {
                    queries: self.classify(&sql),
                    text: sql.into(),
                }
            }
            Decision::Block(reason) => {
                let marker = self.marker(reason);
                put(out, &marker, true);
                Sql {
                    text: marker.into(),
                    queries: unclassified(),
                }
            }
        };
        (sql, audits)
    }

    /// Append what goes upstream for one client frame.
    pub(super) async fn relay_client_frame(
        &self,
        frame: &Frame,
        out: &mut BytesMut,
    ) -> Result<(), PgError> {
        match frame.tag {
            frontend::QUERY => {
                let text = codec::parse_query(frame.body())?;
                let (sql, audits) = self
                    .decide_sql(text, out, &frame.raw, |out, sql, _| {
                        codec::put_query(out, sql)
                    })
                    .await;
                self.track().expect.push_back(Expect::Query {
                    sql,
                    started: Instant::now(),
                    audits,
                    completed: 0,
                });
            }
            frontend::PARSE => {
                let parse = codec::parse_parse(frame.body())?;
                let (sql, audits) = self
                    .decide_sql(parse.query, out, &frame.raw, |out, sql, marker| {
                        // A marker takes no parameters.
                        let types = if marker { &[] } else { parse.param_types };
                        codec::put_parse_with(out, parse.name, sql, types);
                    })
                    .await;
                codec::put_describe(out, b'S', parse.name);
                let mut track = self.track();
                self.keep_statement(&mut track, parse.name, sql, audits, true);
            }
            frontend::BIND => {
                let bind = codec::parse_bind(frame.body())?;
                self.track().portals.insert(
                    bind.portal.to_owned(),
                    (bind.statement.to_owned(), Formats(bind.result_formats)),
                );
                out.extend_from_slice(&frame.raw);
            }
            frontend::DESCRIBE => {
                let (kind, name) = codec::parse_target(frame.body())?;
                self.track().expect.push_back(Expect::Describe {
                    statement: kind == b'S',
                    name: name.to_owned(),
                    internal: false,
                });
                out.extend_from_slice(&frame.raw);
            }
            frontend::EXECUTE => {
                let portal = codec::Reader::new(frame.body()).cstr()?.to_owned();
                self.track().expect.push_back(Expect::Execute {
                    portal,
                    started: Instant::now(),
                });
                out.extend_from_slice(&frame.raw);
            }
            frontend::SYNC => {
                let mut track = self.track();
                let parsed = std::mem::take(&mut track.unsynced);
                track.expect.push_back(Expect::Sync {
                    started: Instant::now(),
                    parsed,
                });
                out.extend_from_slice(&frame.raw);
            }
            frontend::CLOSE => {
                let (kind, name) = codec::parse_target(frame.body())?;
                let mut track = self.track();
                if kind == b'S' {
                    let closed = track.statements.remove(name);
                    self.settle(closed);
                } else {
                    track.portals.remove(name);
                }
                out.extend_from_slice(&frame.raw);
            }
            _ => out.extend_from_slice(&frame.raw),
        }
        Ok(())
    }
}
