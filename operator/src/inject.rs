//! The sidecar injector's pure core: a pod annotated `gate.dev/inject: "true"` gets the connector
//! as a native sidecar (an init container with `restartPolicy: Always`, first in the list), one
//! loopback port per resource in `gate.dev/resources`, health probes, resources from
//! annotations or defaults, an emptyDir for its state, its control-plane token from a Secret,
//! and each resource's credentials Secret (`spec.credentialsSecretRef` of its `Resource`)
//! mounted read-only. Re-injecting an injected pod changes nothing.

use std::collections::BTreeMap;

use json_patch::{AddOperation, Patch, PatchOperation};

use crate::crd::SecretKeysRef;
use k8s_openapi::api::core::v1::Pod;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use serde_json::{Value, json};

/// Opt-in annotation.
pub const INJECT: &str = "gate.dev/inject";
/// `name:port,name:port` (or bare names, numbered from `first_port`).
pub const RESOURCES: &str = "gate.dev/resources";
/// Set on injected pods.
pub const INJECTED: &str = "gate.dev/injected";
/// Name of the injected container.
pub const CONTAINER: &str = "gate-connector";
/// Where the sidecar's emptyDir (snapshot, audit spool, recordings) is mounted.
pub const STATE_DIR: &str = "/var/lib/gate";
/// Where each resource's credentials Secret is mounted (`<dir>/<resource>/{username,password}`).
pub const CREDENTIALS_DIR: &str = "/var/run/gate/credentials";

/// How sidecars are built.
#[derive(Clone, Debug)]
pub struct InjectConfig {
    pub image: String,
    pub control_plane_url: String,
    /// The connector's health port (`/healthz`, `/readyz`, `/metrics`).
    pub health_port: u16,
    /// First loopback port for resources named without one.
    pub first_port: u16,
    /// Default `cpu`/`memory` requests and limits.
    pub requests: BTreeMap<String, String>,
    pub limits: BTreeMap<String, String>,
    /// The Secret (in the pod's namespace) and key holding the connector's control-plane token.
    pub token_secret: String,
    pub token_key: String,
    /// The issuer of identity tokens sidecars accept (`GATE_TOKEN_ISSUER`); `None`: the
    /// control-plane URL.
    pub token_issuer: Option<String>,
}

impl Default for InjectConfig {
    fn default() -> Self {
        InjectConfig {
            image: "ghcr.io/gate-dev/gate-connector:latest".into(),
            control_plane_url: "http://gate-control.gate-system:8080".into(),
            health_port: 9090,
            first_port: 15432,
            requests: BTreeMap::from([
                ("cpu".into(), "50m".into()),
                ("memory".into(), "64Mi".into()),
            ]),
            limits: BTreeMap::from([("memory".into(), "256Mi".into())]),
            token_secret: "gate-connector-token".into(),
            token_key: "token".into(),
            token_issuer: None,
        }
    }
}

/// Parse a sidecar default of `--sidecar-requests` / `--sidecar-limits`: `cpu=50m,memory=64Mi`
/// (only `cpu` and `memory`; an empty text means none).
pub fn parse_amounts(flag: &str, text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, amount)) = item.split_once('=') else {
            return Err(format!(
                "{flag}: {item:?} is not name=amount (e.g. cpu=50m,memory=64Mi)"
            ));
        };
        let (name, amount) = (name.trim(), amount.trim());
        if !matches!(name, "cpu" | "memory") {
            return Err(format!("{flag}: {name:?} is not cpu or memory"));
        }
        let valid = !amount.is_empty()
            && amount.starts_with(|c: char| c.is_ascii_digit())
            && amount
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.');
        if !valid {
            return Err(format!(
                "{flag}: {name}={amount:?} is not a quantity (e.g. 50m, 64Mi)"
            ));
        }
        if out.insert(name.to_owned(), amount.to_owned()).is_some() {
            return Err(format!("{flag}: {name} is given twice"));
        }
    }
    Ok(out)
}

