//! Webhooks: a URL, the event types it hears, and the secret its deliveries are signed with.
//! The secret is kept (signing needs it) but never read back through the API.

use gate_proto::v1::Webhook;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, json_list, parse_list};
use crate::util::{now_ms, rfc3339};

fn webhook(row: &AnyRow) -> Result<Webhook, StoreError> {
    let enabled: i64 = row.try_get("enabled")?;
    Ok(Webhook {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        url: row.try_get("url")?,
        events: parse_list(&row.try_get::<String, _>("events")?)?,
        enabled: enabled != 0,
        description: row.try_get("description")?,
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
    })
}

impl Store {
    pub async fn insert_webhook(&self, w: &Webhook, secret: &str) -> Result<Webhook, StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO webhooks (id, org_id, url, events, secret, description, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(&w.id)
        .bind(&w.org_id)
        .bind(&w.url)
        .bind(json_list(&w.events))
        .bind(secret)
        .bind(&w.description)
        .bind(i64::from(w.enabled))
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(Webhook {
            created_at: rfc3339(now),
            updated_at: rfc3339(now),
            ..w.clone()
        })
    }

    pub async fn get_webhook(&self, org_id: &str, id: &str) -> Result<Option<Webhook>, StoreError> {
        sqlx::query("SELECT * FROM webhooks WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(webhook)
            .transpose()
    }

    /// A webhook and its signing secret, for the delivery worker (no org scope: the delivery
    /// row already carries it and is checked by the caller).
    pub async fn webhook_for_delivery(
        &self,
        org_id: &str,
        id: &str,
    ) -> Result<Option<(Webhook, String)>, StoreError> {
        let row = sqlx::query("SELECT * FROM webhooks WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some((webhook(&row)?, row.try_get("secret")?))),
        }
    }

    pub async fn list_webhooks(&self, org_id: &str) -> Result<Vec<Webhook>, StoreError> {
        sqlx::query("SELECT * FROM webhooks WHERE org_id = $1 ORDER BY created_at, id")
            .bind(org_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(webhook)
            .collect()
    }

    /// Replace url, events, description and enabled; `None` when there is no such webhook.
    pub async fn update_webhook(&self, w: &Webhook) -> Result<Option<Webhook>, StoreError> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE webhooks SET url = $1, events = $2, description = $3, enabled = $4, updated_at = $5 \
             WHERE org_id = $6 AND id = $7",
        )
        .bind(&w.url)
        .bind(json_list(&w.events))
        .bind(&w.description)
        .bind(i64::from(w.enabled))
        .bind(now)
        .bind(&w.org_id)
        .bind(&w.id)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.get_webhook(&w.org_id, &w.id).await
    }

    pub async fn delete_webhook(&self, org_id: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM webhooks WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
