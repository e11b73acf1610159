//! Per-session reuse of request verdicts: a statement whose policy-visible
//! parts (kind, tables, …) equal an earlier one's gets the earlier verdict,
//! when the policies in force provably read nothing else of the request
//! (`gate_policy::Reuse`, worked out from the policies' syntax trees).
//!
//! A session's own parts (user, resource, connection, grant) are fixed, so
//! the key is the stage plus the query's kind, tables, operation, database
//! and collection — never its text or columns (a policy that reads
//! `input.query.columns` is evaluated for every statement) — plus the
//! wall-clock second when the policies read `input.time.hour`, `weekday` or
//! `rfc3339`.
//! Verdicts that carry a policy error are never reused, and every policy
//! change (a new generation) empties the cache.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use gate_policy::{QueryInfo, Reuse, Stage, Verdict};

use crate::fasthash::{FastHasher, PrehashedMap};
use crate::server::Gate;

/// The input paths a reused verdict is keyed by: a statement's shape.
pub const SHAPE: &[&str] = &[
    "query.type",
    "query.tables",
    "query.operation",
    "query.database",
    "query.collection",
];
/// Distinct statement shapes remembered per session.
const CAPACITY: usize = 256;
/// Reuses counted before they are added to the metric (one metric update
/// per this many statements instead of one per statement).
const COUNT_BATCH: u32 = 64;

#[derive(Debug)]
struct Entry {
    stage: Stage,
    shape: QueryInfo,
    second: Option<i64>,
    verdict: Arc<Verdict>,
}

/// One session's reusable verdicts.
#[derive(Debug, Default)]
pub struct VerdictCache {
    generation: u64,
    /// Per stage, for the current generation, once asked.
    reuse: [Option<Reuse>; 3],
    entries: PrehashedMap<Entry>,
    /// Reuses per stage not yet added to `gate_policy_verdicts_reused_total`.
    uncounted: [u32; 3],
}

impl VerdictCache {
    /// The verdict of `stage` for `query` on `resource`: a reused one when the
    /// policies allow it, else `evaluate()`'s (remembered when reusable).
    pub fn verdict(
        &mut self,
        gate: &Gate,
        protocol: &'static str,
        resource: &str,
        stage: Stage,
        query: &QueryInfo,
        evaluate: impl FnOnce() -> Verdict,
    ) -> Arc<Verdict> {
        let generation = gate.live.generation();
        if generation != self.generation {
            self.generation = generation;
            self.reuse = [None; 3];
            self.entries.clear();
        }
        let index = stage_index(stage);
        let reuse = *self.reuse[index]
            .get_or_insert_with(|| gate.live.engine().reuse(stage, resource, SHAPE));
        let second = match reuse {
            Reuse::Never => return Arc::new(evaluate()),
            Reuse::WithinSecond => Some(gate_policy::TimeInfo::now().unix_ns / 1_000_000_000),
            Reuse::Always => None,
        };
        let key = hash_key(stage, query, second);
        if let Some(entry) = self.entries.get(&key)
            && entry.stage == stage
            && entry.second == second
            && same_shape(&entry.shape, query)
        {
            let verdict = entry.verdict.clone();
            self.uncounted[index] += 1;
            if self.uncounted[index] >= COUNT_BATCH {
                self.count(gate, protocol, resource);
            }
            return verdict;
        }
        let verdict = Arc::new(evaluate());
        if verdict.errors.is_empty() {
            if self.entries.len() >= CAPACITY {
                self.entries.clear();
            }
            self.entries.insert(
                key,
                Entry {
                    stage,
                    shape: shape_of(query),
                    second,
                    verdict: verdict.clone(),
                },
            );
        }
        verdict
    }

    /// Add the reuses counted so far to `gate_policy_verdicts_reused_total`
    /// (at the end of a session, and every [`COUNT_BATCH`] reuses).
    pub fn count(&mut self, gate: &Gate, protocol: &'static str, resource: &str) {
        for stage in Stage::ALL {
            let uncounted = std::mem::take(&mut self.uncounted[stage_index(stage)]);
            if uncounted > 0 {
                gate.metrics.add(
                    "gate_policy_verdicts_reused_total",
                    &[
                        ("protocol", protocol),
                        ("resource", resource),
                        ("stage", stage.as_str()),
                    ],
                    f64::from(uncounted),
                );
            }
        }
    }
}

fn stage_index(stage: Stage) -> usize {
    match stage {
        Stage::Session => 0,
        Stage::PreRequest => 1,
        Stage::PostRequest => 2,
    }
}

/// The keyed parts of `query` (text and filter left out).
pub fn shape_of(query: &QueryInfo) -> QueryInfo {
    QueryInfo {
        kind: query.kind.clone(),
        tables: query.tables.clone(),
        operation: query.operation.clone(),
        database: query.database.clone(),
        collection: query.collection.clone(),
        ..Default::default()
    }
}

/// Whether two statements agree on every [`SHAPE`] part.
pub fn same_shape(a: &QueryInfo, b: &QueryInfo) -> bool {
    a.kind == b.kind
        && a.tables == b.tables
        && a.operation == b.operation
        && a.database == b.database
        && a.collection == b.collection
}

