//! Managed policies: every text change is a new version; every state or version change is recorded
//! with who and when.

use gate_proto::v1::{Policy, PolicyChange, PolicyHistory, PolicyVersion};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::outbox::enqueue;
use super::{Store, StoreError, conflict, json_list, parse_list};
use crate::delivery::events::event;
use crate::util::{new_id, now_ms, rfc3339};

/// The `policy.activated` event for a policy now active at `version` (queued in the change's
/// transaction).
async fn activated(
    conn: &mut sqlx::AnyConnection,
    org_id: &str,
    id: &str,
    name: &str,
    from: (&str, i64),
    version: i64,
    by: &str,
) -> Result<(), StoreError> {
    let data = serde_json::json!({"policy": {
        "id": id, "org_id": org_id, "name": name, "version": version, "state": "active",
        "previous_state": from.0, "previous_version": from.1, "activated_by": by,
    }});
    enqueue(conn, &event("policy.activated", org_id, data), false).await?;
    Ok(())
}

const COLUMNS: &str = "p.id, p.org_id, p.name, p.description, p.stages, p.targets, p.state, \
     p.version, p.origin, p.owner, p.created_at, p.updated_at, p.updated_by, v.rego";
const FROM: &str =
    "FROM policies p JOIN policy_versions v ON v.policy_id = p.id AND v.version = p.version";

fn policy(row: &AnyRow) -> Result<Policy, StoreError> {
    let version: i64 = row.try_get("version")?;
    Ok(Policy {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        stages: parse_list(&row.try_get::<String, _>("stages")?)?,
        targets: parse_list(&row.try_get::<String, _>("targets")?)?,
        state: row.try_get("state")?,
        version: u32::try_from(version)
            .map_err(|_| StoreError::Corrupt("policies.version".into()))?,
        rego: row.try_get("rego")?,
        origin: row.try_get("origin")?,
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
        updated_by: row.try_get("updated_by")?,
        owner: row.try_get("owner")?,
    })
}

/// A new policy.
#[derive(Debug)]
pub struct PolicyInsert<'a> {
    pub org_id: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub stages: &'a [String],
    pub targets: &'a [String],
    pub state: &'a str,
    pub rego: &'a str,
    pub origin: &'a str,
    pub owner: &'a str,
    pub by: &'a str,
}

/// Changes to a policy; `None` keeps the current value.
#[derive(Debug, Default)]
pub struct PolicyPatch<'a> {
    pub description: Option<&'a str>,
    pub stages: Option<&'a [String]>,
    pub targets: Option<&'a [String]>,
    pub rego: Option<&'a str>,
}

