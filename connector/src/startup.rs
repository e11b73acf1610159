//! Start-up checks: load the configuration and compile the local policies it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use gate_config::ConnectorConfig;

use crate::jwt::JwtVerifier;
use crate::tls::TlsFiles;
use gate_policy::{DefaultAction, EngineOptions, PolicyEngine, PolicySpec, Stage};

/// The configuration and its compiled policies, ready to serve.
#[derive(Debug)]
pub struct Loaded {
    pub config: ConnectorConfig,
    pub policies: PolicyEngine,
    pub tls: Option<TlsFiles>,
    pub jwt: Option<JwtVerifier>,
}

/// Load `path` and compile every local policy; returns every problem found, one per line.
pub fn load(path: &Path) -> Result<Loaded, Vec<String>> {
    let config: ConnectorConfig = gate_config::load_file(path).map_err(|e| {
        e.errors
            .iter()
            .map(|err| format!("{}: {err}", e.file))
            .collect::<Vec<_>>()
    })?;
    let policies = compile_policies(&config)?;
    let tls = match (&config.tls.cert_file, &config.tls.key_file) {
        (Some(cert), Some(key)) if config.tls.enabled => {
            Some(TlsFiles::load(cert, key).map_err(|e| vec![e])?)
        }
        _ => None,
    };
    let jwt = JwtVerifier::load(&config.auth).map_err(|e| vec![e])?;
    Ok(Loaded {
        config,
        policies,
        tls,
        jwt,
    })
}

/// Group `policies: [{path, stage}]` by file (one policy per file, evaluated at
/// the listed stages) and compile them.
pub fn compile_policies(config: &ConnectorConfig) -> Result<PolicyEngine, Vec<String>> {
    let mut by_path: BTreeMap<&str, BTreeSet<Stage>> = BTreeMap::new();
    for policy in &config.policies {
        // The config validation already rejected unknown stages.
        if let Ok(stage) = policy.stage.parse::<Stage>() {
            by_path
                .entry(policy.path.as_str())
                .or_default()
                .insert(stage);
        }
    }
    let mut specs = Vec::new();
    let mut errors = Vec::new();
    for (i, (path, stages)) in by_path.into_iter().enumerate() {
        match PolicySpec::from_file(Path::new(path)) {
            Ok(mut spec) => {
                spec.stages = Some(stages);
                specs.push(spec);
            }
            Err(e) => errors.push(format!("policies ({path}, entry {i}): {e}")),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let default_action = match config.default_action.as_str() {
        "allow" => DefaultAction::Allow,
        _ => DefaultAction::Block,
    };
    PolicyEngine::new(
        specs,
        EngineOptions {
            default_action,
            ..Default::default()
        },
    )
    .map_err(|errors| errors.iter().map(ToString::to_string).collect())
}
