//! Turning a control-plane snapshot into what the connector enforces (local policies plus managed
//! ones, groups, resource overrides, grants), and keeping the last good snapshot on disk.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use gate_policy::{EngineOptions, PolicyEngine, PolicyModule, PolicySpec, Rollout, Stage};
use gate_proto::v1::Snapshot;

use crate::managed::Managed;

/// The rollout of a managed policy's state; unknown states are drafts (never evaluated).
fn rollout(state: &str) -> Rollout {
    match state {
        "active" => Rollout::Active,
        "dry_run" => Rollout::DryRun,
        _ => Rollout::Draft,
    }
}

/// The engine and managed state for `snapshot`, or every compile error (the caller keeps the
/// previous state then).
pub fn build(
    snapshot: &Snapshot,
    local: &[PolicySpec],
    options: &EngineOptions,
) -> Result<(PolicyEngine, Managed), Vec<String>> {
    let mut specs = local.to_vec();
    for policy in &snapshot.policies {
        let stages: BTreeSet<Stage> = policy
            .stages
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        specs.push(PolicySpec {
            name: policy.name.clone(),
            modules: vec![PolicyModule {
                origin: format!("managed/{}.rego (version {})", policy.name, policy.version),
                source: policy.rego.clone(),
            }],
            rollout: rollout(&policy.state),
            targets: policy.targets.clone(),
            stages: (!stages.is_empty()).then_some(stages),
        });
    }
    let engine = PolicyEngine::new(specs, options.clone())
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let groups: HashMap<String, Vec<String>> = snapshot
        .identities
        .iter()
        .map(|i| (i.name.clone(), i.groups.clone()))
        .collect();
    let ssh_keys: HashMap<String, Vec<String>> = snapshot
        .identities
        .iter()
        .filter(|i| !i.ssh_keys.is_empty())
        .map(|i| (i.name.clone(), i.ssh_keys.clone()))
        .collect();
    let resources = snapshot
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.clone()))
        .collect();
    Ok((
        engine,
        Managed {
            version: snapshot.version,
            groups,
            ssh_keys,
            resources,
            grants: snapshot.grants.clone(),
        },
    ))
}

/// The snapshot file in `state_dir`.
pub fn path(state_dir: &str) -> PathBuf {
    Path::new(state_dir).join("snapshot.json")
}

/// Write `snapshot` atomically (temp file, fsync, rename).
pub fn save(state_dir: &str, snapshot: &Snapshot) -> std::io::Result<()> {
    std::fs::create_dir_all(state_dir)?;
    let target = path(state_dir);
    let temp = target.with_extension("json.tmp");
    let bytes = serde_json::to_vec(snapshot).map_err(std::io::Error::other)?;
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, &target)
}

/// The last saved snapshot, if there is a readable one.
pub fn load(state_dir: &str) -> Result<Option<Snapshot>, String> {
    let file = path(state_dir);
    match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: not a snapshot: {e}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", file.display())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use gate_policy::Value;
    use gate_proto::v1::{Identity, Policy};

    const BLOCK: &str =
        "package m\n\npre_request := {\"action\": \"block\", \"reason\": \"managed says no\"}\n";

    fn snapshot(state: &str) -> Snapshot {
        Snapshot {
            version: 7,
            policies: vec![Policy {
                name: "managed-block".into(),
                state: state.into(),
                version: 3,
                rego: BLOCK.into(),
                targets: vec!["prod-*".into()],
                ..Policy::default()
            }],
            identities: vec![Identity {
                name: "alice".into(),
                groups: vec!["sre".into()],
                ssh_keys: vec!["ssh-ed25519 AAAA alice@laptop".into()],
                ..Identity::default()
            }],
            ..Snapshot::default()
        }
    }

    fn verdict(engine: &PolicyEngine, resource: &str) -> gate_policy::Verdict {
        engine.evaluate(
            Stage::PreRequest,
            resource,
            &Value::from_json_str("{}").unwrap(),
        )
    }

    #[test]
    fn managed_policies_follow_their_state_and_targets() {
        let options = EngineOptions {
            default_action: gate_policy::DefaultAction::Allow,
            ..EngineOptions::default()
        };
        let (engine, managed) = build(&snapshot("active"), &[], &options).unwrap();
        assert!(verdict(&engine, "prod-db").is_blocked());
        assert!(
            !verdict(&engine, "staging-db").is_blocked(),
            "targets apply"
        );
        assert_eq!(managed.version, 7);
        assert_eq!(managed.groups["alice"], ["sre"]);
        assert_eq!(managed.ssh_keys["alice"], ["ssh-ed25519 AAAA alice@laptop"]);

        let (engine, _) = build(&snapshot("dry_run"), &[], &options).unwrap();
        let dry = verdict(&engine, "prod-db");
        assert!(!dry.is_blocked());
        assert_eq!(dry.dry_run.len(), 1, "dry_run is audited, not enforced");
        let (engine, _) = build(&snapshot("draft"), &[], &options).unwrap();
        assert!(!verdict(&engine, "prod-db").is_blocked());

        let mut broken = snapshot("active");
        broken.policies[0].rego = "package m\npre_request := {".into();
        let errors = build(&broken, &[], &options).unwrap_err();
        assert!(
            errors[0].contains("managed/managed-block.rego"),
            "{errors:?}"
        );
    }

    #[test]
    fn snapshots_round_trip_through_disk() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state").display().to_string();
        assert!(load(&state).unwrap().is_none());
        save(&state, &snapshot("active")).unwrap();
        assert_eq!(load(&state).unwrap().unwrap(), snapshot("active"));
        std::fs::write(path(&state), b"{broken").unwrap();
        assert!(load(&state).unwrap_err().contains("not a snapshot"));
    }
}
