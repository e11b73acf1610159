//! The `gate.dev/v1alpha1` custom resources and what every kind shares: status, conditions, marks.
// KubeSchema derives re-declare each type in a hidden module, which trips `unreachable_pub`.
#![allow(unreachable_pub)]
// Several `printcolumn(..., type_ = "string", ...)` look like duplicated attributes to clippy.
#![allow(clippy::duplicated_attributes)]

mod access_request;
mod group;
mod policy;
mod resource;

pub use access_request::{AccessRequest, AccessRequestSpec, AccessRequestStatus, Phase, Scope};
pub use group::{Group, GroupSpec};
pub use policy::{ConfigMapKeyRef, Policy, PolicySpec, PolicyState, Stage};
pub use resource::{Endpoint, Protocol, Resource, ResourceSpec, SecretKeysRef};

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The API group of every Gate kind.
pub const GROUP: &str = "gate.dev";
/// The finalizer the operator puts on objects it mirrors into the control plane.
pub const FINALIZER: &str = "gate.dev/control-plane";
/// The server-side-apply field manager of the operator's status writes.
pub const FIELD_MANAGER: &str = "gate-operator";
/// `origin` of control-plane objects the operator manages.
pub const ORIGIN: &str = "kubernetes";

/// Condition types.
pub mod condition {
    /// The object is mirrored in the control plane as the spec says.
    pub const READY: &str = "Ready";
    /// The last reconcile reached the control plane and matched it to the spec.
    pub const SYNCED: &str = "Synced";
    /// The control-plane object belongs to this Kubernetes object (origin and UID match).
    pub const OWNED: &str = "Owned";
}

/// Condition reasons.
pub mod reason {
    /// Everything matches.
    pub const RECONCILED: &str = "Reconciled";
    /// The control-plane object was created by the operator.
    pub const CREATED: &str = "Created";
    /// The control-plane object had drifted and was set back to the spec.
    pub const DRIFT_CORRECTED: &str = "DriftCorrected";
    /// An object of that name exists in the control plane and was not created for this object.
    pub const ORIGIN_MISMATCH: &str = "OriginMismatch";
    /// The spec cannot be mirrored (the control plane or the operator refused it).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The control plane could not be reached or failed.
    pub const CONTROL_PLANE_ERROR: &str = "ControlPlaneError";
    /// The object is being deleted.
    pub const DELETING: &str = "Deleting";
}

/// A status condition (the shape of `metav1.Condition`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Synced` or `Owned`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase word saying why (`Reconciled`, `OriginMismatch`, `InvalidSpec`, `ControlPlaneError`).
    pub reason: String,
    /// A human-readable explanation.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// The `metadata.generation` this condition describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The status every Gate kind reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// The `metadata.generation` last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Synced` and `Owned`, one entry per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The id of the mirrored object in the Gate control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_id: Option<String>,
    /// When the object last matched the control plane (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
}

impl SyncStatus {
    /// The condition of `type_`, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// Every CRD, in the order `crdgen` writes them: `(file name, definition)`.
pub fn all() -> Vec<(
    &'static str,
    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
)> {
    use kube::CustomResourceExt;
    vec![
        ("resources.gate.dev.yaml", Resource::crd()),
        ("policies.gate.dev.yaml", Policy::crd()),
        ("groups.gate.dev.yaml", Group::crd()),
        ("accessrequests.gate.dev.yaml", AccessRequest::crd()),
    ]
}
