//! MCP tool pins: the first-seen definition of each tool of a resource, and a changed definition
//! waiting for an admin's approval. Reports and approvals bump the organization's revision so
//! connectors learn of them through the snapshot.

use gate_proto::v1::{ToolDefinition, ToolPin};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Store, StoreError, bump_revision_in};
use crate::util::{now_ms, rfc3339, rfc3339_opt};

fn pin(row: &AnyRow, definitions: bool) -> Result<ToolPin, StoreError> {
    let text = |name: &str| -> Result<String, StoreError> {
        Ok(if definitions {
            row.try_get(name)?
        } else {
            String::new()
        })
    };
    Ok(ToolPin {
        resource: row.try_get("resource")?,
        tool: row.try_get("tool")?,
        pinned_digest: row.try_get("pinned_digest")?,
        pinned_definition: text("pinned_definition")?,
        pending_digest: row.try_get("pending_digest")?,
        pending_definition: text("pending_definition")?,
        first_seen_at: rfc3339(row.try_get("first_seen_at")?),
        changed_at: rfc3339_opt(row.try_get("changed_at")?),
        approved_by: row.try_get("approved_by")?,
        approved_at: rfc3339_opt(row.try_get("approved_at")?),
    })
}

/// How an approval went.
#[derive(Debug)]
pub enum Approval {
    Approved(Box<ToolPin>),
    /// No pin of that tool exists.
    NotFound,
    /// The tool matches its pin: nothing waits for approval.
    NothingPending,
    /// What waits is not what the approver reviewed: the pending digest now.
    Stale(String),
}

async fn fetch(
    conn: &mut AnyConnection,
    org_id: &str,
    resource: &str,
    tool: &str,
) -> Result<Option<AnyRow>, StoreError> {
    Ok(
        sqlx::query(
            "SELECT * FROM mcp_tool_pins WHERE org_id = $1 AND resource = $2 AND tool = $3",
        )
        .bind(org_id)
        .bind(resource)
        .bind(tool)
        .fetch_optional(&mut *conn)
        .await?,
    )
}

impl Store {
    /// Record what a connector listed (validated by the service): unknown tools are pinned as
    /// they are, a definition that differs from its pin becomes the pending one, and a tool that
    /// is back to its pin has nothing pending any more. The reported tools' pins after that, and
    /// whether anything changed (then the revision was bumped).
    pub async fn report_tools(
        &self,
        org_id: &str,
        resource: &str,
        tools: &[ToolDefinition],
    ) -> Result<(Vec<ToolPin>, bool), StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let mut changed = false;
        let mut pins = Vec::with_capacity(tools.len());
        for tool in tools {
            let inserted = sqlx::query(
                "INSERT INTO mcp_tool_pins (org_id, resource, tool, pinned_digest, pinned_definition, \
                 first_seen_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (org_id, resource, tool) DO NOTHING",
            )
            .bind(org_id)
            .bind(resource)
            .bind(&tool.name)
            .bind(&tool.digest)
            .bind(&tool.definition)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() > 0 {
                changed = true;
            } else {
                // Back to the pin: clear what was pending. Another change: it is pending now.
                let updated = sqlx::query(
                    "UPDATE mcp_tool_pins SET \
                     pending_digest = CASE WHEN pinned_digest = $1 THEN '' ELSE $1 END, \
                     pending_definition = CASE WHEN pinned_digest = $1 THEN '' ELSE $2 END, \
                     changed_at = CASE WHEN pinned_digest = $1 THEN NULL ELSE $3 END \
                     WHERE org_id = $4 AND resource = $5 AND tool = $6 \
                     AND ((pinned_digest = $1 AND pending_digest <> '') \
                       OR (pinned_digest <> $1 AND pending_digest <> $1))",
                )
                .bind(&tool.digest)
                .bind(&tool.definition)
                .bind(now)
                .bind(org_id)
                .bind(resource)
                .bind(&tool.name)
                .execute(&mut *tx)
                .await?;
                changed |= updated.rows_affected() > 0;
            }
            if let Some(row) = fetch(&mut tx, org_id, resource, &tool.name).await? {
                pins.push(pin(&row, false)?);
            }
        }
        if changed {
            bump_revision_in(&mut tx, org_id).await?;
        }
        tx.commit().await?;
        Ok((pins, changed))
    }

    /// The pins of one resource or of every resource, by resource and tool; without
    /// `definitions` (snapshots) only the digests.
    pub async fn list_tool_pins(
        &self,
        org_id: &str,
        resource: Option<&str>,
        definitions: bool,
    ) -> Result<Vec<ToolPin>, StoreError> {
        let rows = match resource {
            Some(resource) => {
                sqlx::query(
                    "SELECT * FROM mcp_tool_pins WHERE org_id = $1 AND resource = $2 ORDER BY tool",
                )
                .bind(org_id)
                .bind(resource)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query("SELECT * FROM mcp_tool_pins WHERE org_id = $1 ORDER BY resource, tool")
                    .bind(org_id)
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter().map(|row| pin(row, definitions)).collect()
    }

    /// Make the pending definition of `tool` its pin, if it is still the one with `digest`.
    pub async fn approve_tool_pin(
        &self,
        org_id: &str,
        resource: &str,
        tool: &str,
        digest: &str,
        by: &str,
    ) -> Result<Approval, StoreError> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query(
            "UPDATE mcp_tool_pins SET pinned_digest = pending_digest, \
             pinned_definition = pending_definition, pending_digest = '', pending_definition = '', \
             changed_at = NULL, approved_by = $1, approved_at = $2 \
             WHERE org_id = $3 AND resource = $4 AND tool = $5 AND pending_digest = $6 \
             AND pending_digest <> ''",
        )
        .bind(by)
        .bind(now)
        .bind(org_id)
        .bind(resource)
        .bind(tool)
        .bind(digest)
        .execute(&mut *tx)
        .await?;
        let row = fetch(&mut tx, org_id, resource, tool).await?;
        let outcome = match row {
            None => Approval::NotFound,
            Some(row) if updated.rows_affected() > 0 => {
                bump_revision_in(&mut tx, org_id).await?;
                Approval::Approved(Box::new(pin(&row, true)?))
            }
            Some(row) => {
                let pending: String = row.try_get("pending_digest")?;
                if pending.is_empty() {
                    Approval::NothingPending
                } else {
                    Approval::Stale(pending)
                }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }
}