/// Parse `gate.dev/resources`: every problem named.
pub fn parse_resources(text: &str, first_port: u16) -> Result<Vec<(String, u16)>, String> {
    let mut out: Vec<(String, u16)> = Vec::new();
    for (i, item) in text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        let (name, port) = match item.split_once(':') {
            Some((name, port)) => {
                let port: u16 = port
                    .parse()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("{RESOURCES}: {item:?}: port must be 1-65535"))?;
                (name, port)
            }
            None => (
                item,
                first_port.saturating_add(u16::try_from(i).unwrap_or(u16::MAX)),
            ),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!("{RESOURCES}: {name:?} is not a resource name"));
        }
        if out.iter().any(|(n, p)| n == name || *p == port) {
            return Err(format!("{RESOURCES}: {item:?} repeats a name or a port"));
        }
        out.push((name.to_owned(), port));
    }
    if out.is_empty() {
        return Err(format!(
            "{RESOURCES}: name at least one resource (e.g. orders-db:6432)"
        ));
    }
    Ok(out)
}

/// The resources `pod` asks to be injected with; `Ok(None)` when it did not opt in or already
/// has the sidecar; `Err` when its annotations are wrong.
pub fn wanted_resources(
    pod: &Pod,
    config: &InjectConfig,
) -> Result<Option<Vec<(String, u16)>>, String> {
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    if annotations.get(INJECT).map(String::as_str) != Some("true") {
        return Ok(None);
    }
    let spec = pod.spec.as_ref().ok_or("pod without spec")?;
    let init = spec.init_containers.as_deref().unwrap_or(&[]);
    if init
        .iter()
        .chain(&spec.containers)
        .any(|c| c.name == CONTAINER)
    {
        return Ok(None);
    }
    parse_resources(
        annotations.get(RESOURCES).map_or("", String::as_str),
        config.first_port,
    )
    .map(Some)
}

/// [`patch_with_credentials`] for resources without a credentials Secret.
pub fn patch_for(pod: &Pod, config: &InjectConfig) -> Result<Option<Patch>, String> {
    patch_with_credentials(pod, config, &BTreeMap::new())
}

/// The JSON patch that injects the sidecar into `pod`, mounting `credentials[resource]` for
/// each resource that has one; `Ok(None)` when the pod did not opt in or already has it; `Err`
/// when the annotations are wrong (the pod is refused with the reason).
pub fn patch_with_credentials(
    pod: &Pod,
    config: &InjectConfig,
    credentials: &BTreeMap<String, SecretKeysRef>,
) -> Result<Option<Patch>, String> {
    let Some(resources) = wanted_resources(pod, config)? else {
        return Ok(None);
    };
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    let spec = pod.spec.as_ref().ok_or("pod without spec")?;
    let amount = |key: &str, defaults: &BTreeMap<String, String>| -> Value {
        let mut out = serde_json::Map::new();
        for what in ["cpu", "memory"] {
            let value = annotations
                .get(&format!("gate.dev/{what}-{key}"))
                .or_else(|| defaults.get(what));
            if let Some(v) = value {
                out.insert(what.to_owned(), json!(v));
            }
        }
        Value::Object(out)
    };
    let listen: Vec<String> = resources.iter().map(|(n, p)| format!("{n}:{p}")).collect();
    let (volumes, mut mounts) = credential_volumes(&resources, credentials);
    mounts.insert(0, json!({"name": STATE_VOLUME, "mountPath": STATE_DIR}));
    let mut env = vec![
        json!({"name": "GATE_CONTROL_URL", "value": config.control_plane_url}),
        json!({"name": "GATE_CONTROL_TOKEN", "valueFrom": {"secretKeyRef": {"name": config.token_secret, "key": config.token_key}}}),
        json!({"name": "GATE_SIDECAR_RESOURCES", "value": listen.join(",")}),
        json!({"name": "GATE_HEALTH_ADDR", "value": format!("0.0.0.0:{}", config.health_port)}),
        json!({"name": "GATE_STATE_DIR", "value": STATE_DIR}),
        json!({"name": "GATE_CREDENTIALS_DIR", "value": CREDENTIALS_DIR}),
        json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}),
        json!({"name": "POD_SERVICE_ACCOUNT", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}}),
    ];
    if let Some(issuer) = &config.token_issuer {
        env.push(json!({"name": "GATE_TOKEN_ISSUER", "value": issuer}));
    }
    let mut ports: Vec<Value> = resources
        .iter()
        .map(|(_, p)| json!({"containerPort": p, "protocol": "TCP"}))
        .collect();
    ports.push(
        json!({"name": "gate-health", "containerPort": config.health_port, "protocol": "TCP"}),
    );
    let probe = |path: &str| json!({"httpGet": {"path": path, "port": config.health_port}, "periodSeconds": 5});
    let container = json!({
        "name": CONTAINER,
        "image": config.image,
        "restartPolicy": "Always",
        "args": ["--sidecar"],
        "env": env,
        "volumeMounts": mounts,
        "ports": ports,
        "readinessProbe": probe("/readyz"),
        "livenessProbe": probe("/healthz"),
        "startupProbe": {"httpGet": {"path": "/readyz", "port": config.health_port}, "periodSeconds": 1, "failureThreshold": 60},
        "resources": {"requests": amount("request", &config.requests), "limits": amount("limit", &config.limits)},
        "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]}},
    });
    let add = |path: &str, value: Value| {
        PatchOperation::Add(AddOperation {
            path: path.parse().unwrap_or_default(),
            value,
        })
    };
    let mut ops = Vec::new();
    if spec.init_containers.is_none() {
        ops.push(add("/spec/initContainers", json!([container])));
    } else {
        // First, so it starts before the other init containers and serves them too.
        ops.push(add("/spec/initContainers/0", container));
    }
    let state = json!({"name": STATE_VOLUME, "emptyDir": {}});
    let volumes = std::iter::once(state).chain(volumes);
    if spec.volumes.is_none() {
        ops.push(add("/spec/volumes", Value::Array(volumes.collect())));
    } else {
        ops.extend(volumes.map(|v| add("/spec/volumes/-", v)));
    }
    ops.push(add(
        "/metadata/annotations/gate.dev~1injected",
        json!("true"),
    ));
    Ok(Some(Patch(ops)))
}

