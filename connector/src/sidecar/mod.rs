//! Kubernetes sidecar mode (`gate-connector --sidecar`): the configuration comes from the
//! environment the operator's injector sets, the resources' definitions from the control-plane
//! snapshot, their upstream credentials from the Secrets the injector mounts, and a loopback
//! client without a token is the pod's workload (`system:serviceaccount:NS:NAME`).

mod resources;

pub use resources::{credentials_for, resolve, wait_for_resources};

use gate_config::ConnectorConfig;
use gate_policy::UserInfo;
use serde_json::{Value, json};

/// Where the injector mounts the emptyDir the sidecar writes to (snapshot, spool, recordings).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/gate";
/// Where the injector mounts each resource's credentials Secret (`<dir>/<resource>/username`).
pub const DEFAULT_CREDENTIALS_DIR: &str = "/var/run/gate/credentials";
/// The health, readiness and metrics address the injector's probes use.
pub const DEFAULT_HEALTH_ADDR: &str = "0.0.0.0:9090";
/// The PostgreSQL/MySQL user name with which a loopback client presents a token in the password
/// field instead of being identified as the workload.
pub const TOKEN_USER: &str = "token";

/// Everything sidecar mode reads from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SidecarEnv {
    /// `GATE_CONTROL_URL`: the control plane's gRPC URL.
    pub control_url: String,
    /// `GATE_CONTROL_TOKEN`: an org key with role `connector`.
    pub token: String,
    /// `POD_NAMESPACE` and `POD_SERVICE_ACCOUNT`: who the workload is.
    pub namespace: String,
    pub service_account: String,
    /// `GATE_SIDECAR_RESOURCES`: `name:port,…`, each served on `127.0.0.1:port`.
    pub resources: Vec<(String, u16)>,
    /// `GATE_HEALTH_ADDR` (default `0.0.0.0:9090`).
    pub health_addr: String,
    /// `GATE_STATE_DIR` (default `/var/lib/gate`).
    pub state_dir: String,
    /// `GATE_CREDENTIALS_DIR` (default `/var/run/gate/credentials`).
    pub credentials_dir: String,
    /// `GATE_TOKEN_ISSUER` (default: the control URL): identity tokens trusted from loopback
    /// clients, verified with the keys at `GATE_JWKS_URL` (default
    /// `<control URL>/.well-known/jwks.json`) for audience `GATE_TOKEN_AUDIENCE` (default `gate`).
    pub token_issuer: String,
    pub jwks_url: String,
    pub token_audience: String,
    /// `GATE_LOG_LEVEL` (default `info`); logs are JSON.
    pub log_level: String,
    /// `GATE_DEFAULT_ACTION` (default `block`): when no policy decides.
    pub default_action: String,
}

