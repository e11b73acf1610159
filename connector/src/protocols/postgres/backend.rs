//! Upstream → client: every response is matched to what the client sent
//! ([`Expect`]), rows are masked under their result's plan, refusals of
//! blocked statements are rewritten into the policy's error, and each
//! statement's audit event gets its rows (CommandComplete) and duration
//! (ReadyForQuery).

use std::collections::HashMap;

use bytes::BytesMut;
use gate_policy::QueryInfo;

use super::codec::{self, Frame, backend};
use super::error::{self, PgError};
use super::redact;
use super::results::active_plan;
use super::rows;
use super::state::{BLOCK_MARKER, Context, Expect, ResultPlan, Tracker};

impl Context<'_> {
    /// Append what goes to the client for one upstream frame.
    pub(super) async fn relay_upstream_frame(
        &self,
        frame: Frame,
        out: &mut BytesMut,
    ) -> Result<(), PgError> {
        if self.pooling.is_some() {
            self.answer_front(out);
        }
        match frame.tag {
            backend::ROW_DESCRIPTION => self.on_row_description(frame, out).await,
            backend::PARSE_COMPLETE | backend::BIND_COMPLETE | backend::CLOSE_COMPLETE => {
                let mut track = self.track();
                let hidden = match track.expect.front() {
                    Some(Expect::Ack { tag, hidden, .. }) if *tag == frame.tag => {
                        let hidden = *hidden;
                        track.expect.pop_front();
                        hidden
                    }
                    _ => false,
                };
                if !hidden {
                    out.extend_from_slice(&frame.raw);
                }
                Ok(())
            }
            backend::NO_DATA | backend::PARAMETER_DESCRIPTION => {
                let mut track = self.track();
                let internal = matches!(
                    track.expect.front(),
                    Some(Expect::Describe { internal: true, .. })
                );
                // NoData ends a Describe: the statement returns no rows.
                let ends_describe = frame.tag == backend::NO_DATA
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
            backend::DATA_ROW => {
                let (plan, formats) = active_plan(&self.track());
                match plan {
                    ResultPlan::Pass => out.extend_from_slice(&frame.raw),
                    ResultPlan::Mask(plan) => rows::mask_data_row(
                        frame.body(),
                        &plan,
                        &formats,
                        self.session.gate.masking_key.as_ref(),
                        out,
                    )?,
                    ResultPlan::Refuse(_) => {}
                }
                Ok(())
            }
            backend::COMMAND_COMPLETE
            | backend::PORTAL_SUSPENDED
            | backend::EMPTY_QUERY_RESPONSE => {
                let mut track = self.track();
                if frame.tag == backend::COMMAND_COMPLETE {
                    self.count_rows(&mut track, codec::command_rows(frame.body()));
                }
                match track.expect.front() {
                    Some(Expect::Execute { .. }) => {
                        let plan = active_plan(&track).0;
                        track.expect.pop_front();
                        match plan {
                            ResultPlan::Refuse(reason)
                                if frame.tag != backend::EMPTY_QUERY_RESPONSE =>
                            {
                                error::put_refusal(out, reason);
                            }
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
            backend::ERROR_RESPONSE => {
                let mut track = self.track();
                track.current = None;
                // A failed execution is its statement's first one too.
                if matches!(track.expect.front(), Some(Expect::Execute { .. })) {
                    self.executed(&mut track, 0);
                }
                // The server skips to the next Sync after an error.
                while matches!(
                    track.expect.front(),
                    Some(
                        Expect::Describe { .. }
                            | Expect::Execute { .. }
                            | Expect::Ack { .. }
                            | Expect::Answer(_)
                    )
                ) {
                    // A statement Gate prepared that the server refused is not there.
                    if let Some(Expect::Ack {
                        parsed: Some(name), ..
                    }) = track.expect.pop_front()
                    {
                        track.failed_parses.push(name);
                    }
                }
                match blocked_reason(&frame, &mut track.blocked)? {
                    Some((code, message)) => error::put_error_code(out, code, message),
                    None => self.server_message(&track, &frame, out)?,
                }
                Ok(())
            }
            backend::NOTICE_RESPONSE => {
                let track = self.track();
                self.server_message(&track, &frame, out)
            }
            backend::READY_FOR_QUERY => {
                let mut track = self.track();
                track.current = None;
                track.last_status = frame.body().first().copied().unwrap_or(b'E');
                while let Some(e) = track.expect.pop_front() {
                    match e {
                        Expect::Sync { started, parsed } => {
                            self.settle_failed(&mut track, parsed);
                            self.session.record_duration(started);
                            break;
                        }
                        Expect::Query {
                            started, audits, ..
                        } => {
                            for audit in audits {
                                self.session.complete(audit, started.elapsed());
                            }
                            self.session.record_duration(started);
                            break;
                        }
                        _ => {}
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

    /// Forward an ErrorResponse or NoticeResponse, its values redacted when
    /// masks apply to the statement it concerns (see [`redact`]).
    fn server_message(
        &self,
        track: &Tracker,
        frame: &Frame,
        out: &mut BytesMut,
    ) -> Result<(), PgError> {
        let statement = match track.expect.front() {
            Some(Expect::Query { sql, .. }) => sql.queries.first().cloned(),
            Some(Expect::Execute { portal, .. }) => track
                .portals
                .get(portal)
                .and_then(|(name, _)| track.statements.get(name))
                .and_then(|s| s.sql.queries.first().cloned()),
            _ => None,
        };
        let query = statement.unwrap_or_else(|| QueryInfo {
            kind: "unknown".into(),
            ..Default::default()
        });
        if self.session.expected_masks(&query).masks.is_empty() {
            out.extend_from_slice(&frame.raw);
            return Ok(());
        }
        let fields = codec::parse_fields(frame.body())?;
        codec::put_fields(out, frame.tag, &redact::redact(&fields));
        Ok(())
    }

    /// Add a CommandComplete's rows to the audit event of the statement it
    /// completes: the next statement of a simple Query, or, on its first
    /// execution, the prepared statement of the portal (then complete).
    fn count_rows(&self, track: &mut Tracker, rows: u64) {
        match track.expect.front_mut() {
            Some(Expect::Query {
                audits, completed, ..
            }) => {
                if let Some(audit) = audits.get(*completed) {
                    self.session.add_rows(*audit, rows);
                }
                *completed += 1;
            }
            Some(Expect::Execute { .. }) => self.executed(track, rows),
            _ => {}
        }
    }

    /// The Execute at the front of `track` finished with `rows`: complete the
    /// audit events of its statement's first execution.
    fn executed(&self, track: &mut Tracker, rows: u64) {
        let Some(Expect::Execute { portal, started }) = track.expect.front() else {
            return;
        };
        let elapsed = started.elapsed();
        let Some(statement) = track
            .portals
            .get(portal.as_str())
            .and_then(|(name, _)| track.statements.get_mut(name))
        else {
            return;
        };
        let audits = std::mem::take(&mut statement.audits);
        if let Some(first) = audits.first() {
            self.session.add_rows(*first, rows);
        }
        for audit in audits {
            self.session.complete(audit, elapsed);
        }
    }

    /// At a Sync's ReadyForQuery: settle the statements of its cycle that
    /// failed to parse (they will never run).
    fn settle_failed(&self, track: &mut Tracker, parsed: Vec<String>) {
        for name in parsed {
            let failed = track
                .statements
                .get(&name)
                .is_some_and(|s| s.plan.is_none() && !s.audits.is_empty());
            if failed {
                let audits = track
                    .statements
                    .get_mut(&name)
                    .map(|s| std::mem::take(&mut s.audits))
                    .unwrap_or_default();
                for audit in audits {
                    self.session.complete(audit, std::time::Duration::ZERO);
                }
            }
        }
    }
}

/// The policy reason for an upstream error caused by a block marker.
fn blocked_reason(
    frame: &Frame,
    blocked: &mut HashMap<u64, (&'static str, String)>,
) -> Result<Option<(&'static str, String)>, PgError> {
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
