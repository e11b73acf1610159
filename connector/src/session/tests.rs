//! The session layer without any protocol: admission and refusal, verdict
//! and plan reuse, audit events completed with rows and duration, and a
//! grant that ends an open session. The resource speaks `mysql` on purpose:
//! nothing here depends on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gate_config::ConnectorConfig;
use gate_config::connector::Protocol;
use gate_policy::{ConnectionInfo, EngineOptions, PolicyEngine, PolicySpec, QueryInfo, UserInfo};
use gate_proto::v1::Grant;

use super::results::{PlanCache, ResultShape};
use super::*;
use crate::audit::AuditSink;
use crate::managed::Managed;

/// A writer the tests can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The audit lines written so far, waiting up to 2 s for `n` of them.
    fn events(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            let events: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if events.len() >= n || Instant::now() > deadline {
                return events;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

const POLICY: &str = r#"package formal.v2
import rego.v1
default session := {"action": "allow"}
session := {"action": "block", "reason": "contractors may not connect"} if "contractors" in input.user.groups
session := {"action": "block", "reason": "wrong protocol"} if input.resource.protocol != "mysql"
default pre_request := {"action": "allow"}
pre_request := {"action": "block", "reason": "no deletes"} if input.query.type == "delete"
default post_request := {"action": "allow"}
post_request := {"action": "mask", "masks": [{"column": "email", "strategy": "redact"}]} if input.resource.labels.env == "prod"
"#;

fn gate(require_grant: bool) -> (Gate, Captured) {
    let yaml = format!(
        "resources:\n  - {{name: orders, protocol: mysql, host: 127.0.0.1, port: 3306, labels: {{team: shop}}, require_access_grant: {require_grant}}}\n"
    );
    let config: ConnectorConfig =
        gate_config::load_str("test.yaml", &yaml, &|_| None).expect("test config loads");
    let engine = PolicyEngine::new(
        vec![PolicySpec::from_source("p", "p.rego", POLICY)],
        EngineOptions::default(),
    )
    .expect("test policy compiles");
    let captured = Captured::default();
    let gate = Gate::new(config, engine, AuditSink::new(Box::new(captured.clone())));
    (gate, captured)
}

fn admission<'g>(gate: &'g Gate, groups: &[&str]) -> Admission<'g> {
    Admission {
        protocol: Protocol::Mysql,
        resource: &gate.config.resources[0],
        user: UserInfo {
            name: Some("alice".into()),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            ..Default::default()
        },
        peer: SocketAddr::from(([127, 0, 0, 1], 40000)),
        connection: ConnectionInfo::default(),
        traceparent: None,
        single_request: false,
    }
}

fn managed(groups: &[(&str, &str)], env: Option<&str>, grants: Vec<Grant>) -> Managed {
    let mut m = Managed::default();
    for (who, group) in groups {
        m.groups
            .entry((*who).to_owned())
            .or_default()
            .push((*group).to_owned());
    }
    if let Some(env) = env {
        let mut resource = gate_proto::v1::Resource {
            name: "orders".into(),
            ..Default::default()
        };
        resource.labels.insert("env".into(), env.into());
        m.resources.insert("orders".into(), resource);
    }
    m.grants = grants;
    m
}

fn reload(gate: &Gate, m: Managed) {
    let engine = PolicyEngine::new(
        vec![PolicySpec::from_source("p", "p.rego", POLICY)],
        EngineOptions::default(),
    )
    .unwrap();
    gate.live.replace(engine, m);
}

fn delete(id: u32) -> QueryInfo {
    QueryInfo {
        raw: format!("delete from orders where id = {id}"),
        kind: "delete".into(),
        tables: vec!["orders".into()],
        ..Default::default()
    }
}

#[test]
fn admission_adds_control_plane_groups_and_audits_with_the_protocol() {
    let (gate, audit) = gate(false);
    reload(&gate, managed(&[("alice", "contractors")], None, vec![]));
    let refused = admit(&gate, admission(&gate, &["engineering"])).expect_err("refused");
    assert_eq!(
        refused,
        Refusal::Blocked("contractors may not connect".into())
    );
    assert_eq!(refused.outcome().as_str(), "blocked");
    let events = audit.events(1);
    assert_eq!(events[0]["kind"], "session");
    assert_eq!(events[0]["protocol"], "mysql");
    assert_eq!(events[0]["action"], "block");
    assert_eq!(events[0]["identity"], "alice");

    reload(&gate, Managed::default());
    let session = admit(&gate, admission(&gate, &["engineering"])).expect("admitted");
    assert_eq!(session.identity(), "alice");
    assert_eq!(audit.events(2)[1]["action"], "allow");
}

#[test]
fn a_resource_that_requires_a_grant_refuses_without_one_and_admits_with_one() {
    let (gate, _) = gate(true);
    let refused = admit(&gate, admission(&gate, &[])).expect_err("no grant");
    assert!(
        matches!(&refused, Refusal::GrantRequired(r) if r.contains("requires an approved access request")),
        "{refused:?}"
    );
    let grant = Grant {
        access_request_id: "ar-1".into(),
        subject: "alice".into(),
        resource: "orders".into(),
        expires_at: gate_proto::wire::rfc3339(gate_proto::wire::now_ms() + 60_000),
        ..Default::default()
    };
    reload(&gate, managed(&[], None, vec![grant]));
    admit(&gate, admission(&gate, &[])).expect("grant admits");
}

