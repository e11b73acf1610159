//! Prometheus metrics with the SPEC's names, rendered in the text exposition format.
//!
//! - `gate_request_duration_seconds{protocol,resource}` (histogram)
//! - `gate_policy_evaluation_duration_seconds{protocol,resource,stage,action}` (histogram)
//! - `gate_connpool_active_connections{resource,upstream}`, `gate_connpool_waiters{resource,upstream}` (gauges)
//! - `gate_connpool_wait_duration_seconds{resource,upstream}` (histogram)
//! - `gate_connpool_exhausted_total{resource,upstream}` (counter)
//! - `gate_sessions_total{protocol,resource,outcome}` (counter)
//! - `gate_policy_verdicts_reused_total{protocol,resource,stage}` (counter; see `verdicts`)

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Latency buckets in seconds: 50 µs … 10 s.
const BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (bucket, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bucket {
                *count += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug)]
struct Family {
    help: &'static str,
    kind: Kind,
    values: BTreeMap<Labels, f64>,
    histograms: BTreeMap<Labels, Histogram>,
}

/// All metric families of a connector.
#[derive(Debug)]
pub struct Metrics {
    families: Mutex<BTreeMap<&'static str, Family>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut families = BTreeMap::new();
        let mut add = |name, help, kind| {
            families.insert(
                name,
                Family {
                    help,
                    kind,
                    values: BTreeMap::new(),
                    histograms: BTreeMap::new(),
                },
            );
        };
        add(
            "gate_request_duration_seconds",
            "Time from a client request to the end of its response.",
            Kind::Histogram,
        );
        add(
            "gate_policy_evaluation_duration_seconds",
            "Time to evaluate and combine the policies of one stage.",
            Kind::Histogram,
        );
        add(
            "gate_policy_verdicts_reused_total",
            "Request verdicts reused for a statement of the same shape instead of evaluating the policies again.",
            Kind::Counter,
        );
        add(
            "gate_connpool_active_connections",
            "Upstream connections in use by sessions.",
            Kind::Gauge,
        );
        add(
            "gate_connpool_waiters",
            "Sessions waiting for an upstream connection.",
            Kind::Gauge,
        );
        add(
            "gate_connpool_wait_duration_seconds",
            "Time sessions waited for an upstream connection.",
            Kind::Histogram,
        );
        add(
            "gate_connpool_exhausted_total",
            "Times a session found the upstream pool full.",
            Kind::Counter,
        );
        add(
            "gate_sessions_total",
            "Client sessions by outcome of their setup.",
            Kind::Counter,
        );
        add(
            "gate_audit_events_shipped_total",
            "Audit events the control plane accepted on the first try.",
            Kind::Counter,
        );
        add(
            "gate_audit_events_spooled_total",
            "Audit events written to the spool because the control plane did not take them.",
            Kind::Counter,
        );
        add(
            "gate_audit_events_replayed_total",
            "Spooled audit events later delivered to the control plane.",
            Kind::Counter,
        );
        Self {
            families: Mutex::new(families),
        }
    }
}

fn same(labels: &Labels, pairs: &[(&'static str, &str)]) -> bool {
    labels.len() == pairs.len()
        && labels
            .iter()
            .zip(pairs)
            .all(|((k, v), (pk, pv))| k == pk && v == pv)
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

impl Metrics {
    fn with(&self, name: &'static str, f: impl FnOnce(&mut Family)) {
        if let Ok(mut families) = self.families.lock()
            && let Some(family) = families.get_mut(name)
        {
            f(family);
        }
    }

    /// Record a duration in a histogram.
    pub fn observe(&self, name: &'static str, pairs: &[(&'static str, &str)], duration: Duration) {
        self.with(name, |f| {
            // Label sets are few and long-lived: find the existing one without allocating.
            match f.histograms.iter_mut().find(|(k, _)| same(k, pairs)) {
                Some((_, histogram)) => histogram.observe(duration.as_secs_f64()),
                None => f
                    .histograms
                    .entry(labels(pairs))
                    .or_default()
                    .observe(duration.as_secs_f64()),
            }
        });
    }

    /// Add to a counter or gauge (negative for gauges going down).
    pub fn add(&self, name: &'static str, pairs: &[(&'static str, &str)], delta: f64) {
        self.with(name, |f| {
            match f.values.iter_mut().find(|(k, _)| same(k, pairs)) {
                Some((_, value)) => *value += delta,
                None => *f.values.entry(labels(pairs)).or_default() += delta,
            }
        });
    }

    /// Make a series exist with value 0 (so dashboards see it before the first event).
    pub fn touch(&self, name: &'static str, pairs: &[(&'static str, &str)]) {
        self.add(name, pairs, 0.0);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(families) = self.families.lock() else {
            return out;
        };
        for (name, family) in families.iter() {
            let kind = match family.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
                Kind::Histogram => "histogram",
            };
            let _ = writeln!(out, "# HELP {name} {}\n# TYPE {name} {kind}", family.help);
            for (labels, value) in &family.values {
                let _ = writeln!(out, "{name}{} {value}", render_labels(labels, None));
            }
            for (labels, h) in &family.histograms {
                for (bucket, count) in BUCKETS.iter().zip(&h.counts) {
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {count}",
                        render_labels(labels, Some(&bucket.to_string()))
                    );
                }
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {}",
                    render_labels(labels, Some("+Inf")),
                    h.count
                );
                let _ = writeln!(out, "{name}_sum{} {}", render_labels(labels, None), h.sum);
                let _ = writeln!(
                    out,
                    "{name}_count{} {}",
                    render_labels(labels, None),
                    h.count
                );
            }
        }
        out
    }
}

fn render_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let m = Metrics::default();
        let l = [("protocol", "postgres"), ("resource", "db\"1")];
        m.observe(
            "gate_request_duration_seconds",
            &l,
            Duration::from_micros(80),
        );
        m.observe(
            "gate_request_duration_seconds",
            &l,
            Duration::from_millis(3),
        );
        m.add(
            "gate_connpool_exhausted_total",
            &[("resource", "db"), ("upstream", "h:1")],
            2.0,
        );
        let text = m.render();
        assert!(text.contains("gate_request_duration_seconds_bucket{protocol=\"postgres\",resource=\"db\\\"1\",le=\"0.00005\"} 0"), "{text}");
        assert!(text.contains("gate_request_duration_seconds_bucket{protocol=\"postgres\",resource=\"db\\\"1\",le=\"0.0001\"} 1"));
        assert!(text.contains("gate_request_duration_seconds_bucket{protocol=\"postgres\",resource=\"db\\\"1\",le=\"0.005\"} 2"));
        assert!(text.contains("gate_request_duration_seconds_bucket{protocol=\"postgres\",resource=\"db\\\"1\",le=\"+Inf\"} 2"));
        assert!(text.contains(
            "gate_request_duration_seconds_count{protocol=\"postgres\",resource=\"db\\\"1\"} 2"
        ));
        assert!(text.contains("gate_connpool_exhausted_total{resource=\"db\",upstream=\"h:1\"} 2"));
        assert!(text.contains("# TYPE gate_connpool_waiters gauge"));
    }
}
