//! The sidecar's resources: their definitions from the control-plane snapshot (waited for until
//! every named one exists; the saved snapshot when the control plane is unreachable), bound to
//! their loopback ports, with upstream credentials read from the files the injector mounts.

use std::path::Path;
use std::time::Duration;

use gate_proto::v1::{FetchSnapshotRequest, Resource};
use serde_json::{Value, json};

use super::SidecarEnv;

/// The snapshot's definitions of every resource `env` names, in `env`'s order. Retries (1 s
/// doubling to 10 s) until the control plane, or the snapshot an earlier run saved, has them all.
pub async fn wait_for_resources(
    env: &SidecarEnv,
    config: &gate_config::ConnectorConfig,
) -> Vec<Resource> {
    let Some(cp) = &config.control_plane else {
        return Vec::new();
    };
    let mut backoff = Duration::from_secs(1);
    loop {
        let fetched = match crate::control::client(cp) {
            Ok(mut client) => client
                .fetch_snapshot(FetchSnapshotRequest {
                    connector_id: String::new(),
                    known_version: 0,
                    labels: cp.labels.clone().into_iter().collect(),
                })
                .await
                .map(|reply| reply.into_inner().resources)
                .map_err(|status| format!("{:?}: {}", status.code(), status.message())),
            Err(e) => Err(e),
        };
        let known = match fetched {
            Ok(resources) => resources,
            Err(e) => {
                let saved = crate::control::snapshot::load(&cp.state_dir)
                    .ok()
                    .flatten()
                    .map(|s| s.resources)
                    .unwrap_or_default();
                tracing::warn!(url = %cp.url, error = %e, "cannot fetch the snapshot; trying the saved one");
                saved
            }
        };
        match pick(env, &known) {
            Ok(found) => return found,
            Err(missing) => tracing::warn!(
                missing = %missing.join(","),
                retry_in_s = backoff.as_secs(),
                "resources named in GATE_SIDECAR_RESOURCES are not in the control plane yet"
            ),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// The named resources out of `known`, or the names missing.
fn pick(env: &SidecarEnv, known: &[Resource]) -> Result<Vec<Resource>, Vec<String>> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for (name, _) in &env.resources {
        match known.iter().find(|r| &r.name == name) {
            Some(resource) => found.push(resource.clone()),
            None => missing.push(name.clone()),
        }
    }
    if missing.is_empty() {
        Ok(found)
    } else {
        Err(missing)
    }
}

/// Connector `resources:` entries for `resources`, each on its loopback port with the
/// credentials mounted for it (none mounted: the client's own user name goes upstream).
pub fn resolve(env: &SidecarEnv, resources: &[Resource]) -> Result<Vec<Value>, Vec<String>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for resource in resources {
        let Some((_, port)) = env.resources.iter().find(|(n, _)| *n == resource.name) else {
            continue;
        };
        let mut entry = json!({
            "name": resource.name,
            "protocol": resource.protocol,
            "host": resource.host,
            "port": resource.port,
            "listen_port": port,
            "labels": resource.labels,
            "require_access_grant": resource.require_access_grant,
        });
        if !resource.database.is_empty() {
            entry["database"] = json!(resource.database);
        }
        match credentials_for(Path::new(&env.credentials_dir), &resource.name) {
            Ok((username, password)) => {
                if let Some(username) = username {
                    entry["username"] = json!(username);
                }
                if let Some(password) = password {
                    entry["password"] = json!(password);
                }
            }
            Err(e) => problems.push(e),
        }
        out.push(entry);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The user name and password files the injector mounted for `resource` under `dir`
/// (`<dir>/<resource>/username`, `…/password`); absent files are `None`, one trailing newline
/// is dropped.
pub fn credentials_for(
    dir: &Path,
    resource: &str,
) -> Result<(Option<String>, Option<String>), String> {
    let read = |key: &str| -> Result<Option<String>, String> {
        let file = dir.join(resource).join(key);
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let text = text
                    .strip_suffix('\n')
                    .map(|t| t.strip_suffix('\r').unwrap_or(t))
                    .unwrap_or(&text);
                Ok(Some(text.to_owned()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", file.display())),
        }
    };
    Ok((read("username")?, read("password")?))
}
