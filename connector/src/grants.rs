//! Access grants: a resource with `require_access_grant` (in the connector config or set by the
//! control plane) admits a session only for an identity holding an approved, unexpired grant, and
//! an open session ends when its grant expires or is revoked.

use gate_policy::GrantInfo;
use gate_proto::v1::Grant;
use gate_proto::wire::{now_ms, parse_rfc3339};

use crate::server::Gate;

/// The grant admitting `identity` to `resource`: `Ok(None)` when none is needed, `Err` with the
/// client-facing reason when one is needed and missing.
pub fn check(
    gate: &Gate,
    resource: &str,
    local_required: bool,
    identity: &str,
) -> Result<Option<Grant>, String> {
    let managed = gate.live.managed();
    if !managed.requires_grant(resource, local_required) {
        return Ok(None);
    }
    managed.grant_for(identity, resource, now_ms()).cloned().map(Some).ok_or_else(|| {
        format!(
            "resource \"{resource}\" requires an approved access request; none is active for \"{identity}\""
        )
    })
}

/// The policy input's `grant`.
pub fn input(grant: &Grant) -> GrantInfo {
    GrantInfo {
        id: grant.access_request_id.clone(),
        expires_at: Some(grant.expires_at.clone()),
        scopes: grant
            .scopes
            .iter()
            .map(|s| serde_json::json!({"operation": s.operation, "target": s.target}))
            .collect(),
    }
}

/// Resolves when `identity` no longer holds a grant for `resource` (expired, revoked, or no
/// longer required: then it never resolves); returns the reason to tell the client.
pub async fn ended(gate: &Gate, resource: &str, local_required: bool, identity: &str) -> String {
    let mut changes = gate.live.subscribe();
    loop {
        changes.mark_unchanged();
        let managed = gate.live.managed();
        if !managed.requires_grant(resource, local_required) {
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            continue;
        }
        let now = now_ms();
        let Some(grant) = managed.grant_for(identity, resource, now) else {
            return format!("access grant for \"{resource}\" ended (expired or revoked)");
        };
        let left = parse_rfc3339(&grant.expires_at)
            .unwrap_or(now)
            .saturating_sub(now);
        let left = std::time::Duration::from_millis(u64::try_from(left).unwrap_or(0));
        tokio::select! {
            () = tokio::time::sleep(left) => {}
            changed = changes.changed() => if changed.is_err() { tokio::time::sleep(left).await },
        }
    }
}
