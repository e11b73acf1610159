//! Prepared statements (the binary protocol): COM_STMT_PREPARE decided like
//! a query and its columns planned (masked columns re-described), then each
//! COM_STMT_EXECUTE / COM_STMT_FETCH decided again (policies may have
//! changed), audited per execution, binary rows masked; an open cursor keeps
//! its result's plan for the FETCHes that read it.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use gate_policy::QueryInfo;
use tokio::io::AsyncWriteExt;

use super::codec::{Packet, Reader};
use super::error::{MyError, refusal};
use super::handshake::caps;
use super::metadata::Described;
use super::packets::{ERR, ErrPacket, OK};
use super::relay::{Out, Relay, com, send_command};
use super::results::{self, Format, Request, ResultPlan};
use super::upstream::Upstream;
use super::wire::expect_packet;
use crate::stream::ClientStream;

/// A statement the client prepared.
#[derive(Debug, Clone)]
pub(super) struct Prepared {
    text: Arc<str>,
    queries: Arc<[QueryInfo]>,
    /// The plan of the rows behind an open cursor.
    cursor: Option<ResultPlan>,
    /// What the client was told about each result (MariaDB metadata caching).
    pub(super) described: Vec<Described>,
}

impl Relay<'_> {
    pub(super) async fn prepare(
        &mut self,
        body: &[u8],
        client: &mut ClientStream,
        upstream: &mut Upstream,
        out: &mut Out,
    ) -> Result<(), MyError> {
        let started = Instant::now();
        let text = String::from_utf8_lossy(body);
        let (sent, request) = self.decide(&text);
        let result = match sent {
            Err(refused) => {
                out.send_err(&refusal(refused.reason));
                Ok(())
            }
            Ok(rewritten) => {
                let sql = rewritten.unwrap_or_else(|| text.clone().into_owned());
                send_command(upstream, com::STMT_PREPARE, &sql).await?;
                self.prepare_response(upstream, client, out, &request).await
            }
        };
        self.complete(&request, started);
        result
    }

    /// STMT_PREPARE_OK, parameter and column definitions (masked columns re-described).
    async fn prepare_response(
        &mut self,
        upstream: &mut Upstream,
        client: &mut ClientStream,
        out: &mut Out,
        request: &Request,
    ) -> Result<(), MyError> {
        let first = expect_packet(&mut upstream.stream, &mut upstream.buf).await?;
        if first.first() != Some(OK) {
            out.forward(&first);
            return Ok(());
        }
        let mut r = Reader::new(first.payload.get(1..).unwrap_or_default());
        let id = r.u32("statement id")?;
        let columns = r.u16("column count")?;
        let params = r.u16("parameter count")?;
        out.forward(&first);
        let deprecate_eof = self.capabilities & caps::DEPRECATE_EOF != 0;
        for _ in 0..params + u16::from(params > 0 && !deprecate_eof) {
            let p = expect_packet(&mut upstream.stream, &mut upstream.buf).await?;
            out.forward(&p);
        }
        let mut described_now = Vec::new();
        if columns > 0 {
            let mut defs = Vec::new();
            for _ in 0..columns {
                defs.push(expect_packet(&mut upstream.stream, &mut upstream.buf).await?);
            }
            let plan = self.result_plan(&defs, request, 0)?;
            // A refused result is refused at execution; here it is only described.
            let described = match &plan {
                ResultPlan::Refuse(_) => &ResultPlan::Pass,
                plan => plan,
            };
            results::describe(out, &defs, described)?;
            // (MariaDB counts these as described: the first execution may skip them.)
            described_now.push(Described::new(defs.into(), Some(described.clone())));
            if !deprecate_eof {
                let eof = expect_packet(&mut upstream.stream, &mut upstream.buf).await?;
                out.forward(&eof);
            }
        }
        out.flush_if_large(client).await?;
        self.statements.insert(
            id,
            Prepared {
                text: request.text.clone(),
                queries: request.queries.clone(),
                cursor: None,
                described: described_now,
            },
        );
        Ok(())
    }

    /// COM_STMT_EXECUTE (`fetch: false`) or COM_STMT_FETCH of a prepared
    /// statement, decided again first.
    pub(super) async fn execute(
        &mut self,
        packet: &Packet,
        body: &[u8],
        client: &mut ClientStream,
        upstream: &mut Upstream,
        out: &mut Out,
        fetch: bool,
    ) -> Result<(), MyError> {
        let started = Instant::now();
        let Ok(id) = Reader::new(body).u32("statement id") else {
            out.send_err(&ErrPacket::new(
                1835,
                "HY000",
                "Malformed communication packet",
            ));
            return Ok(());
        };
        let Some(prepared) = self.statements.get(&id).cloned() else {
            out.send_err(&ErrPacket::new(
                1243,
                "HY000",
                "Unknown prepared statement handler given to Gate",
            ));
            return Ok(());
        };
        let (sent, request) = self.decide_queries(prepared.text.clone(), prepared.queries.clone());
        if let Err(refused) = sent {
            out.send_err(&refusal(refused.reason));
            self.complete(&request, started);
            return Ok(());
        }
        upstream.stream.write_all(&packet.raw).await?;
        if fetch {
            let plan = prepared.cursor.unwrap_or_else(|| {
                ResultPlan::Refuse("Gate knows no open cursor for this statement".into())
            });
            self.fetch_rows(upstream, client, out, &plan, &request)
                .await?;
        } else {
            self.executing = Some(id);
            let cursor = self
                .relay_results(upstream, client, out, Format::Binary, &request)
                .await;
            self.executing = None;
            let cursor = cursor?;
            if let Some(prepared) = self.statements.get_mut(&id) {
                prepared.cursor = cursor;
            }
        }
        self.complete(&request, started);
        Ok(())
    }

    /// The rows a COM_STMT_FETCH returns (or its ERR), under the cursor's plan.
    async fn fetch_rows(
        &mut self,
        upstream: &mut Upstream,
        client: &mut ClientStream,
        out: &mut Out,
        plan: &ResultPlan,
        request: &Request,
    ) -> Result<(), MyError> {
        let first = expect_packet(&mut upstream.stream, &mut upstream.buf).await?;
        if first.first() == Some(ERR) {
            out.forward(&first);
            return Ok(());
        }
        // The first row goes back in front of the buffer: relayed with the rest.
        let mut again = BytesMut::from(&first.raw[..]);
        again.extend_from_slice(&upstream.buf);
        upstream.buf = again;
        if let ResultPlan::Refuse(reason) = plan {
            out.send_err(&refusal(reason.clone()));
        }
        let discard = matches!(plan, ResultPlan::Refuse(_));
        let audit = request.audits.first().copied();
        self.relay_rows(upstream, client, out, Format::Binary, plan, discard, audit)
            .await?;
        Ok(())
    }
}
