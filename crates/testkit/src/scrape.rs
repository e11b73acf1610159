//! The metric names Gate's dashboards and alerts use, and the ones a real `/metrics` scrape shows,
//! so a test can prove every panel and alert names a series the binaries export.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The repository's dashboard JSON files and alert rules (`charts/gate/files/`).
pub fn monitoring_files() -> Result<Vec<PathBuf>> {
    let files = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/gate/files");
    let mut out = vec![files.join("alerts.yaml")];
    let dashboards = files.join("dashboards");
    let entries = std::fs::read_dir(&dashboards).map_err(|source| Error::Io {
        context: format!("read {}", dashboards.display()),
        source,
    })?;
    for entry in entries.flatten() {
        if entry.path().extension().is_some_and(|x| x == "json") {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Every `gate_…` metric name (sample names: `_bucket`, `_count`, `_total` as written) in `text`.
pub fn names_in(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
    let mut out = BTreeSet::new();
    let mut i = 0;
    while let Some(at) = text[i..].find("gate_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && word(bytes[end]) {
            end += 1;
        }
        let preceded =
            start > 0 && (word(bytes[start - 1]) || bytes[start - 1].is_ascii_uppercase());
        if !preceded {
            out.insert(text[start..end].to_owned());
        }
        i = end.max(start + 1);
    }
    out
}

/// The names the dashboards and alerts use whose prefix is `prefix` (e.g. `gate_operator_`).
pub fn monitored_names(prefix: &str) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for file in monitoring_files()? {
        let text = std::fs::read_to_string(&file).map_err(|source| Error::Io {
            context: format!("read {}", file.display()),
            source,
        })?;
        out.extend(
            names_in(&text)
                .into_iter()
                .filter(|n| n.starts_with(prefix)),
        );
    }
    Ok(out)
}

/// Sample names in a Prometheus text exposition (the first token of every non-comment line).
pub fn sample_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_whole_words_starting_with_gate() {
        let names = names_in(
            r#"{"expr": "rate(gate_a_total[5m]) / gate_b_bucket{x=\"gate_c\"}", "uid": "gate-x", "y": "my_gate_d"}"#,
        );
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["gate_a_total", "gate_b_bucket", "gate_c"]
        );
    }

    #[test]
    fn sample_names_skip_comments() {
        let text = "# HELP gate_x_total x\n# TYPE gate_x_total counter\ngate_x_total{a=\"b\"} 1\ngate_y 2\n";
        assert_eq!(
            sample_names(text).into_iter().collect::<Vec<_>>(),
            ["gate_x_total", "gate_y"]
        );
    }

    #[test]
    fn the_repository_dashboards_name_metrics() {
        let names = monitored_names("gate_").unwrap();
        assert!(
            names.contains("gate_request_duration_seconds_bucket"),
            "{names:?}"
        );
        assert!(
            names.contains("gate_operator_reconcile_errors_total"),
            "{names:?}"
        );
    }
}
