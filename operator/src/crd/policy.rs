//! `Policy`: a managed Rego policy, its state and the resources it targets.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::SyncStatus;

/// A Gate policy: Rego evaluated by connectors at the stages and for the resources it targets.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gate.dev",
    version = "v1alpha1",
    kind = "Policy",
    plural = "policies",
    namespaced,
    status = "SyncStatus",
    shortname = "gpol",
    category = "gate",
    doc = "A Rego policy (inline or from a ConfigMap) with its state and targets; mirrored into the Gate control plane by the operator.",
    printcolumn(name = "State", type_ = "string", json_path = ".spec.state"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("has(self.rego) != has(self.configMapRef)").message("set exactly one of rego and configMapRef"))]
#[serde(rename_all = "camelCase")]
pub struct PolicySpec {
    /// What the policy is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = Rule::new("size(self) <= 1024").message("description must be at most 1024 characters"))]
    pub description: String,
    /// The Rego source (a module with `session`, `pre_request` and/or `post_request` rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rego: Option<String>,
    /// A ConfigMap key (same namespace) holding the Rego source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapKeyRef>,
    /// `draft` (compiled, not evaluated), `dry_run` (audited, not enforced) or `active`.
    #[serde(default)]
    pub state: PolicyState,
    /// Resource names or shell globs (`prod-*`); empty targets every resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// Stages evaluated; empty means all three.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
}

/// A key of a ConfigMap in the object's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// Name of the ConfigMap.
    pub name: String,
    /// Key holding the Rego text.
    pub key: String,
}

/// Lifecycle state of a policy.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum PolicyState {
    /// Compiled, not evaluated.
    #[default]
    #[serde(rename = "draft")]
    Draft,
    /// Evaluated and audited (`would_block`), never enforced.
    #[serde(rename = "dry_run")]
    DryRun,
    /// Enforced.
    #[serde(rename = "active")]
    Active,
}

impl PolicyState {
    /// The control plane's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyState::Draft => "draft",
            PolicyState::DryRun => "dry_run",
            PolicyState::Active => "active",
        }
    }
}

/// A policy stage.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, schemars::JsonSchema,
)]
pub enum Stage {
    /// When a session opens.
    #[serde(rename = "session")]
    Session,
    /// Before each request reaches the upstream.
    #[serde(rename = "pre_request")]
    PreRequest,
    /// On each response before it reaches the client.
    #[serde(rename = "post_request")]
    PostRequest,
}

impl Stage {
    /// The control plane's name of the stage.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Session => "session",
            Stage::PreRequest => "pre_request",
            Stage::PostRequest => "post_request",
        }
    }
}
