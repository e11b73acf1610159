//! Control-plane metrics in the Prometheus text format: requests by transport, operation and code,
//! and audit ingest counts.

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
        out
    }
}
