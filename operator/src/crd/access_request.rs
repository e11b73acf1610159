//! `AccessRequest`: just-in-time access to one resource, approved in the control plane.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::SyncStatus;

/// A request for time-boxed access to a resource; approved, denied or revoked in the control
/// plane (UI, Slack, API), which the operator reports in `.status`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gate.dev",
    version = "v1alpha1",
    kind = "AccessRequest",
    plural = "accessrequests",
    namespaced,
    status = "AccessRequestStatus",
    shortname = "gar",
    category = "gate",
    doc = "A just-in-time access request for one Gate resource. The spec is immutable; approval, denial, expiry and revocation happen in the control plane and show in .status. Deleting the object revokes the grant.",
    validation = Rule::new("self.spec == oldSelf.spec").message("spec is immutable; create a new AccessRequest"),
    printcolumn(name = "Resource", type_ = "string", json_path = ".spec.resource"),
    printcolumn(name = "Subject", type_ = "string", json_path = ".spec.subject"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.expiresAt"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct AccessRequestSpec {
    /// Name of the Gate resource (as known to the control plane).
    #[schemars(length(min = 1, max = 128))]
    pub resource: String,
    /// The identity that gets access (an identity name in the control plane).
    #[schemars(length(min = 1, max = 128))]
    pub subject: String,
    /// Who asks (a user name or email); `kubernetes:NAMESPACE/NAME` of this object when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 254))]
    pub requested_by: Option<String>,
    /// Why access is needed; shown to approvers and audited.
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 1024").message("reason must be 1-1024 characters"))]
    #[schemars(length(max = 1024))]
    pub reason: String,
    /// How long access lasts once approved, as a duration (`30m`, `4h`, `72h`); at most 7 days.
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|ms|s|m|h))+$') && duration(self) > duration('0s') && duration(self) <= duration('168h')").message("duration must be a positive duration of at most 168h (7 days), e.g. 4h"))]
    #[schemars(length(max = 32))]
    pub duration: String,
    /// What the grant allows (empty: everything the resource's policies allow).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub scopes: Vec<Scope>,
}

/// One operation on one target that a grant allows (`query` on `public.orders`, `tool` on `deploy`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    /// What kind of thing the grant covers: `query`, `session`, `tool`, `resource` or `prompt`.
    #[x_kube(validation = Rule::new("self in ['query', 'session', 'tool', 'resource', 'prompt']").message("operation must be one of query, session, tool, resource, prompt"))]
    #[schemars(length(max = 16))]
    pub operation: String,
    /// What it applies to (a table, a tool name, a resource URI, ...).
    #[serde(default)]
    #[schemars(length(max = 128))]
    pub target: String,
}

/// Where a request stands in the control plane.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum Phase {
    /// Waiting for an approver.
    Pending,
    /// Approved; access lasts until `expiresAt`.
    Approved,
    /// Denied by an approver.
    Denied,
    /// Approved access has ended.
    Expired,
    /// Approved access was withdrawn.
    Revoked,
}

impl Phase {
    /// The phase for the control plane's status word; `None` for an unknown word.
    pub fn from_control_plane(status: &str) -> Option<Phase> {
        Some(match status {
            "pending" => Phase::Pending,
            "approved" => Phase::Approved,
            "denied" => Phase::Denied,
            "expired" => Phase::Expired,
            "revoked" => Phase::Revoked,
            _ => return None,
        })
    }
}

/// Status of an access request: the shared sync status plus the request's outcome.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessRequestStatus {
    /// Sync status (observedGeneration, conditions, controlPlaneId, lastSyncTime).
    #[serde(flatten)]
    pub sync: SyncStatus,
    /// `Pending`, `Approved`, `Denied`, `Expired` or `Revoked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Who approved the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// Who denied the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied_by: Option<String>,
    /// Who revoked the grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    /// When approved access ends (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}
