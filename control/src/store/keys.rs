//! API keys: stored as SHA-256 of the secret, looked up by that hash, revocable.

use gate_proto::v1::ApiKey;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError};
use crate::util::{now_ms, rfc3339, rfc3339_opt};

/// A key as the authenticator needs it.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub key: ApiKey,
    pub last_used_ms: Option<i64>,
    pub revoked: bool,
}

const COLUMNS: &str = "id, org_id, name, role, prefix, created_at, last_used_at, revoked_at";

fn key(row: &AnyRow) -> Result<StoredKey, StoreError> {
    let last_used: Option<i64> = row.try_get("last_used_at")?;
    let revoked: Option<i64> = row.try_get("revoked_at")?;
    Ok(StoredKey {
        key: ApiKey {
            id: row.try_get("id")?,
            org_id: row.try_get("org_id")?,
            name: row.try_get("name")?,
            role: row.try_get("role")?,
            prefix: row.try_get("prefix")?,
            created_at: rfc3339(row.try_get("created_at")?),
            last_used_at: rfc3339_opt(last_used),
            revoked_at: rfc3339_opt(revoked),
        },
        last_used_ms: last_used,
        revoked: revoked.is_some(),
    })
}

impl Store {
    pub async fn insert_key(&self, key: &ApiKey, secret_hash: &str) -> Result<ApiKey, StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO api_keys (id, org_id, name, role, prefix, secret_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&key.id)
        .bind(&key.org_id)
        .bind(&key.name)
        .bind(&key.role)
        .bind(&key.prefix)
        .bind(secret_hash)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(ApiKey {
            created_at: rfc3339(now),
            ..key.clone()
        })
    }

    pub async fn key_by_hash(&self, secret_hash: &str) -> Result<Option<StoredKey>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_keys WHERE secret_hash = $1"
        )))
        .bind(secret_hash)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(key)
        .transpose()
    }

    pub async fn list_keys(&self, org_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_keys WHERE org_id = $1 ORDER BY created_at, id"
        )))
        .bind(org_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|row| key(row).map(|k| k.key))
        .collect()
    }

    /// Revoke a key of `org_id`; `None` when there is no such key.
    pub async fn revoke_key(&self, org_id: &str, id: &str) -> Result<Option<ApiKey>, StoreError> {
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(org_id)
        .bind(id)
        .execute(self.pool())
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_keys WHERE org_id = $1 AND id = $2"
        )))
        .bind(org_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(|row| key(row).map(|k| k.key))
        .transpose()
    }

    pub async fn touch_key(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
