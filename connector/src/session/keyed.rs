//! Reuse of verdicts for requests that are not SQL statements (HTTP, MCP):
//! the protocol names the input paths it keys by (`http.method`,
//! `http.path`, …) and gives their values; a verdict is reused for a later
//! request with the same values when the policies in force provably read
//! nothing else of the request (`gate_policy::Reuse`), within the same
//! wall-clock second when they read `input.time.hour`, `weekday` or
//! `rfc3339`. The cache outlives one request: HTTP keeps it per connection
//! and credentials (see `session::admitted`). Verdicts that carry a policy
//! error are never reused; a policy change empties the cache.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use gate_policy::{Reuse, Stage, Verdict};

use crate::fasthash::{FastHasher, PrehashedMap};
use crate::server::Gate;

/// Distinct keys remembered.
const CAPACITY: usize = 256;
/// Reuses counted before they are added to the metric.
const COUNT_BATCH: u32 = 64;

/// The input paths a verdict is keyed by and their values in one request
/// (`None`: the path is absent from the input).
#[derive(Debug, Clone, Copy)]
pub struct RequestKey<'a> {
    pub paths: &'static [&'static str],
    pub values: &'a [Option<&'a str>],
}

#[derive(Debug)]
struct Entry {
    stage: Stage,
    values: Vec<Option<String>>,
    second: Option<i64>,
    verdict: Arc<Verdict>,
}

/// Reusable verdicts keyed by request values.
#[derive(Debug, Default)]
pub struct KeyedVerdicts {
    generation: u64,
    /// Per stage: the keyed paths last asked about and the answer.
    reuse: [Option<(&'static [&'static str], Reuse)>; 3],
    entries: PrehashedMap<Entry>,
    uncounted: [u32; 3],
}

impl KeyedVerdicts {
    /// The verdict of `stage` for a request with `key`: a reused one when
    /// the policies allow it, else `evaluate()`'s (remembered when reusable).
    pub fn verdict(
        &mut self,
        gate: &Gate,
        resource: &str,
        stage: Stage,
        key: RequestKey<'_>,
        evaluate: impl FnOnce() -> Verdict,
    ) -> Arc<Verdict> {
        let generation = gate.live.generation();
        if generation != self.generation {
            self.generation = generation;
            self.reuse = [None; 3];
            self.entries.clear();
        }
        let index = stage.index();
        let reuse = match self.reuse[index] {
            Some((paths, reuse)) if paths == key.paths => reuse,
            _ => {
                let reuse = gate.live.engine().reuse(stage, resource, key.paths);
                self.reuse[index] = Some((key.paths, reuse));
                reuse
            }
        };
        let second = match reuse {
            Reuse::Never => return Arc::new(evaluate()),
            Reuse::WithinSecond => Some(gate_policy::TimeInfo::now().unix_ns / 1_000_000_000),
            Reuse::Always => None,
        };
        let hash = hash_key(stage, key, second);
        if let Some(entry) = self.entries.get(&hash)
            && entry.stage == stage
            && entry.second == second
            && same_values(&entry.values, key.values)
        {
            self.uncounted[index] += 1;
            return entry.verdict.clone();
        }
        let verdict = Arc::new(evaluate());
        if verdict.errors.is_empty() {
            if self.entries.len() >= CAPACITY {
                self.entries.clear();
            }
            self.entries.insert(
                hash,
                Entry {
                    stage,
                    values: key.values.iter().map(|v| v.map(str::to_owned)).collect(),
                    second,
                    verdict: verdict.clone(),
                },
            );
        }
        verdict
    }

    /// Add the reuses counted so far to `gate_policy_verdicts_reused_total`
    /// once at least [`COUNT_BATCH`] are pending, or always when `all`.
    pub fn count(&mut self, gate: &Gate, protocol: &'static str, resource: &str, all: bool) {
        for stage in Stage::ALL {
            let pending = &mut self.uncounted[stage.index()];
            if *pending == 0 || (!all && *pending < COUNT_BATCH) {
                continue;
            }
            let reused = std::mem::take(pending);
            gate.metrics.add(
                "gate_policy_verdicts_reused_total",
                &[
                    ("protocol", protocol),
                    ("resource", resource),
                    ("stage", stage.as_str()),
                ],
                f64::from(reused),
            );
        }
    }
}

fn same_values(remembered: &[Option<String>], values: &[Option<&str>]) -> bool {
    remembered.len() == values.len()
        && remembered
            .iter()
            .zip(values)
            .all(|(a, b)| a.as_deref() == *b)
}

fn hash_key(stage: Stage, key: RequestKey<'_>, second: Option<i64>) -> u64 {
    let mut h = FastHasher::default();
    stage.index().hash(&mut h);
    key.values.hash(&mut h);
    second.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use gate_config::ConnectorConfig;
    use gate_policy::{Action, EngineOptions, HttpInfo, PolicyEngine, PolicyInput, PolicySpec};

    use super::*;
    use crate::audit::AuditSink;

    const PATHS: &[&str] = &["http.method", "http.path"];

    fn gate(body: &str) -> Gate {
        let source = format!(
            "package formal.v2\nimport rego.v1\ndefault pre_request := {{\"action\": \"allow\"}}\npre_request := {{\"action\": \"block\", \"reason\": \"no\"}} if {{ {body} }}"
        );
        let engine = PolicyEngine::new(
            vec![PolicySpec::from_source("p", "p.rego", source)],
            EngineOptions::default(),
        )
        .expect("test policy compiles");
        let config: ConnectorConfig =
            gate_config::load_str("test.yaml", "resources: []\n", &|_| None)
                .expect("empty connector config loads");
        Gate::new(config, engine, AuditSink::new(Box::new(std::io::sink())))
    }

    /// Decide a request through the cache: (blocked, whether the policy ran).
    fn decide(cache: &mut KeyedVerdicts, gate: &Gate, method: &str, path: &str) -> (bool, bool) {
        let ran = Cell::new(false);
        let values = [Some(method), Some(path)];
        let key = RequestKey {
            paths: PATHS,
            values: &values,
        };
        let verdict = cache.verdict(gate, "api", Stage::PreRequest, key, || {
            ran.set(true);
            let input = PolicyInput {
                http: Some(HttpInfo {
                    method: method.into(),
                    path: path.into(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            gate.live
                .engine()
                .evaluate_input(Stage::PreRequest, "api", &input)
        });
        (verdict.action == Action::Block, ran.get())
    }

    #[test]
    fn the_same_method_and_path_reuse_a_verdict_that_reads_only_them() {
        let gate = gate("input.http.method == \"DELETE\"; input.http.path == \"/v1/keys\"");
        let mut cache = KeyedVerdicts::default();
        assert_eq!(
            decide(&mut cache, &gate, "DELETE", "/v1/keys"),
            (true, true)
        );
        assert_eq!(
            decide(&mut cache, &gate, "DELETE", "/v1/keys"),
            (true, false)
        );
        assert_eq!(decide(&mut cache, &gate, "GET", "/v1/keys"), (false, true));
        assert_eq!(decide(&mut cache, &gate, "GET", "/v1/keys"), (false, false));
    }

    #[test]
    fn a_policy_that_reads_outside_the_key_is_evaluated_every_time() {
        let gate = gate("input.http.headers[\"x-danger\"] == \"1\"");
        let mut cache = KeyedVerdicts::default();
        assert_eq!(decide(&mut cache, &gate, "GET", "/"), (false, true));
        assert_eq!(decide(&mut cache, &gate, "GET", "/"), (false, true));
    }
}
