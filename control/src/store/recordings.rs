//! Recording metadata: stored once per (organization, id), listed newest first with keyset
//! pagination, and found by age for retention. The files are the service's (`service/recordings.rs`).

use gate_proto::v1::Recording;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::listing::Listing;
use super::{Store, StoreError};
use crate::util::rfc3339;

/// What to list; times are epoch milliseconds of the start.
#[derive(Debug, Default, Clone)]
pub struct RecordingFilter {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub resource: Option<String>,
    pub identity: Option<String>,
    pub protocol: Option<String>,
    /// Recordings strictly older than (started_at, id): the cursor of the previous page.
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

fn recording(row: &AnyRow) -> Result<Recording, StoreError> {
    let number = |name: &str| -> Result<u64, StoreError> {
        Ok(u64::try_from(row.try_get::<i64, _>(name)?).unwrap_or(0))
    };
    Ok(Recording {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        session_id: row.try_get("session_id")?,
        identity: row.try_get("identity")?,
        resource: row.try_get("resource")?,
        protocol: row.try_get("protocol")?,
        started_at: rfc3339(row.try_get("started_at")?),
        ended_at: rfc3339(row.try_get("ended_at")?),
        size_bytes: number("size_bytes")?,
        format: row.try_get("format")?,
        connector: row.try_get("connector")?,
        width: u32::try_from(number("width")?).unwrap_or(0),
        height: u32::try_from(number("height")?).unwrap_or(0),
        command: row.try_get("command")?,
        exit_status: row
            .try_get::<Option<i64>, _>("exit_status")?
            .and_then(|s| u32::try_from(s).ok()),
        interrupted: row.try_get::<i64, _>("interrupted")? != 0,
    })
}

impl Store {
    /// Store a recording's metadata (validated; times parsed); false when the id was stored before.
    pub async fn insert_recording(
        &self,
        org_id: &str,
        r: &Recording,
        started_ms: i64,
        ended_ms: i64,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "INSERT INTO recordings (id, org_id, session_id, connector, identity, resource, protocol, \
             format, started_at, ended_at, size_bytes, width, height, command, exit_status, interrupted, \
             stored_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
             ON CONFLICT (org_id, id) DO NOTHING",
        )
        .bind(&r.id)
        .bind(org_id)
        .bind(&r.session_id)
        .bind(&r.connector)
        .bind(&r.identity)
        .bind(&r.resource)
        .bind(&r.protocol)
        .bind(&r.format)
        .bind(started_ms)
        .bind(ended_ms)
        .bind(i64::try_from(r.size_bytes).unwrap_or(i64::MAX))
        .bind(i64::from(r.width))
        .bind(i64::from(r.height))
        .bind(&r.command)
        .bind(r.exit_status.map(i64::from))
        .bind(i64::from(r.interrupted))
        .bind(gate_proto::wire::now_ms())
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected() > 0)
    }

    pub async fn get_recording(
        &self,
        org_id: &str,
        id: &str,
    ) -> Result<Option<Recording>, StoreError> {
        sqlx::query("SELECT * FROM recordings WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(recording)
            .transpose()
    }

    /// Newest first (by start), at most `filter.limit`.
    pub async fn list_recordings(
        &self,
        org_id: &str,
        filter: &RecordingFilter,
    ) -> Result<Vec<Recording>, StoreError> {
        let listing = Listing {
            table: "recordings",
            time: "started_at",
            from_ms: filter.since_ms,
            to_ms: filter.until_ms,
            equal: vec![
                ("resource", &filter.resource),
                ("identity", &filter.identity),
                ("protocol", &filter.protocol),
            ],
            before: &filter.before,
            limit: filter.limit,
        };
        self.list(org_id, &listing)
            .await?
            .iter()
            .map(recording)
            .collect()
    }

    /// False when there was no such recording.
    pub async fn delete_recording(&self, org_id: &str, id: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM recordings WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Up to `limit` recordings (org, id) of any organization that ended before `ended_before_ms`.
    pub async fn expired_recordings(
        &self,
        ended_before_ms: i64,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT org_id, id FROM recordings WHERE ended_at < $1 ORDER BY ended_at LIMIT {limit}"
        )))
        .bind(ended_before_ms)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("org_id")?, row.try_get("id")?)))
            .collect()
    }
}
