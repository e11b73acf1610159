//! The response side of a command: OK, ERR and result sets (one or many)
//! from the upstream to the client. Each result's column definitions get a
//! plan from the session layer (`post_request` through the plan cache,
//! `masking::plan_columns` with sources from `org_table`/`org_name`):
//! pass, mask (columns re-described as strings, rows rewritten one by one
//! as they stream), or refuse (ERR 1142, the rest drained). An upstream's
//! request for a client file (LOCAL INFILE) is answered with no data.

use std::sync::Arc;

use bytes::BytesMut;
use gate_policy::{QueryInfo, ResponseColumn, Verdict};

use super::codec::Packet;
use super::error::{MyError, refusal};
use super::handshake::{SERVER_MORE_RESULTS_EXISTS, caps};
use super::packets::{self, Column, ERR, ErrPacket, LOCAL_INFILE, OK, OkPacket};
use super::relay::{Out, Relay};
use super::rows::{self, MaskPlan};
use super::statements;
use super::upstream::Upstream;
use super::wire::expect_packet;
use crate::session::AuditId;
use crate::session::masking::{self, ColumnPlan, OutputColumn};
use crate::session::results::{ResultOutcome, ResultShape};
use crate::stream::ClientStream;

/// Status flag: a cursor is open for the statement (rows come by COM_STMT_FETCH).
pub(super) const SERVER_STATUS_CURSOR_EXISTS: u16 = 0x0040;

/// What Gate does with one result's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ResultPlan {
    Pass,
    Mask(Arc<MaskPlan>),
    Refuse(String),
}

/// Rows in the text (COM_QUERY) or binary (prepared statements) format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Text,
    Binary,
}

/// The request a response answers.
#[derive(Debug, Clone)]
pub(super) struct Request {
    pub(super) text: Arc<str>,
    pub(super) queries: Arc<[QueryInfo]>,
    /// One audit event per statement; result `k` belongs to statement `k`.
    pub(super) audits: Vec<AuditId>,
}

impl Request {
    fn query(&self, k: usize) -> Option<&QueryInfo> {
        self.queries.get(k).or_else(|| self.queries.first())
    }

    /// The text of statement `k`: the whole text when it is the only one.
    fn text_of(&self, k: usize) -> Arc<str> {
        match (self.queries.len(), self.queries.get(k)) {
            (2.., Some(q)) => q.statement.as_deref().unwrap_or(&q.raw).into(),
            _ => self.text.clone(),
        }
    }

    fn audit(&self, k: usize) -> Option<AuditId> {
        self.audits.get(k).or_else(|| self.audits.last()).copied()
    }
}

