//! Connectors: registration (by name, idempotent), heartbeats, deregistration and status; a
//! connector going offline (deregistered, or its heartbeats stopped) queues `connector.offline`
//! once, in the transaction that records it.

use gate_proto::v1::Connector;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::outbox::enqueue;
use std::collections::HashMap;

use super::{Store, StoreError, json_list, json_map, parse_list, parse_map};
use crate::delivery::events::event;
use crate::util::{new_id, now_ms, rfc3339};

use crate::service::HEARTBEAT_SECONDS;

/// Heartbeats older than this make a connector offline.
fn offline_after_ms() -> i64 {
    10 * i64::from(HEARTBEAT_SECONDS) * 1000
}

/// Queue `connector.offline` for `c` on the caller's transaction.
async fn announce(
    conn: &mut sqlx::AnyConnection,
    c: &Connector,
    reason: &str,
) -> Result<(), StoreError> {
    let data = serde_json::json!({"connector": {
        "id": c.id, "org_id": c.org_id, "name": c.name, "version": c.version, "host": c.host,
        "resources": c.resources, "last_heartbeat_at": c.last_heartbeat_at, "reason": reason,
    }});
    enqueue(conn, &event("connector.offline", &c.org_id, data), false).await?;
    Ok(())
}

/// online: heartbeat within 3 intervals; stale: within 10; offline: older or deregistered.
fn status(now: i64, last_heartbeat: i64, deregistered: bool) -> &'static str {
    let age = now.saturating_sub(last_heartbeat);
    let interval = i64::from(HEARTBEAT_SECONDS) * 1000;
    if deregistered || age > 10 * interval {
        "offline"
    } else if age > 3 * interval {
        "stale"
    } else {
        "online"
    }
}

fn connector(row: &AnyRow, now: i64) -> Result<Connector, StoreError> {
    let last: i64 = row.try_get("last_heartbeat_at")?;
    let deregistered: Option<i64> = row.try_get("deregistered_at")?;
    Ok(Connector {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        resources: parse_list(&row.try_get::<String, _>("resources")?)?,
        host: row.try_get("host")?,
        status: status(now, last, deregistered.is_some()).to_owned(),
        registered_at: rfc3339(row.try_get("registered_at")?),
        last_heartbeat_at: rfc3339(last),
        labels: parse_map(&row.try_get::<String, _>("labels")?, "connectors.labels")?,
    })
}

impl Store {
    /// Register (or re-register, keeping the id) a connector by name. New or changed labels bump
    /// the organization's revision: they change which resources its snapshot holds.
    pub async fn register_connector(
        &self,
        org_id: &str,
        name: &str,
        version: &str,
        resources: &[String],
        host: &str,
        labels: &HashMap<String, String>,
    ) -> Result<Connector, StoreError> {
        let now = now_ms();
        let labels = json_map(labels);
        let mut tx = self.pool().begin().await?;
        // Write first: a SQLite transaction that reads and then writes fails
        // with SQLITE_BUSY (no wait) when another writer went first; this no-op
        // update takes the write lock (on PostgreSQL, the row's) before the read.
        sqlx::query("UPDATE connectors SET labels = labels WHERE org_id = $1 AND name = $2")
            .bind(org_id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let before: Option<String> =
            sqlx::query_scalar("SELECT labels FROM connectors WHERE org_id = $1 AND name = $2")
                .bind(org_id)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO connectors (id, org_id, name, version, resources, host, registered_at, last_heartbeat_at, labels) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) \
             ON CONFLICT (org_id, name) DO UPDATE SET version = $4, resources = $5, host = $6, \
             registered_at = $7, last_heartbeat_at = $7, deregistered_at = NULL, offline_announced_at = NULL, \
             labels = $8",
        )
        .bind(new_id())
        .bind(org_id)
        .bind(name)
        .bind(version)
        .bind(json_list(resources))
        .bind(host)
        .bind(now)
        .bind(&labels)
        .execute(&mut *tx)
        .await?;
        if before.as_deref().unwrap_or("{}") != labels {
            super::bump_revision_in(&mut tx, org_id).await?;
        }
        let row = sqlx::query("SELECT * FROM connectors WHERE org_id = $1 AND name = $2")
            .bind(org_id)
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        connector(&row, now)
    }

    /// Record a heartbeat; false when the connector is unknown in `org_id`.
    pub async fn heartbeat(&self, org_id: &str, id: &str) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE connectors SET last_heartbeat_at = $1, deregistered_at = NULL, \
             offline_announced_at = NULL WHERE org_id = $2 AND id = $3",
        )
        .bind(now_ms())
        .bind(org_id)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Deregister; the first deregistration since the connector was last seen queues
    /// `connector.offline` (reason `deregistered`).
    pub async fn deregister(&self, org_id: &str, id: &str) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let result =
            sqlx::query("UPDATE connectors SET deregistered_at = $1 WHERE org_id = $2 AND id = $3")
                .bind(now)
                .bind(org_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        let first = sqlx::query(
            "UPDATE connectors SET offline_announced_at = $1 WHERE org_id = $2 AND id = $3 \
             AND offline_announced_at IS NULL RETURNING *",
        )
        .bind(now)
        .bind(org_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = first {
            announce(&mut tx, &connector(&row, now)?, "deregistered").await?;
        }
        tx.commit().await?;
        Ok(result.rows_affected() > 0)
    }

    /// Queue `connector.offline` (reason `heartbeats_stopped`) for every connector whose
    /// heartbeats stopped and that was not announced yet. Each row is marked by one statement,
    /// so replicas sweeping at once announce each connector once. Returns how many.
    pub async fn announce_offline_connectors(&self) -> Result<usize, StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let rows = sqlx::query(
            "UPDATE connectors SET offline_announced_at = $1 WHERE offline_announced_at IS NULL \
             AND deregistered_at IS NULL AND last_heartbeat_at < $2 RETURNING *",
        )
        .bind(now)
        .bind(now - offline_after_ms())
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            announce(&mut tx, &connector(row, now)?, "heartbeats_stopped").await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    /// How many connectors of every organization are online, stale, offline (heartbeats
    /// stopped) or deregistered (for `/metrics`).
    pub async fn connector_status_counts(&self) -> Result<[(&'static str, u64); 4], StoreError> {
        let now = now_ms();
        let rows = sqlx::query("SELECT last_heartbeat_at, deregistered_at FROM connectors")
            .fetch_all(self.pool())
            .await?;
        let mut counts = [
            ("online", 0),
            ("stale", 0),
            ("offline", 0),
            ("deregistered", 0),
        ];
        for row in &rows {
            let last: i64 = row.try_get("last_heartbeat_at")?;
            let deregistered: Option<i64> = row.try_get("deregistered_at")?;
            let status = if deregistered.is_some() {
                "deregistered"
            } else {
                status(now, last, false)
            };
            if let Some(entry) = counts.iter_mut().find(|(name, _)| *name == status) {
                entry.1 += 1;
            }
        }
        Ok(counts)
    }

    pub async fn list_connectors(&self, org_id: &str) -> Result<Vec<Connector>, StoreError> {
        let now = now_ms();
        sqlx::query("SELECT * FROM connectors WHERE org_id = $1 ORDER BY name")
            .bind(org_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|row| connector(row, now))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::status;

    #[test]
    fn status_follows_heartbeat_age() {
        assert_eq!(status(100_000, 100_000, false), "online");
        assert_eq!(status(100_000, 60_000, false), "stale");
        assert_eq!(status(200_000, 60_000, false), "offline");
        assert_eq!(status(100_000, 100_000, true), "offline");
    }
}
