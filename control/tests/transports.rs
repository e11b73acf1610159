//! HTTP `/api/v1` and gRPC answer the same request with the same data and the same auth outcome,
//! on both stores.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Cp, Db, ROOT_KEY, http, start_cp};
use gate_proto::v1::*;
use serde_json::{Value, json};

fn grpc_json<T: serde::Serialize>(value: T) -> Value {
    serde_json::to_value(value).unwrap()
}

async fn same_answers_and_auth_outcomes(db: Db) {
    let cp: Cp = start_cp(db).await;
    let acme = cp.org("acme").await;
    let mut root = cp.admin(Some(ROOT_KEY), None).await;

    // Create over gRPC, read over HTTP and gRPC: identical JSON.
    let created = root
        .create_resource(CreateResourceRequest {
            resource: Some(Resource {
                name: "primary-db".into(),
                protocol: "postgres".into(),
                host: "localhost".into(),
                port: 5432,
                database: "appdb".into(),
                ..Resource::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let (status, over_http) = cp
        .root(
            "GET",
            &format!("/api/v1/resources/{}", created.id),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let over_grpc = root
        .get_resource(GetResourceRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(over_http, grpc_json(&over_grpc));
    assert_eq!(over_http, grpc_json(&created));
    let (_, list_http) = cp.root("GET", "/api/v1/resources", None, None).await;
    let list_grpc = root
        .list_resources(ListResourcesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list_http, grpc_json(list_grpc));

    // Create over HTTP, read over gRPC.
    let (status, policy) = cp
        .root(
            "POST",
            "/api/v1/policies",
            None,
            Some(
                &json!({"name": "no-drop", "rego": common::BLOCK_DROP, "state": "active"})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(status, 201, "{policy}");
    let fetched = root
        .get_policy(GetPolicyRequest {
            id: policy["id"].as_str().unwrap().into(),
        })
        .await
        .unwrap();
    assert_eq!(grpc_json(fetched.into_inner()), policy);

    // A readonly key of the default org: reads work, writes are refused the same way on both.
    let readonly = cp.key("default", "readonly").await;
    let mut ro = cp.admin(Some(&readonly), None).await;
    assert_eq!(
        ro.list_resources(ListResourcesRequest {})
            .await
            .unwrap()
            .into_inner()
            .resources
            .len(),
        1
    );
    let (status, body) = http(
        cp.addr(),
        "POST",
        "/api/v1/policies",
        Some(&readonly),
        None,
        Some(r#"{"name":"x"}"#),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], "permission_denied");
    let err = ro
        .create_policy(CreatePolicyRequest {
            name: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert_eq!(err.message(), body["message"].as_str().unwrap());

    // Another org's key sees 404 for this resource on both transports.
    let other = cp.key(&acme, "admin").await;
    let (status, body) = http(
        cp.addr(),
        "GET",
        &format!("/api/v1/resources/{}", created.id),
        Some(&other),
        None,
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let mut other_client = cp.admin(Some(&other), None).await;
    let err = other_client
        .get_resource(GetResourceRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    assert!(
        other_client
            .list_resources(ListResourcesRequest {})
            .await
            .unwrap()
            .into_inner()
            .resources
            .is_empty()
    );

    // No key / a wrong key: 401 and Unauthenticated.
    let (status, _) = http(cp.addr(), "GET", "/api/v1/resources", None, None, None).await;
    assert_eq!(status, 401);
    let mut anonymous = cp.admin(None, None).await;
    let err = anonymous
        .list_resources(ListResourcesRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let mut wrong = cp.admin(Some("gk_not-a-key"), None).await;
    assert_eq!(
        wrong
            .list_resources(ListResourcesRequest {})
            .await
            .unwrap_err()
            .code(),
        tonic::Code::Unauthenticated
    );

    // Validation: the same field is named on both.
    let (status, body) = cp
        .root(
            "POST",
            "/api/v1/resources",
            None,
            Some(r#"{"name":"db2","protocol":"postgres","host":"h","port":70000}"#),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("resource.port")),
        "{body}"
    );
    let err = root
        .create_resource(CreateResourceRequest {
            resource: Some(Resource {
                name: "db2".into(),
                protocol: "postgres".into(),
                host: "h".into(),
                port: 70000,
                ..Resource::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        err.message(),
        format!("resource.port: {}", body["message"].as_str().unwrap())
    );
    assert_eq!(err.metadata().get("x-gate-field").unwrap(), "resource.port");

    // A system key scopes with X-Org-ID / x-org-id, the same on both.
    let mut in_acme = cp.admin(Some(ROOT_KEY), Some(&acme)).await;
    assert!(
        in_acme
            .list_resources(ListResourcesRequest {})
            .await
            .unwrap()
            .into_inner()
            .resources
            .is_empty()
    );
    let (_, listed) = cp.root("GET", "/api/v1/resources", Some(&acme), None).await;
    assert_eq!(listed, json!({"resources": []}));
    let (status, body) = cp
        .root("GET", "/api/v1/resources", Some("no-such-org"), None)
        .await;
    assert_eq!((status, body["field"].as_str()), (404, Some("x-org-id")));
    // An org key may not pick another organization.
    let (status, body) = http(
        cp.addr(),
        "GET",
        "/api/v1/resources",
        Some(&readonly),
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");

    // The metrics count both transports.
    let (_, metrics) = http(cp.addr(), "GET", "/metrics", None, None, None).await;
    assert!(
        metrics.contains(
            r#"gate_control_requests_total{transport="grpc",operation="get_resource",code="ok"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(r#"gate_control_requests_total{transport="http",operation="GetResource",code="not_found"} 1"#), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_answers_and_auth_outcomes_on_sqlite() {
    same_answers_and_auth_outcomes(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_answers_and_auth_outcomes_on_postgres() {
    same_answers_and_auth_outcomes(Db::Postgres).await;
}

/// Connectors register, heartbeat, sync and ship audit over gRPC with a `connector` key; the admin
/// API shows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_service_registers_syncs_and_ingests() {
    let cp = start_cp(Db::Sqlite).await;
    let key = cp.key("default", "connector").await;
    let mut connector = cp.connector(Some(&key), None).await;
    let registered = connector
        .register(RegisterConnectorRequest {
            name: "edge-1".into(),
            version: "0.1.0".into(),
            resources: vec!["primary-db".into()],
            host: "node-a".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let id = registered.connector.unwrap().id;
    assert_eq!(registered.heartbeat_interval_seconds, 10);
    let before = connector
        .heartbeat(HeartbeatRequest {
            connector_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();

    // A change made through the admin API shows up in the next snapshot and on the watch stream.
    let mut watch = connector
        .watch_snapshot(WatchSnapshotRequest {
            connector_id: id.clone(),
            known_version: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.version, before.snapshot_version);
    let (status, _) = cp
        .root(
            "POST",
            "/api/v1/resources",
            None,
            Some(r#"{"name":"primary-db","protocol":"postgres","host":"h","port":5432}"#),
        )
        .await;
    assert_eq!(status, 201);
    let pushed = tokio::time::timeout(std::time::Duration::from_secs(5), watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(pushed.version > first.version);
    assert_eq!(pushed.resources[0].name, "primary-db");
    let fetched = connector
        .fetch_snapshot(FetchSnapshotRequest {
            connector_id: id.clone(),
            known_version: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.version, pushed.version);
    let unchanged = connector
        .fetch_snapshot(FetchSnapshotRequest {
            connector_id: id.clone(),
            known_version: pushed.version,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        unchanged.resources.is_empty(),
        "a current connector gets the version only"
    );

    // Audit: a retried batch is stored once.
    let events: Vec<AuditEvent> = (0..20)
        .map(|i| AuditEvent {
            id: format!("0190a0a0-0000-7000-8000-{i:012}"),
            time: format!("2026-11-23T10:00:{i:02}.000Z"),
            identity: "app".into(),
            resource: "primary-db".into(),
            action: "allow".into(),
            statement: format!("select {i}"),
            ..AuditEvent::default()
        })
        .collect();
    let first = connector
        .ingest_audit(IngestAuditRequest {
            events: events.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((first.accepted, first.duplicates), (20, 0));
    let again = connector
        .ingest_audit(IngestAuditRequest { events })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.accepted, again.duplicates), (0, 20));
    let bad = connector
        .ingest_audit(IngestAuditRequest {
            events: vec![AuditEvent {
                id: "x".into(),
                time: "yesterday".into(),
                ..Default::default()
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(
        bad.message(),
        "events[0].time: expected an RFC 3339 time, got \"yesterday\""
    );

    // The connector key cannot use the admin API; the admin API lists the connector.
    let mut as_admin = cp.admin(Some(&key), None).await;
    assert_eq!(
        as_admin
            .list_resources(ListResourcesRequest {})
            .await
            .unwrap_err()
            .code(),
        tonic::Code::PermissionDenied
    );
    let (_, listed) = cp.root("GET", "/api/v1/connectors", None, None).await;
    assert_eq!(listed["connectors"][0]["status"], "online");
    connector
        .deregister(DeregisterConnectorRequest { connector_id: id })
        .await
        .unwrap();
    let (_, listed) = cp.root("GET", "/api/v1/connectors", None, None).await;
    assert_eq!(listed["connectors"][0]["status"], "offline");
    let (_, audit) = cp
        .root("GET", "/api/v1/audit?limit=5&identity=app", None, None)
        .await;
    assert_eq!(audit["events"].as_array().unwrap().len(), 5);
    assert_eq!(audit["events"][0]["statement"], "select 19");
    let cursor = audit["next_cursor"].as_str().unwrap();
    let (_, page2) = cp
        .root(
            "GET",
            &format!("/api/v1/audit?limit=5&identity=app&cursor={cursor}"),
            None,
            None,
        )
        .await;
    assert_eq!(page2["events"][0]["statement"], "select 14");
    let (status, export) = http(
        cp.addr(),
        "GET",
        "/api/v1/audit/export?identity=app",
        Some(ROOT_KEY),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(export.lines().count(), 20);
    let (status, body) = cp.root("GET", "/api/v1/audit?limit=abc", None, None).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("limit")));
}