impl Relay<'_> {
    /// Relay every result of one command; returns the plan of a result whose
    /// rows wait behind a cursor (COM_STMT_EXECUTE with a cursor).
    pub(super) async fn relay_results(
        &mut self,
        upstream: &mut Upstream,
        client: &mut ClientStream,
        out: &mut Out,
        format: Format,
        request: &Request,
    ) -> Result<Option<ResultPlan>, MyError> {
        let mut discard = false;
        let deprecate_eof = self.capabilities & caps::DEPRECATE_EOF != 0;
        for k in 0.. {
            let packet = expect_packet(&mut upstream.stream, &mut upstream.buf).await?;
            let status = match packet.first() {
                Some(OK) => {
                    let ok = OkPacket::decode(&packet.payload)?;
                    if let Some(id) = request.audit(k) {
                        self.session.add_rows(id, ok.affected_rows);
                    }
                    if !discard {
                        self.forward_end(out, &packet, ok.status)?;
                    }
                    ok.status
                }
                Some(ERR) => {
                    if !discard {
                        self.send_error(out, &packet, request.query(k))?;
                    }
                    return Ok(None);
                }
                Some(LOCAL_INFILE) => {
                    // Gate never sends a client's file: an empty packet says "no data".
                    let mut empty = BytesMut::new();
                    super::codec::put_packet(&mut empty, packet.last_seq.wrapping_add(1), &[]);
                    tokio::io::AsyncWriteExt::write_all(&mut upstream.stream, &empty).await?;
                    if !discard {
                        out.send_err(&refusal(
                            "LOAD DATA LOCAL INFILE is refused by Gate (it never reads client files)",
                        ));
                    }
                    discard = true;
                    let answer = expect_packet(&mut upstream.stream, &mut upstream.buf).await?;
                    match answer.first() {
                        Some(OK) => OkPacket::decode(&answer.payload)?.status,
                        _ => return Ok(None),
                    }
                }
                _ => {
                    let (status, plan) = self
                        .relay_result_set(
                            upstream,
                            client,
                            out,
                            format,
                            request,
                            k,
                            packet,
                            discard,
                            deprecate_eof,
                        )
                        .await?;
                    if let Some(ResultPlan::Refuse(_)) = plan {
                        discard = true;
                    }
                    if status & SERVER_STATUS_CURSOR_EXISTS != 0 {
                        return Ok(plan);
                    }
                    status
                }
            };
            out.flush_if_large(client).await?;
            if status & SERVER_MORE_RESULTS_EXISTS == 0 {
                break;
            }
        }
        Ok(None)
    }

    /// One result set: count, column definitions, rows, terminator. Returns
    /// the terminator's status and the plan.
    #[allow(clippy::too_many_arguments)]
    async fn relay_result_set(
        &mut self,
        upstream: &mut Upstream,
        client: &mut ClientStream,
        out: &mut Out,
        format: Format,
        request: &Request,
        k: usize,
        count_packet: Packet,
        discard: bool,
        deprecate_eof: bool,
    ) -> Result<(u16, Option<ResultPlan>), MyError> {
        let (columns, sent_upstream) = self.result_columns(upstream, &count_packet, k).await?;
        let mut eof = None;
        if !deprecate_eof {
            eof = Some(expect_packet(&mut upstream.stream, &mut upstream.buf).await?);
        }
        let plan = self.result_plan(&columns, request, k)?;
        let discard = discard || matches!(plan, ResultPlan::Refuse(_));
        match (&plan, discard) {
            (ResultPlan::Refuse(reason), _) => out.send_err(&refusal(reason.clone())),
            (_, true) => {}
            (plan, false) => {
                self.send_description(out, &count_packet, (&columns, sent_upstream), plan, k)?;
                if let Some(eof) = &eof {
                    out.forward(eof);
                }
            }
        }
        if let Some(eof) = &eof {
            let status = packets::terminator_status(&eof.payload)?.status;
            if status & SERVER_STATUS_CURSOR_EXISTS != 0 {
                return Ok((status, Some(plan)));
            }
        }
        let status = self
            .relay_rows(
                upstream,
                client,
                out,
                format,
                &plan,
                discard,
                request.audit(k),
            )
            .await?;
        Ok((status, Some(plan)))
    }

    /// Rows until the terminator (forwarded); returns its status. An ERR
    /// instead ends the response.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn relay_rows(
        &mut self,
        upstream: &mut Upstream,
        client: &mut ClientStream,
        out: &mut Out,
        format: Format,
        plan: &ResultPlan,
        discard: bool,
        audit: Option<AuditId>,
    ) -> Result<u16, MyError> {
        let deprecate_eof = self.capabilities & caps::DEPRECATE_EOF != 0;
        let key = self.session.gate.masking_key.as_ref();
        let mut count = 0u64;
        let status = loop {
            let row = expect_packet(&mut upstream.stream, &mut upstream.buf).await?;
            if packets::ends_rows(&row.payload, deprecate_eof) {
                let status = packets::terminator_status(&row.payload)?.status;
                if !discard {
                    self.forward_end(out, &row, status)?;
                }
                break status;
            }
            if row.first() == Some(ERR) {
                if !discard {
                    self.send_error(out, &row, None)?;
                }
                break 0;
            }
            count += 1;
            match (plan, discard) {
                (_, true) | (ResultPlan::Refuse(_), _) => {}
                (ResultPlan::Pass, false) => out.forward(&row),
                (ResultPlan::Mask(mask), false) => {
                    let mut payload = BytesMut::with_capacity(row.payload.len() + 16);
                    match format {
                        Format::Text => rows::mask_text_row(&row.payload, mask, key, &mut payload)?,
                        Format::Binary => {
                            rows::mask_binary_row(&row.payload, mask, key, &mut payload)?
                        }
                    }
                    out.send(&payload);
                }
            }
            out.flush_if_large(client).await?;
        };
        if let Some(id) = audit {
            self.session.add_rows(id, count);
        }
        Ok(status)
    }

    /// Forward the packet that ends a result (`status` its flags). After
    /// the last result, a refusal still owed ([`Relay::then_refuse`]) follows
    /// it: the packet says more results exist, and the refusal is the next.
    fn forward_end(&mut self, out: &mut Out, packet: &Packet, status: u16) -> Result<(), MyError> {
        if status & SERVER_MORE_RESULTS_EXISTS == 0
            && let Some(reason) = self.then_refuse.take()
        {
            out.send(&packets::with_more_results(&packet.payload)?);
            out.send_err(&refusal(reason));
            return Ok(());
        }
        out.forward(packet);
        Ok(())
    }

    /// An upstream ERR to the client; while masks apply, quoted values in
    /// its message are redacted (servers quote the offending value).
    fn send_error(
        &self,
        out: &mut Out,
        packet: &Packet,
        query: Option<&QueryInfo>,
    ) -> Result<(), MyError> {
        let masks = match query {
            Some(q) => !self.session.expected_masks(q).masks.is_empty(),
            None => self.masks_seen,
        };
        if !masks {
            out.forward(packet);
            return Ok(());
        }
        let mut err = ErrPacket::decode(&packet.payload)?;
        err.message = statements::redact_quoted(&err.message);
        out.send_err(&err);
        Ok(())
    }

    /// The plan for one result described by `columns` (from the session's
    /// plan cache when it may be reused); masked and refused results are audited.
    pub(super) fn result_plan(
        &mut self,
        columns: &[Packet],
        request: &Request,
        k: usize,
    ) -> Result<ResultPlan, MyError> {
        let query = request.query(k);
        let text = request.text_of(k);
        let read = read_tables(query);
        let mut description = Vec::new();
        let mut computed = false;
        for column in columns {
            description.extend_from_slice(&column.payload);
            computed |= !packets::column_traced(&column.payload, &read)?;
        }
        let shape = ResultShape {
            description: &description,
            computed,
            text: &text,
            query,
        };
        let (plan, verdict) = match self.plans.get(self.session, &shape) {
            Ok(hit) => hit,
            Err(slot) => {
                let decoded = columns
                    .iter()
                    .map(|c| Column::decode(&c.payload))
                    .collect::<Result<Vec<_>, _>>()?;
                let (plan, verdict) = self.decide_result(&decoded, query, &text);
                let verdict = Arc::new(verdict);
                if let Some(slot) = slot {
                    self.plans.put(slot, &shape, plan.clone(), verdict.clone());
                }
                (plan, verdict)
            }
        };
        if !verdict.masks.is_empty() {
            self.masks_seen = true;
        }
        let outcome = match &plan {
            ResultPlan::Pass => ResultOutcome::Pass,
            ResultPlan::Mask(_) => ResultOutcome::Mask,
            ResultPlan::Refuse(reason) => ResultOutcome::Refuse(reason),
        };
        self.session
            .result_decided(request.audit(k), &text, &verdict, outcome);
        Ok(plan)
    }

    fn decide_result(
        &self,
        columns: &[Column],
        query: Option<&QueryInfo>,
        text: &str,
    ) -> (ResultPlan, Verdict) {
        let response = columns
            .iter()
            .map(|c| ResponseColumn {
                name: if c.org_name.is_empty() {
                    c.name.clone()
                } else {
                    c.org_name.clone()
                },
                table: (!c.org_table.is_empty()).then(|| c.org_table.clone()),
                type_name: Some(c.column_type.to_string()),
            })
            .collect();
        let verdict = self.session.post_request(query.cloned(), response);
        // A derived table or view names itself as org_table: only tables the
        // statement reads by name are sources; anything else is untraced.
        let read = read_tables(query);
        let traced = |c: &Column| !c.computed() && read.contains(&c.org_table.to_ascii_lowercase());
        let derived = if verdict.masks.is_empty() {
            None
        } else {
            statements::computed_derived(&verdict, text)
        };
        let outputs: Vec<OutputColumn<'_>> = columns
            .iter()
            .map(|c| OutputColumn {
                name: &c.name,
                source: traced(c).then_some((c.org_table.as_str(), c.org_name.as_str())),
                derived: if traced(c) { None } else { derived },
            })
            .collect();
        let plan = match masking::plan_columns(
            &verdict,
            &outputs,
            self.session.gate.masking_key.is_some(),
        ) {
            ColumnPlan::Pass => ResultPlan::Pass,
            ColumnPlan::Refuse(reason) => ResultPlan::Refuse(reason),
            ColumnPlan::Mask(strategies) => {
                ResultPlan::Mask(Arc::new(MaskPlan::new(strategies, columns)))
            }
        };
        (plan, verdict)
    }
}

/// The tables a statement reads by name, unqualified, unquoted, lower case.
fn read_tables(query: Option<&QueryInfo>) -> Vec<String> {
    query
        .map(|q| {
            q.tables
                .iter()
                .map(|t| {
                    t.rsplit('.')
                        .next()
                        .unwrap_or(t)
                        .trim_matches('`')
                        .to_ascii_lowercase()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The column definitions the client sees under `plan`.
pub(super) fn describe(
    out: &mut Out,
    columns: &[Packet],
    plan: &ResultPlan,
) -> Result<(), MyError> {
    for (i, column) in columns.iter().enumerate() {
        let masked = match plan {
            ResultPlan::Mask(mask) => mask.describe(i, &Column::decode(&column.payload)?),
            _ => None,
        };
        match masked {
            Some(described) => {
                let mut payload = BytesMut::new();
                described.encode(&mut payload);
                out.send(&payload);
            }
            None => out.forward(column),
        }
    }
    Ok(())
}
