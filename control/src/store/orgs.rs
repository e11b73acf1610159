//! Organizations and their cascade delete.

use gate_proto::v1::Organization;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, conflict};
use crate::util::{new_id, now_ms, rfc3339};

fn org(row: &AnyRow) -> Result<Organization, StoreError> {
    Ok(Organization {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: rfc3339(row.try_get("created_at")?),
    })
}

/// Tables whose rows belong to an organization, deleted with it.
const ORG_TABLES: &[&str] = &[
    "DELETE FROM api_keys WHERE org_id = $1",
    "DELETE FROM resources WHERE org_id = $1",
    "DELETE FROM policy_versions WHERE policy_id IN (SELECT id FROM policies WHERE org_id = $1)",
    "DELETE FROM policy_changes WHERE policy_id IN (SELECT id FROM policies WHERE org_id = $1)",
    "DELETE FROM policies WHERE org_id = $1",
    "DELETE FROM group_members WHERE group_id IN (SELECT id FROM identity_groups WHERE org_id = $1)",
    "DELETE FROM identity_groups WHERE org_id = $1",
    "DELETE FROM identities WHERE org_id = $1",
    "DELETE FROM connectors WHERE org_id = $1",
    "DELETE FROM audit_events WHERE org_id = $1",
    "DELETE FROM recordings WHERE org_id = $1",
    "DELETE FROM access_requests WHERE org_id = $1",
    "DELETE FROM webhooks WHERE org_id = $1",
    "DELETE FROM deliveries WHERE org_id = $1",
    "DELETE FROM slack_messages WHERE org_id = $1",
    "DELETE FROM org_revisions WHERE org_id = $1",
    "DELETE FROM organizations WHERE id = $1",
];

impl Store {
    pub async fn create_org(&self, name: &str) -> Result<Organization, StoreError> {
        let org = Organization {
            id: new_id(),
            name: name.to_owned(),
            created_at: String::new(),
        };
        let now = now_ms();
        sqlx::query("INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&org.id)
            .bind(name)
            .bind(now)
            .execute(self.pool())
            .await
            .map_err(conflict("an organization with this name"))?;
        Ok(Organization {
            created_at: rfc3339(now),
            ..org
        })
    }

    pub async fn get_org(&self, id: &str) -> Result<Option<Organization>, StoreError> {
        sqlx::query("SELECT id, name, created_at FROM organizations WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(org)
            .transpose()
    }

    pub async fn list_orgs(&self) -> Result<Vec<Organization>, StoreError> {
        sqlx::query("SELECT id, name, created_at FROM organizations ORDER BY name")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(org)
            .collect()
    }

    /// Delete an organization and everything in it; false when it did not exist.
    pub async fn delete_org(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let mut deleted = false;
        for statement in ORG_TABLES {
            let result = sqlx::query(*statement).bind(id).execute(&mut *tx).await?;
            deleted = result.rows_affected() > 0;
        }
        tx.commit().await?;
        Ok(deleted)
    }
}
