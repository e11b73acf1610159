//! Prometheus metrics with the SPEC's names, kept in `prometheus-client` families, rendered in text format 0.0.4.
//!
//! - `gate_request_duration_seconds{protocol,resource}` (histogram)
//! - `gate_policy_evaluation_duration_seconds{protocol,resource,stage,action}` (histogram)
//! - `gate_connpool_active_connections{resource,upstream}`, `gate_connpool_waiters{resource,upstream}` (gauges)
//! - `gate_connpool_wait_duration_seconds{resource,upstream}` (histogram)
//! - `gate_connpool_exhausted_total{resource,upstream}` (counter)
//! - `gate_connpool_idle_connections{resource,upstream}`, `gate_connpool_pinned_clients{resource,upstream}` (gauges)
//! - `gate_connpool_prepared_{hits,misses}_total{resource,upstream}` (counters; PostgreSQL transaction mode)
//! - `gate_sessions_total{protocol,resource,outcome}` (counter)
//! - `gate_policy_verdicts_reused_total{protocol,resource,stage}` (counter; see `verdicts`)
//! - `gate_audit_events_{shipped,spooled,replayed}_total` (counters, no labels)
//! - `gate_recordings_started_total{protocol,resource}`, `gate_recordings_bytes_total{protocol,resource}`,
//!   `gate_recordings_shipped_total`, `gate_recordings_ship_failures_total` (counters)
//!
//! Families are fixed at construction, so looking one up takes no lock; a series is found (or
//! created) under its family's read lock, and updated with atomics. Series whose labels the
//! configuration names are created up front by [`Metrics::preregister`], so a scrape shows them
//! with zero values before the first event; a family without any series is left out of the
//! scrape.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use gate_config::ConnectorConfig;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets in seconds: 50 µs … 10 s.
const BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// The `Content-Type` of [`Metrics::render`]: Prometheus text format 0.0.4, which both
/// Prometheus scrapes and `promtool check metrics` parse (promtool does not read OpenMetrics).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// A series' labels, in the order they are rendered.
type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every family: exported name, HELP text, type.
const FAMILIES: &[(&str, &str, Kind)] = &[
    (
        "gate_request_duration_seconds",
        "Time from a client request to the end of its response.",
        Kind::Histogram,
    ),
    (
        "gate_policy_evaluation_duration_seconds",
        "Time to evaluate and combine the policies of one stage.",
        Kind::Histogram,
    ),
    (
        "gate_policy_evaluation_errors_total",
        "Policy evaluations in which a policy raised an error (enforced ones fail closed: the request was blocked).",
        Kind::Counter,
    ),
    (
        "gate_policy_verdicts_reused_total",
        "Request verdicts reused for a statement of the same shape instead of evaluating the policies again.",
        Kind::Counter,
    ),
    (
        "gate_connpool_active_connections",
        "Upstream connections in use by sessions.",
        Kind::Gauge,
    ),
    (
        "gate_connpool_waiters",
        "Sessions waiting for an upstream connection.",
        Kind::Gauge,
    ),
    (
        "gate_connpool_wait_duration_seconds",
        "Time sessions waited for an upstream connection.",
        Kind::Histogram,
    ),
    (
        "gate_connpool_exhausted_total",
        "Times a session found the upstream pool full.",
        Kind::Counter,
    ),
    (
        "gate_connpool_idle_connections",
        "Upstream connections open and kept for reuse.",
        Kind::Gauge,
    ),
    (
        "gate_connpool_pinned_clients",
        "Transaction-mode clients pinned to one upstream connection by session state.",
        Kind::Gauge,
    ),
    (
        "gate_connpool_prepared_hits_total",
        "Executions of a client's prepared statement on a connection that already had it prepared.",
        Kind::Counter,
    ),
    (
        "gate_connpool_prepared_misses_total",
        "Times a client's prepared statement had to be prepared on the connection running it.",
        Kind::Counter,
    ),
    (
        "gate_sessions_total",
        "Client sessions by outcome of their setup.",
        Kind::Counter,
    ),
    (
        "gate_audit_events_shipped_total",
        "Audit events the control plane accepted on the first try.",
        Kind::Counter,
    ),
    (
        "gate_audit_events_spooled_total",
        "Audit events written to the spool because the control plane did not take them.",
        Kind::Counter,
    ),
    (
        "gate_audit_events_replayed_total",
        "Spooled audit events later delivered to the control plane.",
        Kind::Counter,
    ),
    (
        "gate_mcp_tool_changes_total",
        "MCP tools whose served definition differed from its pin (pin_tools): hidden until approved.",
        Kind::Counter,
    ),
    (
        "gate_recordings_started_total",
        "Session recordings started.",
        Kind::Counter,
    ),
    (
        "gate_recordings_bytes_total",
        "Bytes written to session recordings.",
        Kind::Counter,
    ),
    (
        "gate_recordings_shipped_total",
        "Session recordings the control plane stored.",
        Kind::Counter,
    ),
    (
        "gate_recordings_ship_failures_total",
        "Failed attempts to upload a session recording (it stays in recording.dir).",
        Kind::Counter,
    ),
];

type Counters = Family<Labels, Counter>;
type Gauges = Family<Labels, Gauge<f64, AtomicU64>>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