/// The emptyDir volume of the sidecar's state.
const STATE_VOLUME: &str = "gate-connector-state";

/// One Secret volume per resource with credentials (its user name and password keys as the
/// files `username` and `password`), and the sidecar's read-only mounts of them.
fn credential_volumes(
    resources: &[(String, u16)],
    credentials: &BTreeMap<String, SecretKeysRef>,
) -> (Vec<Value>, Vec<Value>) {
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for (i, (name, _)) in resources.iter().enumerate() {
        let Some(secret) = credentials.get(name) else {
            continue;
        };
        // Numbered: resource names may hold characters a volume name may not.
        let volume = format!("gate-credentials-{i}");
        let key = |k: &Option<String>, default: &str| k.clone().unwrap_or_else(|| default.into());
        volumes.push(
            json!({"name": volume, "secret": {"secretName": secret.name, "items": [
                {"key": key(&secret.username_key, "username"), "path": "username"},
                {"key": key(&secret.password_key, "password"), "path": "password"},
            ]}}),
        );
        mounts.push(json!({"name": volume, "mountPath": format!("{CREDENTIALS_DIR}/{name}"), "readOnly": true}));
    }
    (volumes, mounts)
}

/// Answer one AdmissionReview (the webhook's handler body) for resources without credentials.
pub fn review(
    review: AdmissionReview<Pod>,
    config: &InjectConfig,
) -> AdmissionReview<DynamicObject> {
    review_with_credentials(review, config, &BTreeMap::new())
}

/// Answer one AdmissionReview, mounting `credentials` (by resource name).
pub fn review_with_credentials(
    review: AdmissionReview<Pod>,
    config: &InjectConfig,
    credentials: &BTreeMap<String, SecretKeysRef>,
) -> AdmissionReview<DynamicObject> {
    answer(review, |request| match request.object.as_ref() {
        Some(pod) => patch_with_credentials(pod, config, credentials),
        None => Ok(None),
    })
}

/// Answer an AdmissionReview with `decide`'s verdict on its request: no
/// patch (allowed unchanged), a patch (allowed, mutated), or a refusal.
pub fn answer<T>(
    review: AdmissionReview<T>,
    decide: impl FnOnce(&AdmissionRequest<T>) -> Result<Option<Patch>, String>,
) -> AdmissionReview<DynamicObject>
where
    T: kube::Resource + serde::de::DeserializeOwned,
{
    let request: AdmissionRequest<T> = match review.try_into() {
        Ok(r) => r,
        Err(e) => {
            return AdmissionResponse::invalid(format!("not an AdmissionReview request: {e}"))
                .into_review();
        }
    };
    let response = AdmissionResponse::from(&request);
    match decide(&request) {
        Ok(None) => response.into_review(),
        Ok(Some(patch)) => match response.clone().with_patch(patch) {
            Ok(patched) => patched.into_review(),
            Err(e) => response
                .deny(format!("cannot encode the patch: {e}"))
                .into_review(),
        },
        Err(reason) => response.deny(reason).into_review(),
    }
}
