//! Control-plane metrics in the Prometheus text format: requests by transport, operation and code,
//! audit ingest counts, stored recordings, and the outbox's delivery attempts and dead letters.

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
        out.push_str("# HELP gate_control_recordings_stored_total Session recordings stored from connectors.\n");
        out.push_str("# TYPE gate_control_recordings_stored_total counter\n");
        let _ = writeln!(
            out,
            "gate_control_recordings_stored_total {}",
            self.recordings_stored.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP gate_control_recording_bytes_total Bytes of session recordings stored.\n",
        );
        out.push_str("# TYPE gate_control_recording_bytes_total counter\n");
        let _ = writeln!(
            out,
            "gate_control_recording_bytes_total {}",
            self.recording_bytes.load(Ordering::Relaxed)
        );
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
        out
    }
}
