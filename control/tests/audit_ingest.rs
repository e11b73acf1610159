//! Audit ingest validates what a connector sends: UUIDv7 ids, known stages,
//! actions and protocols, and times no later than a small clock skew. Over HTTP
//! an event's `details` is a JSON object (older connectors' `details_json` text
//! is still taken on ingest); gRPC keeps the proto's `details_json`.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Db, ROOT_KEY, http, start_cp};
use gate_proto::v1::{AuditEvent, IngestAuditRequest, QueryAuditRequest};
use serde_json::{Value, json};

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

/// One HTTP ingest call with `key`: (status, JSON reply).
async fn post_audit(cp: &common::Cp, key: &str, body: &Value) -> (u16, Value) {
    let (status, text) = http(
        cp.addr(),
        "POST",
        "/api/v1/audit",
        Some(key),
        None,
        Some(&body.to_string()),
    )
    .await;
    (status, serde_json::from_str(&text).unwrap())
}

fn http_event(id: &str, extra: Value) -> Value {
    let mut event = json!({
        "id": id,
        "time": "2026-11-23T10:00:00.000Z",
        "identity": "app",
        "resource": "primary-db",
        "action": "allow",
    });
    for (k, v) in extra.as_object().unwrap() {
        event[k] = v.clone();
    }
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_details_are_a_json_object_and_ingest_takes_the_older_text_too() {
    let cp = start_cp(Db::Sqlite).await;
    let key = cp.key("default", "connector").await;
    let id = |n: u32| format!("0190a0a0-0000-7000-8000-{n:012}");
    let object = json!({"kind": "statement", "dry_run": [{"policy": "p", "action": "block"}]});

    // Ingest: the object, the older text, neither.
    let (status, reply) = post_audit(
        &cp,
        &key,
        &json!({"events": [
            http_event(&id(1), json!({"details": object})),
            http_event(&id(2), json!({"details_json": r#"{"kind":"session"}"#})),
            http_event(&id(3), json!({})),
        ]}),
    )
    .await;
    assert_eq!(
        (status, reply["accepted"].as_u64()),
        (200, Some(3)),
        "{reply}"
    );

    // Refused, naming the fields: both forms, a details that is not an object, a text that is
    // not an object's.
    let cases = [
        (
            json!({"details": {}, "details_json": "{}"}),
            "events[0].details",
            "give details (a JSON object) or details_json (the same object as text, from older connectors), not both",
        ),
        (
            json!({"details": "{}"}),
            "events[0].details",
            "expected a JSON object",
        ),
        (
            json!({"details": null}),
            "events[0].details",
            "expected a JSON object",
        ),
        (
            json!({"details_json": "[1]"}),
            "events[0].details_json",
            "expected a JSON object",
        ),
    ];
    for (extra, field, message) in cases {
        let body = json!({"events": [http_event(&id(9), extra.clone())]});
        let (status, reply) = post_audit(&cp, &key, &body).await;
        assert_eq!(
            (status, reply["field"].as_str(), reply["message"].as_str()),
            (400, Some(field), Some(message)),
            "{extra}: {reply}"
        );
    }

    // gRPC ingest still takes the proto's text.
    let mut connector = cp.connector(Some(&key), None).await;
    connector
        .ingest_audit(IngestAuditRequest {
            events: vec![AuditEvent {
                details_json: r#"{"kind":"result"}"#.into(),
                ..event(&id(4))
            }],
        })
        .await
        .unwrap();

    // Read over HTTP: `details` is an object (`{}` when none was sent), never text.
    let (status, page) = cp.root("GET", "/api/v1/audit", None, None).await;
    assert_eq!(status, 200, "{page}");
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 4, "{page}");
    let details = |n: u32| {
        let event = events.iter().find(|e| e["id"] == id(n)).unwrap();
        assert!(event.get("details_json").is_none(), "{event}");
        event["details"].clone()
    };
    assert_eq!(details(1), object);
    assert_eq!(details(2), json!({"kind": "session"}));
    assert_eq!(details(3), json!({}));
    assert_eq!(details(4), json!({"kind": "result"}));

    // The export has the same shape, one event per line.
    let (status, export) = http(
        cp.addr(),
        "GET",
        "/api/v1/audit/export",
        Some(ROOT_KEY),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let exported: Vec<Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(exported.len(), 4);
    assert!(
        exported
            .iter()
            .all(|e| e["details"].is_object() && e.get("details_json").is_none())
    );

    // gRPC answers with the proto's field: the same object as text.
    let mut admin = cp.admin(Some(ROOT_KEY), None).await;
    let reply = admin
        .query_audit(QueryAuditRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = reply.events.iter().find(|e| e.id == id(1)).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&first.details_json).unwrap(),
        object
    );

    // The OpenAPI document says so.
    let (_, doc) = cp.root("GET", "/api/v1/openapi.json", None, None).await;
    let schema = &doc["components"]["schemas"]["AuditEvent"];
    assert_eq!(schema["properties"]["details"]["type"], "object");
    assert_eq!(schema["properties"]["details_json"]["writeOnly"], true);
    assert_eq!(
        schema["not"],
        json!({"required": ["details", "details_json"]})
    );
}

/// MCP events are queryable by what they acted on: `operation` and `target` come from
/// `details.mcp` at ingest, over HTTP and gRPC, on SQLite and PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_is_queryable_by_mcp_operation_and_target() {
    for db in [Db::Sqlite, Db::Postgres] {
        let cp = start_cp(db).await;
        let key = cp.key("default", "connector").await;
        let id = |n: u32| format!("0190a0a0-0000-7000-8000-{n:012}");
        let mcp = |operation: &str, target: &str| json!({"details": {"kind": "statement", "mcp": {"method": "tools/call", "operation": operation, "target": target}}});
        let (status, reply) = post_audit(
            &cp,
            &key,
            &json!({"events": [
                http_event(&id(1), mcp("tool", "customer_lookup")),
                http_event(&id(2), mcp("tool", "refund")),
                http_event(&id(3), mcp("resource", "file:///customers.csv")),
                http_event(&id(4), json!({"details": {"kind": "statement"}})),
            ]}),
        )
        .await;
        assert_eq!(
            (status, reply["accepted"].as_u64()),
            (200, Some(4)),
            "{reply}"
        );

        let ids = |page: &Value| -> Vec<String> {
            let mut ids: Vec<String> = page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        };
        let (_, page) = cp
            .root("GET", "/api/v1/audit?operation=tool", None, None)
            .await;
        assert_eq!(ids(&page), [id(1), id(2)], "{page}");
        let (_, page) = cp
            .root(
                "GET",
                "/api/v1/audit?operation=tool&target=customer_lookup",
                None,
                None,
            )
            .await;
        assert_eq!(ids(&page), [id(1)], "{page}");
        let (_, page) = cp
            .root("GET", "/api/v1/audit?target=nothing", None, None)
            .await;
        assert_eq!(ids(&page), Vec::<String>::new(), "{page}");

        let mut admin = cp.admin(Some(ROOT_KEY), None).await;
        let found = admin
            .query_audit(QueryAuditRequest {
                operation: "resource".into(),
                ..QueryAuditRequest::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            found
                .events
                .iter()
                .map(|e| e.id.clone())
                .collect::<Vec<_>>(),
            [id(3)]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_is_queryable_and_exportable_by_protocol() {
    for db in [Db::Sqlite, Db::Postgres] {
        let cp = start_cp(db).await;
        let key = cp.key("default", "connector").await;
        let id = |n: u32| format!("0190a0a0-0000-7000-8000-{n:012}");
        let events = json!({"events": [
            http_event(&id(1), json!({"protocol": "postgres"})),
            http_event(&id(2), json!({"protocol": "mcp"})),
            http_event(&id(3), json!({"protocol": "mcp"})),
            http_event(&id(4), json!({"protocol": "ssh"})),
        ]});
        let (status, reply) = post_audit(&cp, &key, &events).await;
        assert_eq!(
            (status, reply["accepted"].as_u64()),
            (200, Some(4)),
            "{reply}"
        );

        let (status, page) = cp
            .root("GET", "/api/v1/audit?protocol=mcp", None, None)
            .await;
        assert_eq!(status, 200, "{page}");
        let protocols: Vec<&str> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["protocol"].as_str().unwrap())
            .collect();
        assert_eq!(protocols, ["mcp", "mcp"], "{page}");
        // Combined with another filter, and in the export.
        let (_, page) = cp
            .root("GET", "/api/v1/audit?protocol=ssh&identity=app", None, None)
            .await;
        assert_eq!(page["events"][0]["id"], id(4), "{page}");
        assert_eq!(page["events"].as_array().unwrap().len(), 1);
        let (status, lines) = http(
            cp.addr(),
            "GET",
            "/api/v1/audit/export?protocol=postgres",
            Some(ROOT_KEY),
            None,
            None,
        )
        .await;
        assert_eq!(status, 200, "{lines}");
        assert_eq!(lines.lines().count(), 1, "{lines}");
        assert!(lines.contains(&id(1)), "{lines}");
        // An unknown protocol is refused by name, over HTTP and gRPC alike.
        let (status, refused) = cp
            .root("GET", "/api/v1/audit?protocol=telnet", None, None)
            .await;
        assert_eq!(status, 400, "{refused}");
        assert_eq!(refused["field"], "protocol", "{refused}");
        let mut admin = cp.admin(Some(ROOT_KEY), None).await;
        let status = admin
            .query_audit(QueryAuditRequest {
                protocol: "telnet".into(),
                ..QueryAuditRequest::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    }
}
