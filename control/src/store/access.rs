//! Access requests and the grants derived from them (approved and not yet expired).

use gate_proto::v1::{AccessRequest, Grant, GrantScope};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::outbox::enqueue;
use super::{Store, StoreError, bump_revision_in};
use crate::delivery::events::access_event;
use crate::util::{now_ms, rfc3339, rfc3339_opt};

fn scopes_json(scopes: &[GrantScope]) -> String {
    let pairs: Vec<(&str, &str)> = scopes
        .iter()
        .map(|s| (s.operation.as_str(), s.target.as_str()))
        .collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".to_owned())
}

fn parse_scopes(text: &str) -> Result<Vec<GrantScope>, StoreError> {
    let pairs: Vec<(String, String)> = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("access_requests.scopes: {e}")))?;
    Ok(pairs
        .into_iter()
        .map(|(operation, target)| GrantScope { operation, target })
        .collect())
}

fn request(row: &AnyRow, now: i64) -> Result<AccessRequest, StoreError> {
    let expires: Option<i64> = row.try_get("expires_at")?;
    let mut status: String = row.try_get("status")?;
    // An approval whose time is up reads as expired, whether or not anyone marked it.
    if status == "approved" && expires.is_some_and(|e| e <= now) {
        status = "expired".to_owned();
    }
    Ok(AccessRequest {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        requested_by: row.try_get("requested_by")?,
        subject: row.try_get("subject")?,
        resource_id: row.try_get("resource_id")?,
        resource: row.try_get("resource")?,
        reason: row.try_get("reason")?,
        duration_seconds: u32::try_from(row.try_get::<i64, _>("duration_seconds")?).unwrap_or(0),
        scopes: parse_scopes(&row.try_get::<String, _>("scopes")?)?,
        status,
        approved_by: row.try_get("approved_by")?,
        denied_by: row.try_get("denied_by")?,
        revoked_by: row.try_get("revoked_by")?,
        expires_at: rfc3339_opt(expires),
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}

/// A state change: which status it needs, which it sets, and who did it.
#[derive(Debug, Clone, Copy)]
pub enum Transition<'a> {
    Approve { by: &'a str },
    Deny { by: &'a str },
    Revoke { by: &'a str },
    Expire,
}

impl Transition<'_> {
    /// The event type this change is announced as.
    pub fn event_type(self) -> &'static str {
        match self {
            Transition::Approve { .. } => "access.approved",
            Transition::Deny { .. } => "access.denied",
            Transition::Revoke { .. } => "access.revoked",
            Transition::Expire => "access.expired",
        }
    }
}

async fn fetch(
    conn: &mut sqlx::AnyConnection,
    org_id: &str,
    id: &str,
) -> Result<Option<AccessRequest>, StoreError> {
    let now = now_ms();
    sqlx::query("SELECT * FROM access_requests WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(|row| request(row, now))
        .transpose()
}

impl Store {
    /// Insert a pending request and queue its `access.requested` deliveries in one transaction
    /// (`slack`: Slack is configured and hears about it too).
    pub async fn insert_access_request(
        &self,
        r: &AccessRequest,
        slack: bool,
    ) -> Result<AccessRequest, StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO access_requests (id, org_id, requested_by, subject, resource_id, resource, reason, \
             duration_seconds, scopes, status, approved_by, denied_by, revoked_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', '', '', '', $10, $10)",
        )
        .bind(&r.id)
        .bind(&r.org_id)
        .bind(&r.requested_by)
        .bind(&r.subject)
        .bind(&r.resource_id)
        .bind(&r.resource)
        .bind(&r.reason)
        .bind(i64::from(r.duration_seconds))
        .bind(scopes_json(&r.scopes))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let stored = fetch(&mut tx, &r.org_id, &r.id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("access request vanished after insert".into()))?;
        enqueue(&mut tx, &access_event("access.requested", &stored), slack).await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub async fn get_access_request(
        &self,
        org_id: &str,
        id: &str,
    ) -> Result<Option<AccessRequest>, StoreError> {
        let now = now_ms();
        sqlx::query("SELECT * FROM access_requests WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(|row| request(row, now))
            .transpose()
    }

    pub async fn list_access_requests(
        &self,
        org_id: &str,
    ) -> Result<Vec<AccessRequest>, StoreError> {
        let now = now_ms();
        sqlx::query(
            "SELECT * FROM access_requests WHERE org_id = $1 ORDER BY created_at DESC, id DESC",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|row| request(row, now))
        .collect()
    }

    /// Apply `transition` if the request is in the status it needs; returns the request as it is
    /// afterwards, and whether the change happened. The change and its deliveries commit
    /// together or not at all.
    pub async fn transition_access_request(
        &self,
        org_id: &str,
        id: &str,
        transition: Transition<'_>,
        slack: bool,
    ) -> Result<Option<(AccessRequest, bool)>, StoreError> {
        let now = now_ms();
        let (sql, by): (&'static str, &str) = match transition {
            Transition::Approve { by } => (
                "UPDATE access_requests SET status = 'approved', approved_by = $1, \
                 expires_at = $2 + duration_seconds * 1000, updated_at = $2 \
                 WHERE org_id = $3 AND id = $4 AND status = 'pending'",
                by,
            ),
            Transition::Deny { by } => (
                "UPDATE access_requests SET status = 'denied', denied_by = $1, updated_at = $2 \
                 WHERE org_id = $3 AND id = $4 AND status = 'pending'",
                by,
            ),
            Transition::Revoke { by } => (
                "UPDATE access_requests SET status = 'revoked', revoked_by = $1, updated_at = $2 \
                 WHERE org_id = $3 AND id = $4 AND status = 'approved' AND expires_at > $2",
                by,
            ),
            // Every statement binds the same four parameters; PostgreSQL refuses an unreferenced
            // one, hence the no-op `$1 = ''` here.
            Transition::Expire => (
                "UPDATE access_requests SET status = 'expired', expires_at = \
                 CASE WHEN expires_at < $2 THEN expires_at ELSE $2 END, updated_at = $2 \
                 WHERE org_id = $3 AND id = $4 AND status = 'approved' AND $1 = ''",
                "",
            ),
        };
        let mut tx = self.pool().begin().await?;
        let result = sqlx::query(sql)
            .bind(by)
            .bind(now)
            .bind(org_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let changed = result.rows_affected() > 0;
        let after = fetch(&mut tx, org_id, id).await?;
        if changed && let Some(request) = &after {
            bump_revision_in(&mut tx, org_id).await?;
            enqueue(
                &mut tx,
                &access_event(transition.event_type(), request),
                slack,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(after.map(|r| (r, changed)))
    }

    /// Mark approved requests whose time is up as expired and queue their `access.expired`
    /// events, in one transaction. Each row is changed by one statement, so replicas sweeping at
    /// once announce each expiry once. Returns the organizations that changed.
    pub async fn expire_due_requests(&self, slack: bool) -> Result<Vec<String>, StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let rows = sqlx::query(
            "UPDATE access_requests SET status = 'expired', updated_at = $1 \
             WHERE status = 'approved' AND expires_at <= $1 RETURNING *",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut orgs = Vec::new();
        for row in &rows {
            let r = request(row, now)?;
            enqueue(&mut tx, &access_event("access.expired", &r), slack).await?;
            if !orgs.contains(&r.org_id) {
                bump_revision_in(&mut tx, &r.org_id).await?;
                orgs.push(r.org_id);
            }
        }
        tx.commit().await?;
        Ok(orgs)
    }

    /// Approved requests that have not expired, as connectors enforce them.
    pub async fn active_grants(&self, org_id: &str) -> Result<Vec<Grant>, StoreError> {
        let now = now_ms();
        sqlx::query(
            "SELECT * FROM access_requests WHERE org_id = $1 AND status = 'approved' AND expires_at > $2 ORDER BY id",
        )
        .bind(org_id)
        .bind(now)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|row| {
            let r = request(row, now)?;
            Ok(Grant {
                access_request_id: r.id,
                subject: r.subject,
                resource: r.resource,
                scopes: r.scopes,
                expires_at: r.expires_at,
            })
        })
        .collect()
    }
}
