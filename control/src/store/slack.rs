//! Slack messages posted for access requests: where each went, so its outcome can update it.

use super::{Store, StoreError};

impl Store {
    /// Remember the message posted for a request (a repost replaces it).
    pub async fn save_slack_message(
        &self,
        org_id: &str,
        access_request_id: &str,
        channel: &str,
        ts: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO slack_messages (org_id, access_request_id, channel, ts) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (org_id, access_request_id) DO UPDATE SET channel = $3, ts = $4",
        )
        .bind(org_id)
        .bind(access_request_id)
        .bind(channel)
        .bind(ts)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The channel and `ts` of the message posted for a request.
    pub async fn slack_message(
        &self,
        org_id: &str,
        access_request_id: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT channel, ts FROM slack_messages WHERE org_id = $1 AND access_request_id = $2",
        )
        .bind(org_id)
        .bind(access_request_id)
        .fetch_optional(self.pool())
        .await?)
    }
}
