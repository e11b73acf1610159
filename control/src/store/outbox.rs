//! The delivery outbox: rows written in the transaction of the change that causes them, claimed
//! by workers (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so replicas never share a row), then
//! marked delivered, rescheduled or dead.
//!
//! ```text
//! pending ──claim──▶ delivering ──2xx──▶ delivered
//!    ▲                   │ failure, attempts < max: next_attempt_at = now + backoff
//!    └───────────────────┤ lease (locked_until) passed: claimable again (a worker died)
//!    replay ◀── dead ◀───┘ failure at max_attempts
//! ```

use gate_proto::v1::Delivery;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Backend, Store, StoreError};
use crate::util::{new_id, now_ms, rfc3339, rfc3339_opt};

/// Event types a delivery can carry; webhooks select among them.
pub const EVENT_TYPES: &[&str] = &[
    "access.requested",
    "access.approved",
    "access.denied",
    "access.revoked",
    "access.expired",
    "policy.activated",
    "connector.offline",
];

/// The events Slack hears about.
pub const SLACK_EVENTS: &[&str] = &["access.requested", "access.approved", "access.denied"];

pub const STATES: &[&str] = &["pending", "delivering", "delivered", "dead"];

/// An event to deliver: its id, type, organization and JSON body.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub org_id: String,
    pub event_type: &'static str,
    pub body: String,
}

/// A claimed delivery, as a worker needs it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery: Delivery,
    pub attempts: u32,
}

fn delivery(row: &AnyRow) -> Result<Delivery, StoreError> {
    let attempts: i64 = row.try_get("attempts")?;
    Ok(Delivery {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        target_kind: row.try_get("target_kind")?,
        target_id: row.try_get("target_id")?,
        state: row.try_get("state")?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt_at: rfc3339(row.try_get("next_attempt_at")?),
        last_error: row.try_get("last_error")?,
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
        delivered_at: rfc3339_opt(row.try_get("delivered_at")?),
        payload: row.try_get("payload")?,
    })
}

/// Queue `event` for every enabled webhook of its organization that selected its type, and for
/// Slack when `slack` is set and Slack hears about the type. Runs on the caller's transaction.
pub(crate) async fn enqueue(
    conn: &mut AnyConnection,
    event: &Event,
    slack: bool,
) -> Result<usize, StoreError> {
    let rows = sqlx::query("SELECT id, events FROM webhooks WHERE org_id = $1 AND enabled = 1")
        .bind(&event.org_id)
        .fetch_all(&mut *conn)
        .await?;
    let mut targets = Vec::new();
    for row in rows {
        let events = super::parse_list(&row.try_get::<String, _>("events")?)?;
        if events.iter().any(|e| e == event.event_type) {
            targets.push(("webhook", row.try_get::<String, _>("id")?));
        }
    }
    if slack && SLACK_EVENTS.contains(&event.event_type) {
        targets.push(("slack", String::new()));
    }
    let now = now_ms();
    for (kind, target) in &targets {
        sqlx::query(
            "INSERT INTO deliveries (id, org_id, event_id, event_type, target_kind, target_id, payload, \
             state, attempts, next_attempt_at, locked_until, last_error, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, 0, '', $8, $8)",
        )
        .bind(new_id())
        .bind(&event.org_id)
        .bind(&event.id)
        .bind(event.event_type)
        .bind(*kind)
        .bind(target)
        .bind(&event.body)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(targets.len())
}

impl Store {
    /// Queue an event on its own transaction (changes that have no other write to join).
    pub async fn enqueue_event(&self, event: &Event, slack: bool) -> Result<usize, StoreError> {
        let mut tx = self.pool().begin().await?;
        let n = enqueue(&mut tx, event, slack).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Claim up to `limit` due deliveries for `lease_ms`: pending ones whose time has come and
    /// delivering ones whose worker's lease ran out. Each row goes to one worker only.
    pub async fn claim_deliveries(
        &self,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<Claimed>, StoreError> {
        let now = now_ms();
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE deliveries SET state = 'delivering', locked_until = $1, attempts = attempts + 1, \
             updated_at = $2 WHERE id IN (SELECT id FROM deliveries WHERE \
             (state = 'pending' AND next_attempt_at <= $2) OR (state = 'delivering' AND locked_until <= $2) \
             ORDER BY next_attempt_at, id LIMIT $3{lock}) RETURNING *"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now + lease_ms)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| {
                let d = delivery(row)?;
                Ok(Claimed {
                    attempts: d.attempts,
                    delivery: d,
                })
            })
            .collect()
    }

    /// Record a successful attempt. `attempts` is the claim's count: a worker whose lease ran out
    /// and was claimed again by another does not overwrite the newer claim's outcome.
    pub async fn mark_delivered(&self, id: &str, attempts: u32) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "UPDATE deliveries SET state = 'delivered', delivered_at = $1, updated_at = $1, \
             locked_until = 0, last_error = '' WHERE id = $2 AND state = 'delivering' AND attempts = $3",
        )
        .bind(now)
        .bind(id)
        .bind(i64::from(attempts))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Record a failed attempt: try again at `retry_at`, or, when `None`, make it a dead letter
    /// (`attempts` as for [`Store::mark_delivered`]). Returns the delivery as stored afterwards,
    /// `None` when a newer claim owns it.
    pub async fn mark_failed(
        &self,
        id: &str,
        attempts: u32,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<Option<Delivery>, StoreError> {
        let now = now_ms();
        let (state, next) = match retry_at {
            Some(at) => ("pending", at),
            None => ("dead", now),
        };
        let done = sqlx::query(
            "UPDATE deliveries SET state = $1, next_attempt_at = $2, last_error = $3, \
             locked_until = 0, updated_at = $4 WHERE id = $5 AND state = 'delivering' AND attempts = $6",
        )
        .bind(state)
        .bind(next)
        .bind(error)
        .bind(now)
        .bind(id)
        .bind(i64::from(attempts))
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        sqlx::query("SELECT * FROM deliveries WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(delivery)
            .transpose()
    }

    /// How many deliveries of every organization are in each state (for `/metrics`).
    pub async fn delivery_state_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM deliveries GROUP BY state")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("state")?, row.try_get("n")?)))
            .collect()
    }

    /// The organization's deliveries, newest first.
    pub async fn list_deliveries(
        &self,
        org_id: &str,
        state: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        sqlx::query(
            "SELECT * FROM deliveries WHERE org_id = $1 AND ($2 = '' OR state = $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(org_id)
        .bind(state.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(delivery)
        .collect()
    }

    pub async fn get_delivery(
        &self,
        org_id: &str,
        id: &str,
    ) -> Result<Option<Delivery>, StoreError> {
        sqlx::query("SELECT * FROM deliveries WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(delivery)
            .transpose()
    }

    /// Put a dead or delivered delivery back in the queue with its attempts reset; returns it as
    /// written, `None` when it is pending or being delivered (or does not exist).
    pub async fn replay_delivery(
        &self,
        org_id: &str,
        id: &str,
    ) -> Result<Option<Delivery>, StoreError> {
        let now = now_ms();
        sqlx::query(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = $1, \
             locked_until = 0, last_error = '', delivered_at = NULL, updated_at = $1 \
             WHERE org_id = $2 AND id = $3 AND state IN ('dead', 'delivered') RETURNING *",
        )
        .bind(now)
        .bind(org_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(delivery)
        .transpose()
    }
}
