//! Resources: upstream systems, unique by name within an organization.

use gate_proto::v1::Resource;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, conflict, json_list, json_map, parse_list, parse_map};
use crate::util::{now_ms, rfc3339};

const COLUMNS: &str = "id, org_id, name, protocol, host, port, database_name, labels, \
                       require_access_grant, origin, created_at, updated_at, approver_groups, owner, \
                       connector_selector";

fn resource(row: &AnyRow) -> Result<Resource, StoreError> {
    let labels = parse_map(&row.try_get::<String, _>("labels")?, "resources.labels")?;
    let connector_selector = parse_map(
        &row.try_get::<String, _>("connector_selector")?,
        "resources.connector_selector",
    )?;
    let port: i64 = row.try_get("port")?;
    let grant: i64 = row.try_get("require_access_grant")?;
    Ok(Resource {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        name: row.try_get("name")?,
        protocol: row.try_get("protocol")?,
        host: row.try_get("host")?,
        port: u32::try_from(port).map_err(|_| StoreError::Corrupt("resources.port".into()))?,
        database: row.try_get("database_name")?,
        labels,
        require_access_grant: grant != 0,
        origin: row.try_get("origin")?,
        created_at: rfc3339(row.try_get("created_at")?),
        updated_at: rfc3339(row.try_get("updated_at")?),
        approver_groups: parse_list(&row.try_get::<String, _>("approver_groups")?)?,
        owner: row.try_get("owner")?,
        connector_selector,
    })
}

impl Store {
    pub async fn insert_resource(&self, r: &Resource) -> Result<Resource, StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO resources (id, org_id, name, protocol, host, port, database_name, labels, \
             require_access_grant, origin, created_at, updated_at, approver_groups, owner, \
             connector_selector) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13, $14)",
        )
        .bind(&r.id)
        .bind(&r.org_id)
        .bind(&r.name)
        .bind(&r.protocol)
        .bind(&r.host)
        .bind(i64::from(r.port))
        .bind(&r.database)
        .bind(json_map(&r.labels))
        .bind(i64::from(r.require_access_grant))
        .bind(&r.origin)
        .bind(now)
        .bind(json_list(&r.approver_groups))
        .bind(&r.owner)
        .bind(json_map(&r.connector_selector))
        .execute(self.pool())
        .await
        .map_err(conflict("a resource with this name"))?;
        self.bump_revision(&r.org_id).await?;
        Ok(Resource {
            created_at: rfc3339(now),
            updated_at: rfc3339(now),
            ..r.clone()
        })
    }

    pub async fn get_resource(
        &self,
        org_id: &str,
        id: &str,
    ) -> Result<Option<Resource>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM resources WHERE org_id = $1 AND id = $2"
        )))
        .bind(org_id)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(resource)
        .transpose()
    }

    pub async fn list_resources(&self, org_id: &str) -> Result<Vec<Resource>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM resources WHERE org_id = $1 ORDER BY name"
        )))
        .bind(org_id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(resource)
        .collect()
    }

    /// Replace the mutable fields; `None` when the resource does not exist in `org_id`.
    pub async fn update_resource(&self, r: &Resource) -> Result<Option<Resource>, StoreError> {
        let result = sqlx::query(
            "UPDATE resources SET name = $1, protocol = $2, host = $3, port = $4, database_name = $5, \
             labels = $6, require_access_grant = $7, updated_at = $8, approver_groups = $11, \
             connector_selector = $12 WHERE org_id = $9 AND id = $10",
        )
        .bind(&r.name)
        .bind(&r.protocol)
        .bind(&r.host)
        .bind(i64::from(r.port))
        .bind(&r.database)
        .bind(json_map(&r.labels))
        .bind(i64::from(r.require_access_grant))
        .bind(now_ms())
        .bind(&r.org_id)
        .bind(&r.id)
        .bind(json_list(&r.approver_groups))
        .bind(json_map(&r.connector_selector))
        .execute(self.pool())
        .await
        .map_err(conflict("a resource with this name"))?;
        if result.rows_affected() == 0 {
            return Ok(None);
        }
        self.bump_revision(&r.org_id).await?;
        self.get_resource(&r.org_id, &r.id).await
    }

    pub async fn delete_resource(&self, org_id: &str, id: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM resources WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        if result.rows_affected() > 0 {
            self.bump_revision(org_id).await?;
        }
        Ok(result.rows_affected() > 0)
    }
}
