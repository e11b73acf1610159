//! Loading a YAML file: `${ENV}` expansion in string values, strict typed
//! parsing that names the path of an unknown or malformed field, then
//! validation that reports every problem at once.

use std::path::Path;

use serde::de::DeserializeOwned;
use yaml_serde::Value as Yaml;

use crate::env::expand;
use crate::error::{ConfigError, ConfigErrors, Problems};

/// A configuration type that can check itself after parsing.
pub trait Validate {
    /// Push every problem found, with its field path.
    fn validate(&self, problems: &mut Problems);
}

/// Read, expand, parse and validate `path` using the process environment.
pub fn load_file<T: DeserializeOwned + Validate>(path: &Path) -> Result<T, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        file: file.clone(),
        errors: vec![ConfigError {
            path: ".".into(),
            message: format!("cannot read: {e}"),
        }],
    })?;
    load_str(&file, &text, &|name| std::env::var(name).ok())
}

/// Expand, parse and validate YAML `text`; `file` names it in errors.
pub fn load_str<T: DeserializeOwned + Validate>(
    file: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<T, ConfigErrors> {
    let fail = |errors: Vec<ConfigError>| ConfigErrors {
        file: file.to_owned(),
        errors,
    };
    let mut doc: Yaml = yaml_serde::from_str(text).map_err(|e| {
        fail(vec![ConfigError {
            path: ".".into(),
            message: format!("not valid YAML: {e}"),
        }])
    })?;
    if doc.is_null() {
        doc = Yaml::Mapping(Default::default());
    }
    let mut problems = Problems::default();
    expand_strings(&mut doc, "", env, &mut problems);
    if !problems.0.is_empty() {
        return Err(fail(problems.0));
    }
    let config: T = serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        let path = if path.is_empty() || path == "." {
            ".".to_owned()
        } else {
            path
        };
        fail(vec![ConfigError {
            path,
            message: e.into_inner().to_string(),
        }])
    })?;
    config.validate(&mut problems);
    if problems.0.is_empty() {
        Ok(config)
    } else {
        Err(fail(problems.0))
    }
}

fn expand_strings(
    value: &mut Yaml,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) {
    match value {
        Yaml::String(s) => match expand(s, env) {
            Ok(expanded) => *s = expanded,
            Err(e) => problems.push(if path.is_empty() { "." } else { path }, e.message),
        },
        Yaml::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_strings(item, &format!("{path}[{i}]"), env, problems);
            }
        }
        Yaml::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let name = key
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{key:?}"));
                let sub = if path.is_empty() {
                    name
                } else {
                    format!("{path}.{name}")
                };
                expand_strings(item, &sub, env, problems);
            }
        }
        Yaml::Tagged(tagged) => expand_strings(&mut tagged.value, path, env, problems),
        _ => {}
    }
}
