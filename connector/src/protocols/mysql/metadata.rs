//! MariaDB's metadata caching (`MARIADB_CLIENT_CACHE_METADATA`): once a
//! prepared statement's result was described (by COM_STMT_PREPARE's answer
//! or an execution), the server may skip its column definitions on later
//! executions. Gate keeps the last definitions
//! per statement and result, plans the result from them as usual, and tells
//! the client "no metadata" only when the client already holds exactly the
//! description Gate would send (a changed policy re-describes it).
//!
//! ```text
//! column count (lenenc) | metadata follows (u8, only with the capability)
//! [column definitions, when it follows] [EOF without DEPRECATE_EOF] rows… terminator
//! ```

use std::sync::Arc;

use bytes::{BufMut, BytesMut};

use super::codec::{Packet, Reader, put_lenenc};
use super::error::MyError;
use super::relay::{Out, Relay};
use super::results::{ResultPlan, describe};
use super::upstream::Upstream;
use super::wire::expect_packet;

/// What the client was last told about one result of a prepared statement.
#[derive(Debug, Clone)]
pub(super) struct Described {
    /// The upstream's column definitions.
    columns: Arc<[Packet]>,
    /// The plan the client's description was made under; `None` when the
    /// client may not hold a description of these columns (refused, discarded).
    plan: Option<ResultPlan>,
}

impl Described {
    pub(super) fn new(columns: Arc<[Packet]>, plan: Option<ResultPlan>) -> Self {
        Self { columns, plan }
    }
}

impl Relay<'_> {
    /// Result `k`'s column definitions, and whether the upstream sent them
    /// (when it skipped them: the executing statement's last ones).
    pub(super) async fn result_columns(
        &mut self,
        upstream: &mut Upstream,
        count_packet: &Packet,
        k: usize,
    ) -> Result<(Arc<[Packet]>, bool), MyError> {
        let mut r = Reader::new(&count_packet.payload);
        let count = r.lenenc_int("column count")?;
        let follows = !self.cache_metadata || r.u8("metadata follows")? != 0;
        if !follows {
            return self
                .last_described(k)
                .map(|d| (d.columns.clone(), false))
                .ok_or_else(|| {
                    MyError::ClientUnexpected(
                        "the server skipped column definitions Gate has not seen".into(),
                    )
                });
        }
        let mut columns = Vec::new();
        for _ in 0..count {
            columns.push(expect_packet(&mut upstream.stream, &mut upstream.buf).await?);
        }
        let columns: Arc<[Packet]> = columns.into();
        self.remember(
            k,
            Described {
                columns: columns.clone(),
                plan: None,
            },
        );
        Ok((columns, true))
    }

    /// Describe result `k` to the client under `plan`: the count packet, and
    /// the column definitions unless the upstream skipped them (`sent_upstream`
    /// false) and the client holds this very description.
    pub(super) fn send_description(
        &mut self,
        out: &mut Out,
        count_packet: &Packet,
        (columns, sent_upstream): (&Arc<[Packet]>, bool),
        plan: &ResultPlan,
        k: usize,
    ) -> Result<(), MyError> {
        let unchanged = self
            .last_described(k)
            .is_some_and(|d| d.plan.as_ref() == Some(plan));
        if sent_upstream || !unchanged {
            if sent_upstream {
                out.forward(count_packet);
            } else {
                // The upstream skipped them, but the client's copy is stale: send them.
                let mut payload = BytesMut::with_capacity(10);
                put_lenenc(&mut payload, columns.len() as u64);
                payload.put_u8(1);
                out.send(&payload);
            }
            describe(out, columns, plan)?;
        } else {
            out.forward(count_packet);
        }
        self.remember(
            k,
            Described {
                columns: columns.clone(),
                plan: Some(plan.clone()),
            },
        );
        Ok(())
    }

    fn last_described(&self, k: usize) -> Option<&Described> {
        let id = self.executing?;
        self.statements.get(&id)?.described.get(k)
    }

    /// Keep what is known of result `k` of the executing statement.
    fn remember(&mut self, k: usize, described: Described) {
        let Some(prepared) = self.executing.and_then(|id| self.statements.get_mut(&id)) else {
            return;
        };
        let known = prepared.described.len();
        if k < known {
            if let Some(slot) = prepared.described.get_mut(k) {
                *slot = described;
            }
        } else if k == known {
            prepared.described.push(described);
        }
    }
}
