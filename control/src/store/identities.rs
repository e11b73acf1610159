//! Identities, groups and membership; an identity's `groups` are the names of the groups it is in.

use gate_proto::v1::{Group, Identity};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, conflict, json_list, parse_list};
use crate::util::{now_ms, rfc3339};

fn identity(row: &AnyRow) -> Result<Identity, StoreError> {
    Ok(Identity {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        kind: row.try_get("kind")?,
        groups: Vec::new(),
        origin: row.try_get("origin")?,
        created_at: rfc3339(row.try_get("created_at")?),
        ssh_keys: parse_list(&row.try_get::<String, _>("ssh_keys")?)?,
    })
}

fn group(row: &AnyRow) -> Result<Group, StoreError> {
    Ok(Group {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        members: Vec::new(),
        origin: row.try_get("origin")?,
        created_at: rfc3339(row.try_get("created_at")?),
        owner: row.try_get("owner")?,
    })
}

impl Store {
    pub async fn insert_identity(&self, i: &Identity) -> Result<Identity, StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO identities (id, org_id, name, email, kind, origin, created_at, ssh_keys) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&i.id)
        .bind(&i.org_id)
        .bind(&i.name)
        .bind(&i.email)
        .bind(&i.kind)
        .bind(&i.origin)
        .bind(now)
        .bind(json_list(&i.ssh_keys))
        .execute(self.pool())
        .await
        .map_err(conflict("an identity with this name"))?;
        self.bump_revision(&i.org_id).await?;
        Ok(Identity {
            created_at: rfc3339(now),
            groups: Vec::new(),
            ..i.clone()
        })
    }

    pub async fn get_identity(
        &self,
        org_id: &str,
        id: &str,
    ) -> Result<Option<Identity>, StoreError> {
        let row = sqlx::query("SELECT * FROM identities WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut found = identity(&row)?;
        found.groups = sqlx::query_scalar(
            "SELECT g.name FROM identity_groups g JOIN group_members m ON m.group_id = g.id \
             WHERE m.identity_id = $1 ORDER BY g.name",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        Ok(Some(found))
    }

    pub async fn list_identities(&self, org_id: &str) -> Result<Vec<Identity>, StoreError> {
        let mut identities: Vec<Identity> =
            sqlx::query("SELECT * FROM identities WHERE org_id = $1 ORDER BY name")
                .bind(org_id)
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(identity)
                .collect::<Result<_, _>>()?;
        let memberships: Vec<(String, String)> = sqlx::query_as(
            "SELECT m.identity_id, g.name FROM group_members m JOIN identity_groups g ON g.id = m.group_id \
             WHERE g.org_id = $1 ORDER BY g.name",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        for (identity_id, group_name) in memberships {
            if let Some(i) = identities.iter_mut().find(|i| i.id == identity_id) {
                i.groups.push(group_name);
            }
        }
        Ok(identities)
    }

    pub async fn update_identity(&self, i: &Identity) -> Result<Option<Identity>, StoreError> {
        let result = sqlx::query(
            "UPDATE identities SET name = $1, email = $2, kind = $3, ssh_keys = $4 \
             WHERE org_id = $5 AND id = $6",
        )
        .bind(&i.name)
        .bind(&i.email)
        .bind(&i.kind)
        .bind(json_list(&i.ssh_keys))
        .bind(&i.org_id)
        .bind(&i.id)
        .execute(self.pool())
        .await
        .map_err(conflict("an identity with this name"))?;
        if result.rows_affected() == 0 {
            return Ok(None);
        }
        self.bump_revision(&i.org_id).await?;
        self.get_identity(&i.org_id, &i.id).await
    }

    pub async fn delete_identity(&self, org_id: &str, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let result = sqlx::query("DELETE FROM identities WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if result.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM group_members WHERE identity_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.bump_revision(org_id).await?;
        Ok(true)
    }

    pub async fn insert_group(&self, g: &Group) -> Result<Group, StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO identity_groups (id, org_id, name, description, origin, created_at, owner) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&g.id)
        .bind(&g.org_id)
        .bind(&g.name)
        .bind(&g.description)
        .bind(&g.origin)
        .bind(now)
        .bind(&g.owner)
        .execute(self.pool())
        .await
        .map_err(conflict("a group with this name"))?;
        self.bump_revision(&g.org_id).await?;
        Ok(Group {
            created_at: rfc3339(now),
            members: Vec::new(),
            ..g.clone()
        })
    }

    pub async fn get_group(&self, org_id: &str, id: &str) -> Result<Option<Group>, StoreError> {
        let row = sqlx::query("SELECT * FROM identity_groups WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut found = group(&row)?;
        found.members = sqlx::query_scalar(
            "SELECT identity_id FROM group_members WHERE group_id = $1 ORDER BY identity_id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        Ok(Some(found))
    }

    pub async fn list_groups(&self, org_id: &str) -> Result<Vec<Group>, StoreError> {
        let mut groups: Vec<Group> =
            sqlx::query("SELECT * FROM identity_groups WHERE org_id = $1 ORDER BY name")
                .bind(org_id)
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(group)
                .collect::<Result<_, _>>()?;
        let members: Vec<(String, String)> = sqlx::query_as(
            "SELECT m.group_id, m.identity_id FROM group_members m JOIN identity_groups g ON g.id = m.group_id \
             WHERE g.org_id = $1 ORDER BY m.identity_id",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        for (group_id, identity_id) in members {
            if let Some(g) = groups.iter_mut().find(|g| g.id == group_id) {
                g.members.push(identity_id);
            }
        }
        Ok(groups)
    }

    pub async fn update_group(&self, g: &Group) -> Result<Option<Group>, StoreError> {
        let result = sqlx::query(
            "UPDATE identity_groups SET name = $1, description = $2 WHERE org_id = $3 AND id = $4",
        )
        .bind(&g.name)
        .bind(&g.description)
        .bind(&g.org_id)
        .bind(&g.id)
        .execute(self.pool())
        .await
        .map_err(conflict("a group with this name"))?;
        if result.rows_affected() == 0 {
            return Ok(None);
        }
        self.bump_revision(&g.org_id).await?;
        self.get_group(&g.org_id, &g.id).await
    }

    pub async fn delete_group(&self, org_id: &str, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let result = sqlx::query("DELETE FROM identity_groups WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if result.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM group_members WHERE group_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.bump_revision(org_id).await?;
        Ok(true)
    }

    /// Add or remove a member; both ids must exist in `org_id` (checked by the caller).
    pub async fn set_membership(
        &self,
        org_id: &str,
        group_id: &str,
        identity_id: &str,
        member: bool,
    ) -> Result<(), StoreError> {
        let statement = if member {
            "INSERT INTO group_members (group_id, identity_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM group_members WHERE group_id = $1 AND identity_id = $2"
        };
        sqlx::query(statement)
            .bind(group_id)
            .bind(identity_id)
            .execute(self.pool())
            .await?;
        self.bump_revision(org_id).await?;
        Ok(())
    }
}
