//! Control-plane metrics in the Prometheus text format: requests by transport, operation and code,
//! request durations, snapshots served, audit ingest counts, stored recordings, the outbox's
//! delivery attempts and dead letters, and (read from the store at scrape time) connectors by
//! status and deliveries by state.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by both transports.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, String, &'static str), u64>>,
    audit_accepted: AtomicU64,
    audit_duplicates: AtomicU64,
    /// (target, result) → attempts.
    deliveries: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    dead_letters: Mutex<BTreeMap<&'static str, u64>>,
    recordings_stored: AtomicU64,
    recording_bytes: AtomicU64,
    /// transport → request-duration histogram.
    durations: Mutex<BTreeMap<&'static str, Histogram>>,
    snapshots_full: AtomicU64,
    snapshots_unchanged: AtomicU64,
}

/// Upper bounds (seconds) of the request-duration buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Cumulative-on-render histogram: a count per bucket, the sum and the count.
#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// What the store holds at scrape time: connectors by status, deliveries by state.
#[derive(Debug, Default)]
pub struct StoreGauges {
    pub connectors: Vec<(&'static str, u64)>,
    pub deliveries: Vec<(String, i64)>,
}

impl Metrics {
    /// Count one finished request.
    pub fn request(&self, transport: &'static str, operation: &str, code: &'static str) {
        if let Ok(mut map) = self.requests.lock() {
            *map.entry((transport, operation.to_owned(), code))
                .or_default() += 1;
        }
    }

    pub fn audit_ingested(&self, accepted: u32, duplicates: u32) {
        self.audit_accepted
            .fetch_add(u64::from(accepted), Ordering::Relaxed);
        self.audit_duplicates
            .fetch_add(u64::from(duplicates), Ordering::Relaxed);
    }

    /// Count one recording stored (a new id), of `bytes`.
    pub fn recording_stored(&self, bytes: u64) {
        self.recordings_stored.fetch_add(1, Ordering::Relaxed);
        self.recording_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Count one delivery attempt to `target` (`webhook`, `slack`) with `result` (`success`, `failure`).
    pub fn delivery(&self, target: &'static str, result: &'static str) {
        if let Ok(mut map) = self.deliveries.lock() {
            *map.entry((target, result)).or_default() += 1;
        }
    }

    /// Time one HTTP or gRPC request (`transport` = `http` or `grpc`), from its headers to its
    /// response's.
    pub fn request_duration(&self, transport: &'static str, seconds: f64) {
        if let Ok(mut map) = self.durations.lock() {
            let h = map.entry(transport).or_default();
            if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
                h.buckets[i] += 1;
            }
            h.sum += seconds;
            h.count += 1;
        }
    }

    /// Count one snapshot sent to a connector: `full`, or only the version (`unchanged`).
    pub fn snapshot_served(&self, full: bool) {
        let counter = if full {
            &self.snapshots_full
        } else {
            &self.snapshots_unchanged
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Count one delivery that became a dead letter.
    pub fn dead_letter(&self, target: &'static str) {
        if let Ok(mut map) = self.dead_letters.lock() {
            *map.entry(target).or_default() += 1;
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP gate_control_requests_total Admin and connector API requests by transport, operation and result code.\n");
        out.push_str("# TYPE gate_control_requests_total counter\n");
        if let Ok(map) = self.requests.lock() {
            for ((transport, operation, code), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "gate_control_requests_total{{transport=\"{transport}\",operation=\"{operation}\",code=\"{code}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP gate_control_audit_events_total Audit events received from connectors, by result.\n");
        out.push_str("# TYPE gate_control_audit_events_total counter\n");
        let _ = writeln!(
            out,
            "gate_control_audit_events_total{{result=\"accepted\"}} {}",
            self.audit_accepted.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "gate_control_audit_events_total{{result=\"duplicate\"}} {}",
            self.audit_duplicates.load(Ordering::Relaxed)
        );
        for (name, help, value) in [
            (
                "gate_control_recordings_stored_total",
                "Session recordings stored from connectors.",
                &self.recordings_stored,
            ),
            (
                "gate_control_recording_bytes_total",
                "Bytes of session recordings stored.",
                &self.recording_bytes,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP gate_control_delivery_attempts_total Outbox delivery attempts by target and result.\n");
        out.push_str("# TYPE gate_control_delivery_attempts_total counter\n");
        if let Ok(map) = self.deliveries.lock() {
            for target in ["webhook", "slack"] {
                for result in ["success", "failure"] {
                    let n = map.get(&(target, result)).copied().unwrap_or(0);
                    let _ = writeln!(
                        out,
                        "gate_control_delivery_attempts_total{{target=\"{target}\",result=\"{result}\"}} {n}"
                    );
                }
            }
        }
        out.push_str(
            "# HELP gate_control_dead_letters_total Deliveries that failed their last attempt.\n",
        );
        out.push_str("# TYPE gate_control_dead_letters_total counter\n");
        if let Ok(map) = self.dead_letters.lock() {
            for target in ["webhook", "slack"] {
                let n = map.get(target).copied().unwrap_or(0);
                let _ = writeln!(
                    out,
                    "gate_control_dead_letters_total{{target=\"{target}\"}} {n}"
                );
            }
        }
        self.render_durations(&mut out);
        out.push_str("# HELP gate_control_snapshots_total Snapshots sent to connectors: full, or only the version when theirs is current.\n");
        out.push_str("# TYPE gate_control_snapshots_total counter\n");
        for (kind, n) in [
            ("full", &self.snapshots_full),
            ("unchanged", &self.snapshots_unchanged),
        ] {
            let _ = writeln!(
                out,
                "gate_control_snapshots_total{{kind=\"{kind}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        out
    }

    fn render_durations(&self, out: &mut String) {
        out.push_str("# HELP gate_control_request_duration_seconds Time from a request's headers to its response's, by transport.\n");
        out.push_str("# TYPE gate_control_request_duration_seconds histogram\n");
        let Ok(map) = self.durations.lock() else {
            return;
        };
        for transport in ["http", "grpc"] {
            let h = map.get(transport).cloned().unwrap_or_default();
            let mut cumulative = 0;
            for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "gate_control_request_duration_seconds_bucket{{transport=\"{transport}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "gate_control_request_duration_seconds_bucket{{transport=\"{transport}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "gate_control_request_duration_seconds_sum{{transport=\"{transport}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "gate_control_request_duration_seconds_count{{transport=\"{transport}\"}} {}",
                h.count
            );
        }
    }
}

impl StoreGauges {
    /// The gauges' exposition text (appended to [`Metrics::render`]'s).
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP gate_control_connectors Registered connectors by status (online, stale, offline: heartbeats stopped, deregistered).\n");
        out.push_str("# TYPE gate_control_connectors gauge\n");
        for (status, n) in &self.connectors {
            let _ = writeln!(out, "gate_control_connectors{{status=\"{status}\"}} {n}");
        }
        out.push_str("# HELP gate_control_deliveries Outbox deliveries by state (dead: dead letters waiting for a replay).\n");
        out.push_str("# TYPE gate_control_deliveries gauge\n");
        for state in crate::store::DELIVERY_STATES {
            let n = self
                .deliveries
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "gate_control_deliveries{{state=\"{state}\"}} {n}");
        }
        out
    }
}
