//! Audit: idempotent ingest from connectors, and queries with cursor pagination.

use base64::Engine;
use gate_proto::v1::{
    IngestAuditRequest, IngestAuditResponse, QueryAuditRequest, QueryAuditResponse,
};

use super::policies::STAGES;
use super::resources::PROTOCOLS;
use super::{ControlPlane, validate};
use crate::auth::{Caller, Need};
use crate::error::{ApiError, ApiResult};
use crate::store::AuditFilter;
use crate::util::parse_rfc3339;

/// Most events accepted in one ingest call.
const MAX_BATCH: usize = 5000;
/// How far in the future an event's time may be (clock skew between hosts).
const MAX_FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;
/// The decisions a connector records.
pub(crate) const ACTIONS: &[&str] = &["allow", "block", "rewrite", "mask", "filter"];

/// Whether `id` is a UUID of version 7 in its canonical lower-case text form.
pub(crate) fn is_uuid_v7(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(b),
        })
        && bytes[14] == b'7'
        && matches!(bytes[19], b'8' | b'9' | b'a' | b'b')
}

pub(crate) fn time(field: &str, value: &str) -> ApiResult<Option<i64>> {
    if value.is_empty() {
        return Ok(None);
    }
    parse_rfc3339(value).map(Some).ok_or_else(|| {
        ApiError::invalid(field, format!("expected an RFC 3339 time, got {value:?}"))
    })
}

fn encode_cursor(time_ms: i64, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{time_ms}/{id}"))
}

fn decode_cursor(cursor: &str) -> ApiResult<(i64, String)> {
    let bad = || ApiError::invalid("cursor", "not a cursor returned by this API");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (time, id) = text.split_once('/').ok_or_else(bad)?;
    Ok((time.parse().map_err(|_| bad())?, id.to_owned()))
}

/// A page size: 100 when 0, at most 1000.
pub(crate) fn page_size(limit: u32) -> ApiResult<u32> {
    match limit {
        0 => Ok(100),
        1..=1000 => Ok(limit),
        _ => Err(ApiError::invalid("limit", "must be at most 1000")),
    }
}

/// The (time, id) a `cursor` from an earlier page stands for; `None` for the first page.
pub(crate) fn cursor(text: &str) -> ApiResult<Option<(i64, String)>> {
    if text.is_empty() {
        Ok(None)
    } else {
        decode_cursor(text).map(Some)
    }
}

/// Keep the first `limit` of `items` (fetched with one more); the next page's cursor, from the
/// last item's (RFC 3339 time, id), or empty when there is no more.
pub(crate) fn page<T>(items: &mut Vec<T>, limit: u32, key: impl Fn(&T) -> (&str, &str)) -> String {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    match items.last() {
        Some(last) if more => {
            let (time, id) = key(last);
            encode_cursor(parse_rfc3339(time).unwrap_or(0), id)
        }
        _ => String::new(),
    }
}

impl ControlPlane {
    /// Store a batch; events already stored (same id) are counted as duplicates, never twice.
    pub async fn ingest_audit(
        &self,
        caller: &Caller,
        req: IngestAuditRequest,
    ) -> ApiResult<IngestAuditResponse> {
        let org = caller.org(Need::Connector)?;
        if req.events.len() > MAX_BATCH {
            return Err(ApiError::invalid(
                "events",
                format!("at most {MAX_BATCH} events per batch"),
            ));
        }
        let now_ms = gate_proto::wire::now_ms();
        let mut events = Vec::with_capacity(req.events.len());
        for (i, event) in req.events.into_iter().enumerate() {
            let field = |name: &str| format!("events[{i}].{name}");
            if event.id.is_empty() || event.id.len() > 64 {
                return Err(ApiError::invalid(
                    &field("id"),
                    "is required (a UUIDv7, at most 64 characters)",
                ));
            }
            let time_ms = time(&field("time"), &event.time)?
                .ok_or_else(|| ApiError::invalid(&field("time"), "is required"))?;
            if event.action.is_empty() {
                return Err(ApiError::invalid(&field("action"), "is required"));
            }
            if !is_uuid_v7(&event.id) {
                return Err(ApiError::invalid(
                    &field("id"),
                    format!("expected a lower-case UUIDv7, got {:?}", event.id),
                ));
            }
            if time_ms > now_ms.saturating_add(MAX_FUTURE_SKEW_MS) {
                return Err(ApiError::invalid(
                    &field("time"),
                    format!(
                        "{} is more than {} minutes in the future",
                        event.time,
                        MAX_FUTURE_SKEW_MS / 60_000
                    ),
                ));
            }
            validate::one_of(&field("action"), &event.action, ACTIONS)?;
            // Older connectors send no stage or protocol.
            validate::one_of_or_empty(&field("stage"), &event.stage, STAGES)?;
            validate::one_of_or_empty(&field("protocol"), &event.protocol, PROTOCOLS)?;
            validate::text(&field("statement"), &event.statement, 16 * 1024)?;
            if !event.details_json.is_empty()
                && !serde_json::from_str::<serde_json::Value>(&event.details_json)
                    .is_ok_and(|v| v.is_object())
            {
                return Err(ApiError::invalid(
                    &field("details_json"),
                    "expected a JSON object",
                ));
            }
            events.push((time_ms, event));
        }
        let (accepted, duplicates) = self.store.ingest_audit(org, &events).await?;
        self.metrics.audit_ingested(accepted, duplicates);
        Ok(IngestAuditResponse {
            accepted,
            duplicates,
        })
    }

    pub async fn query_audit(
        &self,
        caller: &Caller,
        req: QueryAuditRequest,
    ) -> ApiResult<QueryAuditResponse> {
        let org = caller.org(Need::Read)?;
        let limit = page_size(req.limit)?;
        validate::one_of_or_empty("protocol", &req.protocol, PROTOCOLS)?;
        let filter = AuditFilter {
            from_ms: time("from", &req.from)?,
            to_ms: time("to", &req.to)?,
            identity: Some(req.identity).filter(|s| !s.is_empty()),
            resource: Some(req.resource).filter(|s| !s.is_empty()),
            action: Some(req.action).filter(|s| !s.is_empty()),
            stage: Some(req.stage).filter(|s| !s.is_empty()),
            operation: Some(req.operation).filter(|s| !s.is_empty()),
            target: Some(req.target).filter(|s| !s.is_empty()),
            protocol: Some(req.protocol).filter(|s| !s.is_empty()),
            id: Some(req.id).filter(|s| !s.is_empty()),
            before: cursor(&req.cursor)?,
            limit: limit + 1,
        };
        let mut events = self.store.query_audit(org, &filter).await?;
        let next_cursor = page(&mut events, limit, |e| (&e.time, &e.id));
        Ok(QueryAuditResponse {
            events,
            next_cursor,
        })
    }
}
