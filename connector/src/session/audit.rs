//! Audit events and durations a session defers until the bytes they concern
//! are written, so they add nothing to a request's latency. A request's event
//! waits for its rows and duration ([`Session::complete`]) and is stamped with
//! the time it was decided; every event leaves at the latest when the session
//! ends.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use gate_policy::{Action, QueryInfo, Verdict};
use tracing::Span;

use super::Session;
use crate::audit::{AuditEvent, McpAudit};

/// Events a session holds at most; past it the oldest leaves incomplete.
const MAX_DEFERRED: usize = 1024;

/// The request text of an audit event not yet emitted: shared, not copied.
#[derive(Debug, Clone)]
pub enum AuditText {
    /// A whole request text.
    Text(Arc<str>),
    /// Statement `i` of a classified message.
    Query(Arc<[QueryInfo]>, usize),
    /// No text (a session event).
    None,
}

impl AuditText {
    fn get(&self) -> Option<&str> {
        match self {
            AuditText::Text(text) => Some(text),
            AuditText::Query(queries, i) => queries
                .get(*i)
                .map(|q| q.statement.as_deref().unwrap_or(&q.raw)),
            AuditText::None => None,
        }
    }
}

/// One deferred event, addressed by the protocol to add rows and duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditId(u64);

#[derive(Debug)]
struct Pending {
    /// When the decision was taken (the event's time).
    decided_ms: u64,
    kind: &'static str,
    text: AuditText,
    verdict: Arc<Verdict>,
    rows: u64,
    duration: Option<Duration>,
    /// HTTP: the response status and body bytes sent to the client.
    response: Option<(u16, u64)>,
    /// MCP: the request's method, target and client.
    mcp: Option<Arc<McpAudit>>,
    /// Complete: may be emitted once every earlier event is.
    ready: bool,
    /// The request's `gate.request` span, closed when it completes.
    span: Span,
}

/// One session's deferred work.
#[derive(Debug, Default)]
pub(super) struct Deferred {
    /// Id of `events[0]`.
    first: u64,
    /// Emitted events leave a hole (`None`) until every earlier one is gone.
    events: VecDeque<Option<Pending>>,
    pub(super) durations: Vec<Duration>,
}

impl Deferred {
    fn get(&mut self, id: AuditId) -> Option<&mut Pending> {
        let at = id.0.checked_sub(self.first)?;
        self.events.get_mut(usize::try_from(at).ok()?)?.as_mut()
    }
}

impl Session<'_> {
    /// Audit one decision once the bytes it concerns are written.
    pub fn audit(&self, kind: &'static str, text: AuditText, verdict: &Arc<Verdict>) {
        self.push(kind, text, verdict, true, Span::none());
    }

    /// [`Session::audit`], with an MCP request's details on the event.
    pub fn audit_mcp(
        &self,
        kind: &'static str,
        text: AuditText,
        verdict: &Arc<Verdict>,
        mcp: Option<Arc<McpAudit>>,
    ) {
        let id = self.push(kind, text, verdict, true, Span::none());
        if let Some(mcp) = mcp {
            self.set_mcp(id, mcp);
        }
    }

    /// Audit one decision whose request is still running: the event is
    /// emitted after [`Session::complete`] (or when the session ends).
    pub fn audit_pending(
        &self,
        kind: &'static str,
        text: AuditText,
        verdict: &Arc<Verdict>,
    ) -> AuditId {
        self.push(kind, text, verdict, false, Span::none())
    }

    pub(super) fn push(
        &self,
        kind: &'static str,
        text: AuditText,
        verdict: &Arc<Verdict>,
        ready: bool,
        span: Span,
    ) -> AuditId {
        let mut deferred = self.deferred();
        let id = AuditId(deferred.first + deferred.events.len() as u64);
        deferred.events.push_back(Some(Pending {
            decided_ms: AuditEvent::now_ms(),
            kind,
            text,
            verdict: verdict.clone(),
            rows: 0,
            duration: None,
            response: None,
            mcp: None,
            ready,
            span,
        }));
        id
    }

    /// Add rows returned or affected to a pending event.
    pub fn add_rows(&self, id: AuditId, rows: u64) {
        if let Some(event) = self.deferred().get(id) {
            event.rows = event.rows.saturating_add(rows);
        }
    }

    /// Record on a pending event the HTTP status and the body bytes the client got.
    pub fn set_response(&self, id: AuditId, status: u16, bytes: u64) {
        if let Some(event) = self.deferred().get(id) {
            event.response = Some((status, bytes));
        }
    }

    /// Add MCP details (method, target, client) to an event not yet emitted.
    pub fn set_mcp(&self, id: AuditId, mcp: Arc<McpAudit>) {
        if let Some(event) = self.deferred().get(id) {
            event.mcp = Some(mcp);
        }
    }

    /// A pending event's request is done after `duration`: emit it with the
    /// next flush.
    /// The request's span closes here.
    pub fn complete(&self, id: AuditId, duration: Duration) {
        let mut deferred = self.deferred();
        if let Some(event) = deferred.get(id) {
            event.duration = Some(duration);
            event.ready = true;
            let span = std::mem::replace(&mut event.span, Span::none());
            let rows = event.rows;
            drop(deferred);
            super::spans::close(span, rows);
        }
    }

    /// Record on the span of the pending request `id` the `post_request`
    /// action of its result. Free when telemetry is off.
    pub fn result_action(&self, id: Option<AuditId>, action: Action) {
        if self.span.is_none() {
            return;
        }
        if let Some(event) = id.and_then(|id| self.deferred().get(id).map(|e| e.span.clone())) {
            super::spans::result(&event, action);
        }
    }

    /// Emit the complete audit events and record the deferred request durations.
    pub fn flush(&self) {
        self.flush_where(false);
    }

    /// Emit every deferred event, complete or not (the session is ending).
    pub(super) fn flush_all(&self) {
        self.flush_where(true);
    }

    fn emit(&self, event: Pending) {
        let mut audit = AuditEvent::at(
            event.decided_ms,
            event.kind,
            &self.parties,
            event.text.get(),
            event.verdict,
        );
        audit.rows = event.rows;
        audit.response = event.response;
        audit.mcp = event.mcp;
        audit.duration_us = event
            .duration
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        self.gate.audit.emit(audit);
    }

    fn flush_where(&self, all: bool) {
        let mut deferred = self.deferred();
        for slot in deferred.events.iter_mut() {
            if !slot.as_ref().is_some_and(|e| all || e.ready) {
                continue;
            }
            if let Some(event) = slot.take() {
                self.emit(event);
            }
        }
        // Holes leave from the front; past the cap the oldest pending event
        // leaves as it is (a statement prepared and never executed must not
        // hold a growing queue behind it).
        loop {
            let over = deferred.events.len() > MAX_DEFERRED;
            match deferred.events.front() {
                Some(None) => {}
                Some(Some(_)) if over => {}
                _ => break,
            }
            if let Some(Some(event)) = deferred.events.pop_front() {
                self.emit(event);
            }
            deferred.first += 1;
        }
        for duration in deferred.durations.drain(..) {
            self.gate.metrics.observe(
                "gate_request_duration_seconds",
                &[
                    ("protocol", self.protocol.as_str()),
                    ("resource", &self.resource.name),
                ],
                duration,
            );
        }
    }
}