impl Store {
    pub async fn insert_policy(&self, p: PolicyInsert<'_>) -> Result<Policy, StoreError> {
        let id = new_id();
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO policies (id, org_id, name, description, stages, targets, state, version, \
             latest_version, origin, created_at, updated_at, updated_by, owner) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 1, 1, $8, $9, $9, $10, $11)",
        )
        .bind(&id)
        .bind(p.org_id)
        .bind(p.name)
        .bind(p.description)
        .bind(json_list(p.stages))
        .bind(json_list(p.targets))
        .bind(p.state)
        .bind(p.origin)
        .bind(now)
        .bind(p.by)
        .bind(p.owner)
        .execute(&mut *tx)
        .await
        .map_err(conflict("a policy with this name"))?;
        insert_version(&mut tx, &id, 1, p.rego, now, p.by).await?;
        insert_change(&mut tx, &id, ("", p.state), (0, 1), p.by, now).await?;
        if p.state == "active" {
            activated(&mut tx, p.org_id, &id, p.name, ("", 0), 1, p.by).await?;
        }
        tx.commit().await?;
        self.bump_revision(p.org_id).await?;
        self.get_policy(p.org_id, &id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("policy vanished after insert".into()))
    }

    pub async fn get_policy(&self, org_id: &str, id: &str) -> Result<Option<Policy>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} {FROM} WHERE p.org_id = $1 AND p.id = $2"
        )))
        .bind(org_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(policy)
        .transpose()
    }

    pub async fn list_policies(&self, org_id: &str) -> Result<Vec<Policy>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} {FROM} WHERE p.org_id = $1 ORDER BY p.name"
        )))
        .bind(org_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(policy)
        .collect()
    }

    /// Apply `patch`; a new text becomes version `latest + 1` and takes effect at once.
    pub async fn update_policy(
        &self,
        org_id: &str,
        id: &str,
        patch: PolicyPatch<'_>,
        by: &str,
    ) -> Result<Option<Policy>, StoreError> {
        let Some(current) = self.get_policy(org_id, id).await? else {
            return Ok(None);
        };
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let mut version = i64::from(current.version);
        if let Some(rego) = patch.rego.filter(|r| *r != current.rego) {
            let latest: i64 =
                sqlx::query_scalar("SELECT latest_version FROM policies WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
            version = latest + 1;
            insert_version(&mut tx, id, version, rego, now, by).await?;
            let state = current.state.as_str();
            insert_change(
                &mut tx,
                id,
                (state, state),
                (i64::from(current.version), version),
                by,
                now,
            )
            .await?;
        }
        sqlx::query(
            "UPDATE policies SET description = $1, stages = $2, targets = $3, version = $4, \
             latest_version = CASE WHEN latest_version < $4 THEN $4 ELSE latest_version END, \
             updated_at = $5, updated_by = $6 WHERE org_id = $7 AND id = $8",
        )
        .bind(patch.description.unwrap_or(&current.description))
        .bind(json_list(patch.stages.unwrap_or(&current.stages)))
        .bind(json_list(patch.targets.unwrap_or(&current.targets)))
        .bind(version)
        .bind(now)
        .bind(by)
        .bind(org_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.bump_revision(org_id).await?;
        self.get_policy(org_id, id).await
    }

    /// Change state and optionally the version in effect. `Ok(None)`: no such policy;
    /// `Err(Conflict)`: no such version.
    pub async fn set_policy_state(
        &self,
        org_id: &str,
        id: &str,
        state: &str,
        version: Option<u32>,
        by: &str,
    ) -> Result<Option<Policy>, StoreError> {
        let Some(current) = self.get_policy(org_id, id).await? else {
            return Ok(None);
        };
        let to_version = i64::from(version.unwrap_or(current.version));
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT version FROM policy_versions WHERE policy_id = $1 AND version = $2",
        )
        .bind(id)
        .bind(to_version)
        .fetch_optional(self.pool())
        .await?;
        if exists.is_none() {
            return Err(StoreError::Conflict(format!(
                "version {to_version} does not exist"
            )));
        }
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE policies SET state = $1, version = $2, updated_at = $3, updated_by = $4 \
             WHERE org_id = $5 AND id = $6",
        )
        .bind(state)
        .bind(to_version)
        .bind(now)
        .bind(by)
        .bind(org_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let from = (current.state.as_str(), state);
        insert_change(
            &mut tx,
            id,
            from,
            (i64::from(current.version), to_version),
            by,
            now,
        )
        .await?;
        let was = (current.state.as_str(), i64::from(current.version));
        if state == "active" && was != ("active", to_version) {
            activated(&mut tx, org_id, id, &current.name, was, to_version, by).await?;
        }
        tx.commit().await?;
        self.bump_revision(org_id).await?;
        self.get_policy(org_id, id).await
    }

    pub async fn policy_history(
        &self,
        org_id: &str,
        id: &str,
    ) -> Result<Option<PolicyHistory>, StoreError> {
        if self.get_policy(org_id, id).await?.is_none() {
            return Ok(None);
        }
        let versions = sqlx::query(
            "SELECT version, rego, created_at, created_by FROM policy_versions WHERE policy_id = $1 ORDER BY version",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|row| {
            Ok(PolicyVersion {
                policy_id: id.to_owned(),
                version: u32::try_from(row.try_get::<i64, _>("version")?).unwrap_or(0),
                rego: row.try_get("rego")?,
                created_at: rfc3339(row.try_get("created_at")?),
                created_by: row.try_get("created_by")?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
        let changes = sqlx::query(
            "SELECT from_state, to_state, from_version, to_version, changed_by, changed_at \
             FROM policy_changes WHERE policy_id = $1 ORDER BY changed_at, id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|row| {
            Ok(PolicyChange {
                policy_id: id.to_owned(),
                from_state: row.try_get("from_state")?,
                to_state: row.try_get("to_state")?,
                from_version: u32::try_from(row.try_get::<i64, _>("from_version")?).unwrap_or(0),
                to_version: u32::try_from(row.try_get::<i64, _>("to_version")?).unwrap_or(0),
                changed_by: row.try_get("changed_by")?,
                changed_at: rfc3339(row.try_get("changed_at")?),
            })
        })
        .collect::<Result<_, StoreError>>()?;
        Ok(Some(PolicyHistory { versions, changes }))
    }

    pub async fn delete_policy(&self, org_id: &str, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let result = sqlx::query("DELETE FROM policies WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if result.rows_affected() == 0 {
            return Ok(false);
        }
        for statement in [
            "DELETE FROM policy_versions WHERE policy_id = $1",
            "DELETE FROM policy_changes WHERE policy_id = $1",
        ] {
            sqlx::query(statement).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.bump_revision(org_id).await?;
        Ok(true)
    }
}

async fn insert_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    policy_id: &str,
    version: i64,
    rego: &str,
    now: i64,
    by: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO policy_versions (policy_id, version, rego, created_at, created_by) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(policy_id)
    .bind(version)
    .bind(rego)
    .bind(now)
    .bind(by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_change(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    policy_id: &str,
    (from_state, to_state): (&str, &str),
    (from_version, to_version): (i64, i64),
    by: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO policy_changes (id, policy_id, from_state, to_state, from_version, to_version, \
         changed_by, changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id())
    .bind(policy_id)
    .bind(from_state)
    .bind(to_state)
    .bind(from_version)
    .bind(to_version)
    .bind(by)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
