//! `Resource`: an upstream system (database, API, server) that connectors serve.

use std::collections::BTreeMap;

pub use gate_config::connector::Protocol;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::SyncStatus;

/// A Gate resource: an upstream system that clients reach through a connector.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "gate.dev",
    version = "v1alpha1",
    kind = "Resource",
    plural = "resources",
    namespaced,
    status = "SyncStatus",
    shortname = "gres",
    category = "gate",
    doc = "An upstream system (database, HTTP API, SSH server, MCP server) served by Gate connectors; mirrored into the Gate control plane by the operator.",
    printcolumn(name = "Protocol", type_ = "string", json_path = ".spec.protocol"),
    printcolumn(name = "Host", type_ = "string", json_path = ".spec.endpoint.host"),
    printcolumn(name = "Port", type_ = "integer", json_path = ".spec.endpoint.port"),
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
pub struct ResourceSpec {
    /// Wire protocol of the upstream.
    #[schemars(schema_with = "protocol_schema")]
    pub protocol: Protocol,
    /// Where the upstream listens.
    pub endpoint: Endpoint,
    /// Default database (PostgreSQL, MySQL, MongoDB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) <= 128").message("database must be at most 128 characters"))]
    #[schemars(length(max = 128))]
    pub database: Option<String>,
    /// Port the connector listens on for this resource (sidecar: on loopback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("listenPort must be 1-65535"))]
    pub listen_port: Option<i32>,
    /// Labels policies see as `input.resource.labels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Admit sessions only for identities holding an approved, unexpired access grant.
    #[serde(default)]
    pub require_access_grant: bool,
    /// Groups whose members may approve access requests for this resource (empty: org admins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approver_groups: Vec<String>,
    /// The Secret (same namespace) holding the upstream credentials; read by connectors in the
    /// cluster, never copied into the control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretKeysRef>,
    /// Labels of the connectors that serve this resource (empty: every connector of the organization).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub connector_selector: BTreeMap<String, String>,
}

/// The schema of `spec.protocol`: one of the protocol names Gate speaks.
fn protocol_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = Protocol::ALL.iter().map(|p| p.as_str()).collect();
    schemars::json_schema!({
        "description": "Wire protocol of the upstream: postgres, mysql, mongodb, http, ssh or mcp.",
        "type": "string",
        "enum": names,
    })
}

/// Host and port of an upstream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// DNS name or IP address of the upstream.
    #[x_kube(validation = Rule::new("size(self) >= 1 && size(self) <= 253").message("host must be 1-253 characters"))]
    #[schemars(length(max = 253))]
    pub host: String,
    /// TCP port of the upstream.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("port must be 1-65535"))]
    pub port: i32,
}

/// A Secret in the object's namespace and the keys that hold the credentials.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeysRef {
    /// Name of the Secret.
    pub name: String,
    /// Key of the user name (default `username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_key: Option<String>,
    /// Key of the password (default `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_key: Option<String>,
}
