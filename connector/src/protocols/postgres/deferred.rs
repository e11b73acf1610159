//! Work that waits until the bytes it concerns are written, so it adds
//! nothing to a statement's latency: audit events (emitted in order, at the
//! latest when the session ends or is dropped) and request durations.

use std::sync::Arc;

use gate_policy::{QueryInfo, Verdict};

use super::relay::Context;
use crate::audit::AuditEvent;

/// The statement of an audit event not yet emitted: shared, not copied.
pub(super) enum AuditText {
    /// A whole statement text.
    Text(Arc<str>),
    /// Statement `i` of a classified message.
    Query(Arc<[QueryInfo]>, usize),
}

/// One session's deferred work.
#[derive(Default)]
pub(super) struct Deferred {
    audits: Vec<(&'static str, AuditText, Arc<Verdict>)>,
    durations: Vec<std::time::Duration>,
}

impl Context<'_> {
    /// Audit one decision once the bytes it concerns are written (see [`Deferred`]).
    pub(super) fn audit(&self, kind: &'static str, text: AuditText, verdict: &Arc<Verdict>) {
        self.deferred().audits.push((kind, text, verdict.clone()));
    }

    /// Record one request's duration once the response is written.
    pub(super) fn record_duration(&self, duration: std::time::Duration) {
        self.deferred().durations.push(duration);
    }

    fn deferred(&self) -> std::sync::MutexGuard<'_, Deferred> {
        self.deferred
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Emit the deferred audit events and record the deferred request durations.
    pub(super) fn flush_deferred(&self) {
        let mut deferred = self.deferred();
        for (kind, text, verdict) in deferred.audits.drain(..) {
            let statement = match &text {
                AuditText::Text(text) => Some(&**text),
                AuditText::Query(queries, i) => queries
                    .get(*i)
                    .map(|q| q.statement.as_deref().unwrap_or(&q.raw)),
            };
            self.gate
                .audit
                .emit(AuditEvent::new(kind, self.parties, statement, verdict));
        }
        for duration in deferred.durations.drain(..) {
            self.gate.metrics.observe(
                "gate_request_duration_seconds",
                &[("protocol", "postgres"), ("resource", &self.resource.name)],
                duration,
            );
        }
    }
}

impl Drop for Context<'_> {
    /// A session dropped mid-write (shutdown, a cancelled task) still
    /// emits the audit events it deferred.
    fn drop(&mut self) {
        self.flush_deferred();
    }
}
