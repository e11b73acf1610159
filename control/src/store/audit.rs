//! Audit events: idempotent ingest by event id, filtered queries with keyset (cursor) pagination.

use gate_proto::v1::AuditEvent;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::listing::Listing;
use super::{Store, StoreError, json_list, parse_list};
use crate::util::rfc3339;

/// What to look for; times are epoch milliseconds.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    /// One event by its id.
    pub id: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub identity: Option<String>,
    pub resource: Option<String>,
    pub action: Option<String>,
    pub stage: Option<String>,
    /// `details.mcp.operation` / `details.mcp.target` of the event (the `operation` and `target`
    /// columns, filled at ingest).
    pub operation: Option<String>,
    pub target: Option<String>,
    /// The resource's protocol.
    pub protocol: Option<String>,
    /// Events strictly older than (time, id): the cursor of the previous page.
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

/// `details.mcp.operation` and `details.mcp.target` of an event's details text (empty when absent;
/// ingest has already checked that the details are a JSON object).
fn operation_and_target(details: &str) -> (String, String) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(details) else {
        return (String::new(), String::new());
    };
    let field = |name: &str| value["mcp"][name].as_str().unwrap_or_default().to_owned();
    (field("operation"), field("target"))
}

fn event(row: &AnyRow) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        time: rfc3339(row.try_get("time")?),
        connector: row.try_get("connector")?,
        identity: row.try_get("identity")?,
        resource: row.try_get("resource")?,
        protocol: row.try_get("protocol")?,
        client_addr: row.try_get("client_addr")?,
        stage: row.try_get("stage")?,
        action: row.try_get("action")?,
        reason: row.try_get("reason")?,
        statement: row.try_get("statement")?,
        policies: parse_list(&row.try_get::<String, _>("policies")?)?,
        rows: u64::try_from(row.try_get::<i64, _>("row_count")?).unwrap_or(0),
        duration_us: u64::try_from(row.try_get::<i64, _>("duration_us")?).unwrap_or(0),
        details_json: row.try_get("details")?,
    })
}

impl Store {
    /// Store events (already validated, `time_ms` parsed); returns (accepted, duplicates).
    pub async fn ingest_audit(
        &self,
        org_id: &str,
        events: &[(i64, AuditEvent)],
    ) -> Result<(u32, u32), StoreError> {
        let mut accepted = 0u32;
        let mut tx = self.pool().begin().await?;
        for (time_ms, e) in events {
            let (operation, target) = operation_and_target(&e.details_json);
            let result = sqlx::query(
                "INSERT INTO audit_events (id, org_id, time, connector, identity, resource, protocol, \
                 client_addr, stage, action, reason, statement, policies, row_count, duration_us, details, \
                 operation, target) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
                 ON CONFLICT (org_id, id) DO NOTHING",
            )
            .bind(&e.id)
            .bind(org_id)
            .bind(*time_ms)
            .bind(&e.connector)
            .bind(&e.identity)
            .bind(&e.resource)
            .bind(&e.protocol)
            .bind(&e.client_addr)
            .bind(&e.stage)
            .bind(&e.action)
            .bind(&e.reason)
            .bind(&e.statement)
            .bind(json_list(&e.policies))
            .bind(i64::try_from(e.rows).unwrap_or(i64::MAX))
            .bind(i64::try_from(e.duration_us).unwrap_or(i64::MAX))
            .bind(if e.details_json.is_empty() { "{}" } else { e.details_json.as_str() })
            .bind(&operation)
            .bind(&target)
            .execute(&mut *tx)
            .await?;
            if result.rows_affected() > 0 {
                accepted += 1;
            }
        }
        tx.commit().await?;
        let total = u32::try_from(events.len()).unwrap_or(u32::MAX);
        Ok((accepted, total - accepted))
    }

    /// Newest first, at most `filter.limit`.
    pub async fn query_audit(
        &self,
        org_id: &str,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let listing = Listing {
            table: "audit_events",
            time: "time",
            from_ms: filter.from_ms,
            to_ms: filter.to_ms,
            equal: vec![
                ("id", &filter.id),
                ("identity", &filter.identity),
                ("resource", &filter.resource),
                ("action", &filter.action),
                ("stage", &filter.stage),
                ("operation", &filter.operation),
                ("target", &filter.target),
                ("protocol", &filter.protocol),
            ],
            before: &filter.before,
            limit: filter.limit,
        };
        self.list(org_id, &listing)
            .await?
            .iter()
            .map(event)
            .collect()
    }
}
