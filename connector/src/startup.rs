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
    /// The local policies, kept to rebuild the engine with managed ones on every snapshot.
    pub local_specs: Vec<PolicySpec>,
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
    prepare(config, &path.display().to_string())
}

/// Check that every resource of `config` is served and compile its local policies; `source`
/// names the configuration in errors.
pub fn prepare(config: ConnectorConfig, source: &str) -> Result<Loaded, Vec<String>> {
    let unserved = crate::protocols::unserved_resources(&config);
    if !unserved.is_empty() {
        return Err(unserved
            .into_iter()
            .map(|e| format!("{source}: {e}"))
            .collect());
    }
    let local_specs = local_specs(&config)?;
    let policies = PolicyEngine::new(local_specs.clone(), engine_options(&config))
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
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
        local_specs,
        tls,
        jwt,
    })
}

/// Group `policies: [{path, stage}]` by file (one policy per file, evaluated at
/// the listed stages) and compile them.
pub fn compile_policies(config: &ConnectorConfig) -> Result<PolicyEngine, Vec<String>> {
    PolicyEngine::new(local_specs(config)?, engine_options(config))
        .map_err(|errors| errors.iter().map(ToString::to_string).collect())
}

/// The local policies of `config`: one spec per file with the stages it is listed for.
pub fn local_specs(config: &ConnectorConfig) -> Result<Vec<PolicySpec>, Vec<String>> {
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
    if errors.is_empty() {
        Ok(specs)
    } else {
        Err(errors)
    }
}

/// Engine settings from `config` (`default_action`).
pub fn engine_options(config: &ConnectorConfig) -> EngineOptions {
    let default_action = match config.default_action.as_str() {
        "allow" => DefaultAction::Allow,
        _ => DefaultAction::Block,
    };
    EngineOptions {
        default_action,
        data: config.policy_data.clone(),
        ..Default::default()
    }
}
