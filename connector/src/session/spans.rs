//! The session layer's trace spans, ordinary `tracing` spans of target
//! [`TARGET`] that the OTLP layer (`crate::telemetry`) exports: `gate.session`
//! from admission to the end of the session, and one `gate.request` child per
//! decided request, closed when its audit event is completed. A protocol may
//! give a W3C `traceparent` to continue its client's trace. With telemetry
//! off every span is `Span::none()`: nothing is allocated or recorded.

use std::net::SocketAddr;

use gate_config::connector::Protocol;
use gate_policy::Action;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::server::Gate;
use crate::telemetry::TARGET;

/// The span of one client session (`gate.action` is recorded once decided).
pub(super) fn session(
    gate: &Gate,
    protocol: Protocol,
    resource: &str,
    identity: &str,
    peer: SocketAddr,
    traceparent: Option<&str>,
) -> Span {
    if gate.config.telemetry.is_none() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "gate.session",
        otel.kind = "server",
        gate.resource = resource,
        gate.protocol = protocol.as_str(),
        gate.identity = identity,
        client.address = %peer.ip(),
        client.port = peer.port(),
        gate.action = Empty,
    );
    if let Some(parent) = traceparent.and_then(remote) {
        let _ = span.set_parent(parent);
    }
    span
}

/// Record the session's decision.
pub(super) fn decided(span: &Span, action: Action) {
    span.record("gate.action", action.as_str());
}

/// The span of one request of `session` (`Span::none()` when the session has
/// none), a child of the session or, when the protocol gives one, of the
/// client's `traceparent` (then linked to the session's span).
pub(super) fn request(
    session: &Span,
    kind: &str,
    action: Action,
    traceparent: Option<&str>,
) -> Span {
    if session.is_none() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET,
        parent: session,
        "gate.request",
        gate.statement_kind = kind,
        gate.pre_request = action.as_str(),
        gate.post_request = Empty,
        gate.rows = Empty,
    );
    if let Some(parent) = traceparent.and_then(remote) {
        let _ = span.set_parent(parent);
        span.add_link(session.context().span().span_context().clone());
    }
    span
}

/// Record a request's `post_request` action (its result's).
pub(super) fn result(span: &Span, action: Action) {
    span.record("gate.post_request", action.as_str());
}

/// Close a request's span with the rows it returned or affected.
pub(super) fn close(span: Span, rows: u64) {
    if !span.is_none() {
        span.record("gate.rows", rows);
    }
}

/// The remote parent a W3C `traceparent` names; `None` when it is malformed.
fn remote(traceparent: &str) -> Option<opentelemetry::Context> {
    let cx = TraceContextPropagator::new().extract(&Traceparent(traceparent));
    cx.span().span_context().is_valid().then_some(cx)
}

/// A carrier holding only a `traceparent` header.
struct Traceparent<'a>(&'a str);

impl Extractor for Traceparent<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        key.eq_ignore_ascii_case("traceparent").then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

#[cfg(test)]
#[path = "spans_tests.rs"]
mod tests;