#[derive(Debug)]
enum Series {
    Counter(Counters),
    Gauge(Gauges),
    Histogram(Histograms),
}

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS.iter().copied())
}

/// All metric families of a connector.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    families: Vec<(&'static str, Series)>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let mut families = Vec::with_capacity(FAMILIES.len());
        for &(name, help, kind) in FAMILIES {
            // prometheus-client appends the final "." to HELP, and "_total" to counter names.
            let help = help.strip_suffix('.').unwrap_or(help);
            let series = match kind {
                Kind::Counter => {
                    let family = Counters::default();
                    let base = name.strip_suffix("_total").unwrap_or(name);
                    registry.register(base, help, family.clone());
                    Series::Counter(family)
                }
                Kind::Gauge => {
                    let family = Gauges::default();
                    registry.register(name, help, family.clone());
                    Series::Gauge(family)
                }
                Kind::Histogram => {
                    let family = Histograms::new_with_constructor(latency_histogram);
                    registry.register(name, help, family.clone());
                    Series::Histogram(family)
                }
            };
            families.push((name, series));
        }
        Self { registry, families }
    }
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

impl Metrics {
    fn family(&self, name: &str) -> Option<&Series> {
        self.families
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, series)| series)
    }

    /// Record a duration in a histogram.
    pub fn observe(&self, name: &'static str, pairs: &[(&'static str, &str)], duration: Duration) {
        if let Some(Series::Histogram(family)) = self.family(name) {
            family
                .get_or_create(&labels(pairs))
                .observe(duration.as_secs_f64());
        }
    }

    /// Add to a counter or gauge (negative for gauges going down). Counters count whole
    /// events: their delta is rounded, and one below 1 changes nothing.
    pub fn add(&self, name: &'static str, pairs: &[(&'static str, &str)], delta: f64) {
        match self.family(name) {
            Some(Series::Counter(family)) => {
                let counter = family.get_or_create(&labels(pairs));
                let events = delta.round();
                if events >= 1.0 && events.is_finite() {
                    // Saturates at u64::MAX; counts are far below.
                    counter.inc_by(events as u64);
                }
            }
            Some(Series::Gauge(family)) => {
                family.get_or_create(&labels(pairs)).inc_by(delta);
            }
            Some(Series::Histogram(_)) | None => {}
        }
    }

    /// Set a gauge to `value`.
    pub fn set(&self, name: &'static str, pairs: &[(&'static str, &str)], value: f64) {
        if let Some(Series::Gauge(family)) = self.family(name) {
            family.get_or_create(&labels(pairs)).set(value);
        }
    }

    /// Make a series exist with value 0 (so dashboards see it before the first event).
    pub fn touch(&self, name: &'static str, pairs: &[(&'static str, &str)]) {
        let labels = labels(pairs);
        match self.family(name) {
            Some(Series::Counter(family)) => drop(family.get_or_create(&labels)),
            Some(Series::Gauge(family)) => drop(family.get_or_create(&labels)),
            Some(Series::Histogram(family)) => drop(family.get_or_create(&labels)),
            None => {}
        }
    }

    /// Create the zero-valued series the configuration names: per resource its pool
    /// (`resource`, `upstream` = "host:port"), its request durations, its policy errors per
    /// stage and its successful sessions; the audit shipping counters when a control plane is
    /// configured, and the recording shipping counters when recordings are shipped to it.
    pub fn preregister(&self, config: &ConnectorConfig) {
        for r in &config.resources {
            let upstream = format!("{}:{}", r.host, r.port);
            let pool = [
                ("resource", r.name.as_str()),
                ("upstream", upstream.as_str()),
            ];
            self.touch("gate_connpool_active_connections", &pool);
            self.touch("gate_connpool_waiters", &pool);
            self.touch("gate_connpool_exhausted_total", &pool);
            self.touch("gate_connpool_wait_duration_seconds", &pool);
            self.touch("gate_connpool_idle_connections", &pool);
            if r.pool.mode == gate_config::connector::PoolMode::Transaction {
                self.touch("gate_connpool_pinned_clients", &pool);
                self.touch("gate_connpool_prepared_hits_total", &pool);
                self.touch("gate_connpool_prepared_misses_total", &pool);
            }
            let protocol = r.protocol.as_str();
            let request = [("protocol", protocol), ("resource", r.name.as_str())];
            self.touch("gate_request_duration_seconds", &request);
            for stage in ["session", "pre_request", "post_request"] {
                self.touch(
                    "gate_policy_evaluation_errors_total",
                    &[
                        ("protocol", protocol),
                        ("resource", r.name.as_str()),
                        ("stage", stage),
                    ],
                );
            }
            self.touch(
                "gate_sessions_total",
                &[
                    ("protocol", protocol),
                    ("resource", r.name.as_str()),
                    ("outcome", "ok"),
                ],
            );
        }
        if config.control_plane.is_some() {
            self.touch("gate_audit_events_shipped_total", &[]);
            self.touch("gate_audit_events_spooled_total", &[]);
            self.touch("gate_audit_events_replayed_total", &[]);
        }
        if config.recording.is_some() && config.control_plane.is_some() {
            self.touch("gate_recordings_shipped_total", &[]);
            self.touch("gate_recordings_ship_failures_total", &[]);
        }
    }

    /// The text exposition format 0.0.4 (see [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