impl SidecarEnv {
    /// Read the process environment.
    pub fn from_process() -> Result<Self, Vec<String>> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Read the environment through `lookup`; every problem is named.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut required = |name: &str| -> String {
            match lookup(name).map(|v| v.trim().to_owned()) {
                Some(value) if !value.is_empty() => value,
                _ => {
                    problems.push(format!("{name}: is required in --sidecar mode"));
                    String::new()
                }
            }
        };
        let control_url = required("GATE_CONTROL_URL");
        let token = required("GATE_CONTROL_TOKEN");
        let namespace = required("POD_NAMESPACE");
        let service_account = required("POD_SERVICE_ACCOUNT");
        let resources_text = required("GATE_SIDECAR_RESOURCES");
        let optional = |name: &str, default: &str| -> String {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let resources = if resources_text.is_empty() {
            Vec::new()
        } else {
            match parse_resources(&resources_text) {
                Ok(resources) => resources,
                Err(e) => {
                    problems.push(e);
                    Vec::new()
                }
            }
        };
        let token_issuer = optional("GATE_TOKEN_ISSUER", control_url.trim_end_matches('/'));
        // The keys from inside the cluster, whatever public URL the issuer has.
        let jwks_url = optional(
            "GATE_JWKS_URL",
            &format!(
                "{}/.well-known/jwks.json",
                control_url.trim_end_matches('/')
            ),
        );
        let default_action = optional("GATE_DEFAULT_ACTION", "block");
        if !matches!(default_action.as_str(), "block" | "allow") {
            problems.push(format!(
                "GATE_DEFAULT_ACTION: {default_action:?} is not block or allow"
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(SidecarEnv {
            control_url,
            token,
            namespace,
            service_account,
            resources,
            health_addr: optional("GATE_HEALTH_ADDR", DEFAULT_HEALTH_ADDR),
            state_dir: optional("GATE_STATE_DIR", DEFAULT_STATE_DIR),
            credentials_dir: optional("GATE_CREDENTIALS_DIR", DEFAULT_CREDENTIALS_DIR),
            token_issuer,
            jwks_url,
            token_audience: optional("GATE_TOKEN_AUDIENCE", "gate"),
            log_level: optional("GATE_LOG_LEVEL", "info"),
            default_action,
        })
    }

    /// The workload a loopback client without a token is.
    pub fn workload(&self) -> UserInfo {
        workload_user(&self.namespace, &self.service_account)
    }

    /// Whether loopback clients may present identity tokens: only when the keys come over https
    /// or loopback (`GATE_JWKS_URL`), since keys fetched in clear could be forged.
    pub fn accepts_tokens(&self) -> bool {
        gate_config::connector::jwks_url_is_safe(&self.jwks_url)
    }

    /// The connector configuration, with `resources` (already resolved) bound to loopback.
    pub fn config(&self, resources: Vec<Value>) -> Result<ConnectorConfig, Vec<String>> {
        let state = self.state_dir.trim_end_matches('/');
        let mut doc = json!({
            // The shared listener is not used by the pod: an ephemeral loopback port.
            "listen_addr": "127.0.0.1:0",
            "health_addr": self.health_addr,
            "default_action": self.default_action,
            "logging": {"level": self.log_level, "format": "json"},
            "control_plane": {
                "url": self.control_url,
                "token": self.token,
                "state_dir": format!("{state}/state"),
            },
            "delivery": {"dead_letter_dir": format!("{state}/spool")},
            "recording": {"dir": format!("{state}/recordings")},
            "resources": resources,
        });
        if self.accepts_tokens() {
            doc["auth"] = json!({"jwt": {"issuers": [{
                "issuer": self.token_issuer,
                "jwks_url": self.jwks_url,
                "audience": self.token_audience,
            }]}});
        }
        escape_dollars(&mut doc);
        gate_config::load_str("--sidecar environment", &doc.to_string(), &|_| None).map_err(|e| {
            e.errors
                .iter()
                .map(|err| format!("{}: {err}", e.file))
                .collect()
        })
    }
}

/// `system:serviceaccount:NS:NAME`, kind `workload`, in Kubernetes' service-account groups.
pub fn workload_user(namespace: &str, service_account: &str) -> UserInfo {
    let subject = format!("system:serviceaccount:{namespace}:{service_account}");
    UserInfo {
        sub: Some(subject.clone()),
        name: Some(subject),
        email: None,
        groups: vec![
            "system:serviceaccounts".to_owned(),
            format!("system:serviceaccounts:{namespace}"),
        ],
        kind: Some("workload".to_owned()),
        issuer: None,
    }
}

/// Parse `GATE_SIDECAR_RESOURCES`: `name:port,…` (the injector's format).
pub fn parse_resources(text: &str) -> Result<Vec<(String, u16)>, String> {
    let mut out: Vec<(String, u16)> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, port)) = item.rsplit_once(':') else {
            return Err(format!(
                "GATE_SIDECAR_RESOURCES: {item:?} is not name:port (e.g. orders-db:15432)"
            ));
        };
        let port: u16 =
            port.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
                format!("GATE_SIDECAR_RESOURCES: {item:?}: the port must be 1-65535")
            })?;
        if name.is_empty() {
            return Err(format!(
                "GATE_SIDECAR_RESOURCES: {item:?} names no resource"
            ));
        }
        if out.iter().any(|(n, p)| n == name || *p == port) {
            return Err(format!(
                "GATE_SIDECAR_RESOURCES: {item:?} repeats a name or a port"
            ));
        }
        out.push((name.to_owned(), port));
    }
    if out.is_empty() {
        return Err("GATE_SIDECAR_RESOURCES: names no resource".to_owned());
    }
    Ok(out)
}

/// `$` → `$$` in every string, so nothing from the environment or the snapshot is expanded again.
fn escape_dollars(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        Value::Array(items) => items.iter_mut().for_each(escape_dollars),
        Value::Object(map) => map.values_mut().for_each(escape_dollars),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
