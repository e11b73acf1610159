//! The session layer's spans through the real OTLP layer into an in-memory
//! exporter: a `traceparent` given at admission or with a request becomes
//! the span's parent, a malformed one starts a new trace, and with telemetry
//! off no span exists.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gate_config::ConnectorConfig;
use gate_config::connector::Protocol;
use gate_policy::{ConnectionInfo, EngineOptions, PolicyEngine, PolicySpec, QueryInfo, UserInfo};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::layer::SubscriberExt;

use crate::audit::AuditSink;
use crate::server::Gate;
use crate::session::{Admission, AuditText, admit};

const POLICY: &str = r#"package formal.v2
import rego.v1
default session := {"action": "allow"}
session := {"action": "block", "reason": "not mallory"} if input.user.name == "mallory"
default pre_request := {"action": "allow"}
pre_request := {"action": "block", "reason": "no deletes"} if input.query.type == "delete"
"#;

const SESSION_PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const REQUEST_PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// Spans as the exporter received them.
#[derive(Debug, Clone, Default)]
struct Collected(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collected {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

fn gate(telemetry: bool) -> Gate {
    let telemetry = if telemetry {
        "telemetry: {otlp_endpoint: 'http://127.0.0.1:4317'}\n"
    } else {
        ""
    };
    let yaml = format!(
        "resources:\n  - {{name: orders, protocol: mysql, host: 127.0.0.1, port: 3306}}\n{telemetry}"
    );
    let config: ConnectorConfig = gate_config::load_str("test.yaml", &yaml, &|_| None).unwrap();
    let engine = PolicyEngine::new(
        vec![PolicySpec::from_source("p", "p.rego", POLICY)],
        EngineOptions::default(),
    )
    .unwrap();
    Gate::new(config, engine, AuditSink::new(Box::new(std::io::sink())))
}

fn admission<'g>(gate: &'g Gate, traceparent: Option<&str>) -> Admission<'g> {
    Admission {
        protocol: Protocol::Mysql,
        resource: &gate.config.resources[0],
        user: UserInfo {
            name: Some("alice".into()),
            ..Default::default()
        },
        peer: SocketAddr::from(([127, 0, 0, 1], 40000)),
        connection: ConnectionInfo::default(),
        traceparent: traceparent.map(str::to_owned),
        single_request: false,
    }
}

fn query(kind: &str) -> QueryInfo {
    QueryInfo {
        raw: format!("{kind} from orders"),
        kind: kind.into(),
        tables: vec!["orders".into()],
        ..Default::default()
    }
}

/// Run `body` with the OTLP layer installed over an in-memory exporter; the spans it exported.
fn traced(body: impl FnOnce()) -> Vec<SpanData> {
    let collected = Collected::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(collected.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(crate::telemetry::spans_layer(&provider));
    tracing::subscriber::with_default(subscriber, body);
    provider.shutdown().unwrap();
    collected.0.lock().unwrap().clone()
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

#[test]
fn a_traceparent_at_admission_parents_the_session_and_its_requests() {
    let gate = gate(true);
    let spans = traced(|| {
        let session = admit(&gate, admission(&gate, Some(SESSION_PARENT))).unwrap();
        let select = session.request(&query("select"), AuditText::None, "refused", None);
        session.complete(select.audit, Duration::from_millis(2));
        let delete = session.request(&query("delete"), AuditText::None, "refused", None);
        session.complete(delete.audit, Duration::ZERO);
        session.end();
    });
    let sessions = named(&spans, "gate.session");
    assert_eq!(sessions.len(), 1, "{spans:#?}");
    let session = sessions[0];
    let ctx = &session.span_context;
    assert_eq!(
        ctx.trace_id(),
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
    );
    assert_eq!(
        session.parent_span_id,
        SpanId::from_hex("00f067aa0ba902b7").unwrap()
    );
    assert!(session.parent_span_is_remote);
    assert_eq!(attr(session, "gate.identity").as_deref(), Some("alice"));
    assert_eq!(attr(session, "gate.resource").as_deref(), Some("orders"));
    assert_eq!(attr(session, "gate.protocol").as_deref(), Some("mysql"));
    assert_eq!(attr(session, "gate.action").as_deref(), Some("allow"));
    assert_eq!(
        attr(session, "client.address").as_deref(),
        Some("127.0.0.1")
    );

    let requests = named(&spans, "gate.request");
    assert_eq!(requests.len(), 2, "{spans:#?}");
    for request in &requests {
        assert_eq!(request.span_context.trace_id(), ctx.trace_id());
        assert_eq!(request.parent_span_id, ctx.span_id());
        assert!(!request.parent_span_is_remote);
    }
    let kinds: Vec<_> = requests
        .iter()
        .map(|r| {
            (
                attr(r, "gate.statement_kind").unwrap(),
                attr(r, "gate.pre_request").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("select".into(), "allow".into()),
            ("delete".into(), "block".into())
        ]
    );
}

#[test]
fn a_traceparent_with_a_request_parents_it_and_links_the_session() {
    let gate = gate(true);
    let spans = traced(|| {
        let session = admit(&gate, admission(&gate, None)).unwrap();
        let decided = session.request(
            &query("select"),
            AuditText::None,
            "refused",
            Some(REQUEST_PARENT),
        );
        session.complete(decided.audit, Duration::ZERO);
    });
    let session = named(&spans, "gate.session")[0];
    assert_eq!(session.parent_span_id, SpanId::INVALID);
    let request = named(&spans, "gate.request")[0];
    assert_eq!(
        request.span_context.trace_id(),
        TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap()
    );
    assert_eq!(
        request.parent_span_id,
        SpanId::from_hex("b7ad6b7169203331").unwrap()
    );
    let links: Vec<_> = request.links.iter().map(|l| &l.span_context).collect();
    assert_eq!(links, [&session.span_context]);
}

#[test]
fn a_refused_session_still_has_its_span_with_the_block() {
    let gate = gate(true);
    let spans = traced(|| {
        let mut refused = admission(&gate, None);
        refused.user.name = Some("mallory".into());
        assert!(admit(&gate, refused).is_err());
    });
    let session = named(&spans, "gate.session")[0];
    assert_eq!(attr(session, "gate.identity").as_deref(), Some("mallory"));
    assert_eq!(attr(session, "gate.action").as_deref(), Some("block"));
}

#[test]
fn a_malformed_traceparent_starts_a_new_trace() {
    let gate = gate(true);
    let spans = traced(|| {
        let session = admit(&gate, admission(&gate, Some("00-not-a-trace-01"))).unwrap();
        drop(session);
    });
    let session = named(&spans, "gate.session")[0];
    assert_eq!(session.parent_span_id, SpanId::INVALID);
    assert!(session.span_context.is_valid());
}

#[test]
fn without_telemetry_no_span_exists() {
    let gate = gate(false);
    let spans = traced(|| {
        let session = admit(&gate, admission(&gate, Some(SESSION_PARENT))).unwrap();
        assert!(session.span.is_none());
        let decided = session.request(&query("select"), AuditText::None, "refused", None);
        session.complete(decided.audit, Duration::ZERO);
    });
    assert!(spans.is_empty(), "{spans:#?}");
}