/// Feed the [`SHAPE`] parts of `query` to `h`.
pub fn hash_shape(query: &QueryInfo, h: &mut impl Hasher) {
    query.kind.hash(h);
    query.tables.hash(h);
    query.operation.hash(h);
    query.database.hash(h);
    query.collection.hash(h);
}

fn hash_key(stage: Stage, query: &QueryInfo, second: Option<i64>) -> u64 {
    let mut h = FastHasher::default();
    stage_index(stage).hash(&mut h);
    hash_shape(query, &mut h);
    second.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use gate_config::ConnectorConfig;
    use gate_policy::{Action, EngineOptions, PolicyEngine, PolicyInput, PolicySpec};

    use super::*;
    use crate::audit::AuditSink;
    use crate::managed::Managed;

    fn engine(body: &str) -> PolicyEngine {
        let source = format!(
            "package formal.v2\nimport rego.v1\ndefault pre_request := {{\"action\": \"allow\"}}\npre_request := {{\"action\": \"block\", \"reason\": \"no\"}} if {{ {body} }}"
        );
        PolicyEngine::new(
            vec![PolicySpec::from_source("p", "p.rego", source)],
            EngineOptions::default(),
        )
        .expect("test policy compiles")
    }

    fn gate(body: &str) -> Gate {
        gate_with(engine(body))
    }

    fn gate_with(engine: PolicyEngine) -> Gate {
        let config: ConnectorConfig =
            gate_config::load_str("test.yaml", "resources: []\n", &|_| None)
                .expect("empty connector config loads");
        Gate::new(config, engine, AuditSink::new(Box::new(std::io::sink())))
    }

    fn query(raw: &str, kind: &str, tables: &[&str]) -> QueryInfo {
        QueryInfo {
            raw: raw.into(),
            statement: Some(raw.into()),
            kind: kind.into(),
            tables: tables.iter().map(|t| (*t).to_owned()).collect(),
            ..Default::default()
        }
    }

    /// Decide `q` through the cache; returns (blocked, whether the policy ran).
    fn decide(cache: &mut VerdictCache, gate: &Gate, q: &QueryInfo) -> (bool, bool) {
        let ran = Cell::new(false);
        let verdict = cache.verdict(gate, "postgres", "db", Stage::PreRequest, q, || {
            ran.set(true);
            gate.live.engine().evaluate_input(
                Stage::PreRequest,
                "db",
                &PolicyInput {
                    query: Some(q.clone()),
                    ..Default::default()
                },
            )
        });
        (verdict.action == Action::Block, ran.get())
    }

    #[test]
    fn same_shape_reuses_the_verdict_when_the_policy_reads_only_the_shape() {
        let gate = gate("input.query.type == \"delete\"; \"secrets\" in input.query.tables");
        let mut cache = VerdictCache::default();
        let a = query("delete from secrets where id = 1", "delete", &["secrets"]);
        let b = query("delete from secrets where id = 2", "delete", &["secrets"]);
        let c = query("delete from public where id = 2", "delete", &["public"]);
        assert_eq!(decide(&mut cache, &gate, &a), (true, true));
        assert_eq!(
            decide(&mut cache, &gate, &b),
            (true, false),
            "same shape: reused"
        );
        assert_eq!(
            decide(&mut cache, &gate, &c),
            (false, true),
            "other tables: evaluated"
        );
        assert_eq!(decide(&mut cache, &gate, &c), (false, false));
    }

    #[test]
    fn a_policy_that_reads_the_text_is_evaluated_for_every_statement() {
        let gate = gate("contains(input.query.raw, \"42\")");
        let mut cache = VerdictCache::default();
        let a = query("select * from t where id = 1", "select", &["t"]);
        let b = query("select * from t where id = 42", "select", &["t"]);
        assert_eq!(decide(&mut cache, &gate, &a), (false, true));
        assert_eq!(
            decide(&mut cache, &gate, &b),
            (true, true),
            "same shape, other text: evaluated"
        );
        assert_eq!(decide(&mut cache, &gate, &a), (false, true));
    }

    #[test]
    fn verdicts_with_policy_errors_are_not_reused() {
        // A decision with an unknown action is a policy error: the request is
        // blocked (fail closed), and the next one is evaluated again.
        let source = "package formal.v2\nimport rego.v1\npre_request := {\"action\": \"explode\"} if input.query.type == \"select\"";
        let gate = gate_with(
            PolicyEngine::new(
                vec![PolicySpec::from_source("p", "p.rego", source)],
                EngineOptions::default(),
            )
            .expect("test policy compiles"),
        );
        let mut cache = VerdictCache::default();
        let a = query("select 1", "select", &[]);
        assert_eq!(decide(&mut cache, &gate, &a), (true, true));
        assert_eq!(decide(&mut cache, &gate, &a), (true, true));
    }

    #[test]
    fn a_policy_change_empties_the_cache() {
        let gate = gate("input.query.type == \"drop\"");
        let mut cache = VerdictCache::default();
        let q = query("select * from t", "select", &["t"]);
        assert_eq!(decide(&mut cache, &gate, &q), (false, true));
        assert_eq!(decide(&mut cache, &gate, &q), (false, false));
        gate.live
            .replace(engine("input.query.type == \"select\""), Managed::default());
        assert_eq!(
            decide(&mut cache, &gate, &q),
            (true, true),
            "new policies: evaluated again"
        );
        assert_eq!(decide(&mut cache, &gate, &q), (true, false));
    }
}
