//! `Group`: a named set of people and workloads that policies and approvals refer to.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::SyncStatus;

/// A Gate group: members are identity names or emails.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gate.dev",
    version = "v1alpha1",
    kind = "Group",
    plural = "groups",
    namespaced,
    status = "SyncStatus",
    shortname = "ggrp",
    category = "gate",
    doc = "A group of identities (by name or email); mirrored into the Gate control plane by the operator. Members the control plane does not know yet are created as identities.",
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
#[serde(rename_all = "camelCase")]
pub struct GroupSpec {
    /// What the group is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 1024))]
    pub description: String,
    /// Identity names or emails (`alice@example.com`) of the members: letters, digits,
    /// `-`, `_`, `.` and `@`, at most 128 characters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000), inner(length(max = 128)))]
    #[x_kube(validation = Rule::new("self.all(m, m.matches('^[A-Za-z0-9._@-]{1,128}$'))").message("members must be identity names or emails"))]
    pub members: Vec<String>,
}
