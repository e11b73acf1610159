//! Audit ingest validates what a connector sends: UUIDv7 ids, known stages,
//! actions and protocols, and times no later than a small clock skew.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Db, start_cp};
use gate_proto::v1::{AuditEvent, IngestAuditRequest};

fn event(id: &str) -> AuditEvent {
    AuditEvent {
        id: id.into(),
        time: "2026-11-23T10:00:00.000Z".into(),
        identity: "app".into(),
        resource: "primary-db".into(),
        protocol: "postgres".into(),
        stage: "pre_request".into(),
        action: "allow".into(),
        ..AuditEvent::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_are_refused_by_field() {
    let cp = start_cp(Db::Sqlite).await;
    let key = cp.key("default", "connector").await;
    let mut connector = cp.connector(Some(&key), None).await;
    let good = "0190a0a0-0000-7000-8000-000000000001";
    let accepted = connector
        .ingest_audit(IngestAuditRequest {
            events: vec![event(good)],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.accepted, 1);

    let cases: Vec<(AuditEvent, &str)> = vec![
        (
            event("not-a-uuid"),
            "events[0].id: expected a lower-case UUIDv7, got \"not-a-uuid\"",
        ),
        (
            // A version-4 UUID.
            event("0190a0a0-0000-4000-8000-000000000001"),
            "events[0].id: expected a lower-case UUIDv7",
        ),
        (
            AuditEvent {
                time: "9999-01-01T00:00:00Z".into(),
                ..event(good)
            },
            "events[0].time: 9999-01-01T00:00:00Z is more than 5 minutes in the future",
        ),
        (
            AuditEvent {
                stage: "later".into(),
                ..event(good)
            },
            "events[0].stage: expected one of session, pre_request, post_request, got \"later\"",
        ),
        (
            AuditEvent {
                action: "maybe".into(),
                ..event(good)
            },
            "events[0].action: expected one of allow, block, rewrite, mask, filter, got \"maybe\"",
        ),
        (
            AuditEvent {
                protocol: "gopher".into(),
                ..event(good)
            },
            "events[0].protocol: expected one of postgres, mysql, mongodb, http, ssh, mcp",
        ),
    ];
    for (bad, wanted) in cases {
        let status = connector
            .ingest_audit(IngestAuditRequest { events: vec![bad] })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{wanted}");
        assert!(status.message().starts_with(wanted), "{}", status.message());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_grpc_message_is_refused_before_it_is_decoded() {
    let cp = start_cp(Db::Sqlite).await;
    let key = cp.key("default", "connector").await;
    let mut connector = cp.connector(Some(&key), None).await;
    // 17 MiB of statement text in one batch, over the 16 MiB request limit.
    let events = (0..17)
        .map(|i| AuditEvent {
            statement: "x".repeat(1024 * 1024),
            ..event(&format!("0190a0a0-0000-7000-8000-{i:012}"))
        })
        .collect();
    let status = connector
        .ingest_audit(IngestAuditRequest { events })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains("the limit is: 16777216"),
        "{status:?}"
    );
    // The service is still there for a normal batch.
    let ok = connector
        .ingest_audit(IngestAuditRequest {
            events: vec![event("0190a0a0-0000-7000-8000-0000000000aa")],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.accepted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_queries_refuse_duplicated_and_out_of_range_parameters() {
    let cp = start_cp(Db::Sqlite).await;
    for path in ["/api/v1/audit", "/api/v1/audit/export"] {
        let (status, body) = cp
            .root("GET", &format!("{path}?identity=a&identity=b"), None, None)
            .await;
        assert_eq!(
            (status, body["field"].as_str(), body["message"].as_str()),
            (400, Some("identity"), Some("given more than once")),
            "{path}: {body}"
        );
        let (status, body) = cp
            .root("GET", &format!("{path}?from=yesterday"), None, None)
            .await;
        assert_eq!(
            (status, body["field"].as_str()),
            (400, Some("from")),
            "{path}: {body}"
        );
    }
    let (status, body) = cp.root("GET", "/api/v1/audit?limit=1001", None, None).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("limit")),
        "{body}"
    );
}