#[tokio::test]
async fn an_open_session_ends_when_its_grant_expires() {
    let (gate, audit) = gate(true);
    let grant = Grant {
        access_request_id: "ar-2".into(),
        subject: "alice".into(),
        resource: "orders".into(),
        expires_at: gate_proto::wire::rfc3339(gate_proto::wire::now_ms() + 300),
        ..Default::default()
    };
    reload(&gate, managed(&[], None, vec![grant]));
    let session = admit(&gate, admission(&gate, &[])).expect("admitted");
    let reason = tokio::time::timeout(Duration::from_secs(5), session.grant_ended())
        .await
        .expect("the grant ended in time");
    assert!(reason.contains("ended (expired or revoked)"), "{reason}");
    session.audit_grant_ended(&reason);
    let events = audit.events(2);
    assert_eq!(events[1]["kind"], "session");
    assert_eq!(events[1]["action"], "block");
    assert_eq!(events[1]["reason"], reason.as_str());
}

#[test]
fn requests_of_one_shape_reuse_the_verdict_and_audit_rows_and_duration() {
    let (gate, audit) = gate(false);
    let session = admit(&gate, admission(&gate, &[])).expect("admitted");
    let first = session.request(
        &delete(1),
        AuditText::Text("delete 1".into()),
        "refused",
        None,
    );
    assert_eq!(first.decision, Decision::Block("no deletes".into()));
    let second = session.request(
        &delete(2),
        AuditText::Text("delete 2".into()),
        "refused",
        None,
    );
    assert!(
        Arc::ptr_eq(&first.verdict, &second.verdict),
        "same shape: the verdict is reused, not evaluated again"
    );
    let select = QueryInfo {
        kind: "select".into(),
        ..Default::default()
    };
    let third = session.request(&select, AuditText::Text("select 1".into()), "refused", None);
    assert_eq!(third.decision, Decision::Forward);

    // Pending events wait for completion; each keeps the time it was decided.
    session.add_rows(third.audit, 7);
    session.complete(third.audit, Duration::from_micros(1500));
    session.flush();
    let events = audit.events(2);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(audit.events(2).len(), 2, "the pending deletes wait");
    assert_eq!(events[1]["statement"], "select 1");
    assert_eq!(events[1]["rows"], 7);
    assert_eq!(events[1]["duration_us"], 1500);
    session.complete(first.audit, Duration::from_micros(10));
    session.complete(second.audit, Duration::from_micros(20));
    session.flush();
    let events = audit.events(4);
    assert_eq!(events.len(), 4);
    assert_eq!(events[2]["statement"], "delete 1");
    assert_eq!(events[2]["action"], "block");
    assert_eq!(events[3]["statement"], "delete 2");
    assert!(
        events[2]["ts_ms"].as_u64() <= events[1]["ts_ms"].as_u64(),
        "stamped when decided, not when written"
    );
    session.end();
    let metrics = gate.metrics.render();
    assert!(
        metrics.contains(
            "gate_policy_verdicts_reused_total{protocol=\"mysql\",resource=\"orders\",stage=\"pre_request\"} 1"
        ),
        "{metrics}"
    );
}

#[test]
fn a_session_dropped_mid_request_still_audits_it() {
    let (gate, audit) = gate(false);
    {
        let session = admit(&gate, admission(&gate, &[])).expect("admitted");
        let _ = session.request(
            &delete(3),
            AuditText::Text("delete 3".into()),
            "refused",
            None,
        );
    }
    let events = audit.events(2);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["statement"], "delete 3");
}

#[test]
fn result_plans_are_reused_for_the_same_shape_within_a_generation() {
    let (gate, _) = gate(false);
    let session = admit(&gate, admission(&gate, &[])).expect("admitted");
    let mut cache: PlanCache<&'static str> = PlanCache::default();
    let text: Arc<str> = "select email from customers".into();
    let shape = ResultShape {
        description: b"email:text",
        computed: false,
        text: &text,
        query: None,
    };
    let slot = cache
        .get(&session, &shape)
        .expect_err("nothing cached yet")
        .expect("these policies allow reuse");
    let verdict = Arc::new(session.post_request(None, vec![]));
    cache.put(slot, &shape, "mask-email", verdict);
    assert_eq!(
        cache.get(&session, &shape).ok().map(|(p, _)| p),
        Some("mask-email")
    );
    let other = ResultShape {
        description: b"id:int4",
        ..shape
    };
    assert!(cache.get(&session, &other).is_err(), "another shape: miss");
    // New policies (another generation): decided again.
    reload(&gate, managed(&[], Some("prod"), vec![]));
    assert!(cache.get(&session, &shape).is_err(), "new generation: miss");
}

#[test]
fn post_request_masks_by_the_session_labels() {
    let (gate, _) = gate(false);
    reload(&gate, managed(&[], Some("prod"), vec![]));
    let session = admit(&gate, admission(&gate, &[])).expect("admitted");
    let verdict = session.post_request(None, vec![]);
    let columns = [
        masking::OutputColumn {
            name: "id",
            source: Some(("customers", "id")),
            derived: None,
        },
        masking::OutputColumn {
            name: "email",
            source: Some(("customers", "email")),
            derived: None,
        },
    ];
    assert_eq!(
        masking::plan_columns(&verdict, &columns, false),
        masking::ColumnPlan::Mask(vec![None, Some(gate_policy::Strategy::Redact)])
    );
}
