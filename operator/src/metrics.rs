//! Prometheus metrics of the operator: reconciles, errors and durations per kind.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `kind` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// The operator's metric families, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Family<KindLabel, Counter>,
    pub errors: Family<KindLabel, Counter>,
    pub duration: Family<KindLabel, Histogram>,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        let reconciles = Family::<KindLabel, Counter>::default();
        let errors = Family::<KindLabel, Counter>::default();
        let duration = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        let mut registry = Registry::with_prefix("gate_operator");
        registry.register("reconciles", "Reconciles run, per kind", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, per kind",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile, per kind",
            duration.clone(),
        );
        Metrics {
            reconciles,
            errors,
            duration,
            registry: Arc::new(registry),
        }
    }
}

impl Metrics {
    /// Count one reconcile of `kind` that took `seconds` and failed or not. The kind's error
    /// series exists (at 0) from its first reconcile on, so dashboards and alerts see it.
    pub fn observe(&self, kind: &str, seconds: f64, failed: bool) {
        let label = KindLabel {
            kind: kind.to_owned(),
        };
        self.reconciles.get_or_create(&label).inc();
        self.duration.get_or_create(&label).observe(seconds);
        let errors = self.errors.get_or_create(&label);
        if failed {
            errors.inc();
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
