//! `connector_selector` over real gRPC on SQLite and PostgreSQL: a connector's snapshots (fetch
//! and watch) hold only the resources whose selector its labels satisfy; a changed selector
//! moves a resource between connectors on their open watches; registering with new labels bumps
//! the revision so an old `known_version` is not taken as current; bad labels are refused.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Db, start_cp};
use gate_proto::v1::*;

fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn names(snapshot: &Snapshot) -> Vec<String> {
    let mut names: Vec<String> = snapshot.resources.iter().map(|r| r.name.clone()).collect();
    names.sort();
    names
}

async fn selection(db: Db) {
    let cp = start_cp(db).await;
    let key = cp.key("default", "connector").await;
    let mut client = cp.connector(Some(&key), None).await;
    for (name, selector) in [
        ("everywhere-db", "{}"),
        ("eu-db", r#"{"region":"eu"}"#),
        ("eu-gpu-db", r#"{"region":"eu","gate.dev/tier":"gpu"}"#),
    ] {
        let body = format!(
            r#"{{"name":"{name}","protocol":"postgres","host":"h","port":5432,"connector_selector":{selector}}}"#
        );
        let (status, created) = cp
            .root("POST", "/api/v1/resources", None, Some(&body))
            .await;
        assert_eq!(status, 201, "{created}");
    }
    let (_, listed) = cp.root("GET", "/api/v1/resources", None, None).await;
    let eu = listed["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "eu-db")
        .unwrap()
        .clone();
    assert_eq!(eu["connector_selector"]["region"], "eu", "{eu}");

    let fetch = |labels: HashMap<String, String>, known_version: u64| {
        let mut client = client.clone();
        async move {
            client
                .fetch_snapshot(FetchSnapshotRequest {
                    connector_id: String::new(),
                    known_version,
                    labels,
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    assert_eq!(names(&fetch(labels(&[]), 0).await), ["everywhere-db"]);
    assert_eq!(
        names(&fetch(labels(&[("region", "eu")]), 0).await),
        ["eu-db", "everywhere-db"]
    );
    assert_eq!(
        names(&fetch(labels(&[("region", "us"), ("gate.dev/tier", "gpu")]), 0).await),
        ["everywhere-db"],
        "every selector key must match"
    );
    assert_eq!(
        names(
            &fetch(
                labels(&[("region", "eu"), ("gate.dev/tier", "gpu"), ("x", "y")]),
                0
            )
            .await
        ),
        ["eu-db", "eu-gpu-db", "everywhere-db"],
        "extra labels do not matter"
    );

    // Registering with labels records them; new labels bump the revision.
    let version = fetch(labels(&[]), 0).await.version;
    let register = |labels: HashMap<String, String>| {
        let mut client = client.clone();
        async move {
            client
                .register(RegisterConnectorRequest {
                    name: "edge-eu".into(),
                    version: "0.1.0".into(),
                    resources: vec![],
                    host: "node-a".into(),
                    labels,
                })
                .await
                .unwrap()
                .into_inner()
                .connector
                .unwrap()
        }
    };
    let registered = register(labels(&[("region", "eu")])).await;
    assert_eq!(registered.labels, labels(&[("region", "eu")]));
    let after_labels = fetch(labels(&[("region", "eu")]), version).await;
    assert!(
        after_labels.version > version,
        "new labels bump the revision"
    );
    assert_eq!(names(&after_labels), ["eu-db", "everywhere-db"]);
    register(labels(&[("region", "eu")])).await;
    assert_eq!(
        fetch(labels(&[]), 0).await.version,
        after_labels.version,
        "re-registering with the same labels changes nothing"
    );
    let (_, connectors) = cp.root("GET", "/api/v1/connectors", None, None).await;
    let edge = connectors["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "edge-eu")
        .unwrap();
    assert_eq!(
        edge["labels"],
        serde_json::json!({"region": "eu"}),
        "{connectors}"
    );

    // A watch follows a selector change: the resource leaves the EU connector's snapshot.
    let mut watch = client
        .watch_snapshot(WatchSnapshotRequest {
            connector_id: registered.id.clone(),
            known_version: 0,
            labels: labels(&[("region", "eu")]),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(names(&first), ["eu-db", "everywhere-db"]);
    let mut moved = eu.clone();
    moved["connector_selector"] = serde_json::json!({"region": "us"});
    let id = eu["id"].as_str().unwrap();
    let (status, body) = cp
        .root(
            "PUT",
            &format!("/api/v1/resources/{id}"),
            None,
            Some(&moved.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let pushed = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(names(&pushed), ["everywhere-db"]);

    // Labels are validated like resource labels, with the field named.
    let mut bad = eu.clone();
    bad["connector_selector"] = serde_json::json!({"region/": "eu"});
    let (status, body) = cp
        .root(
            "PUT",
            &format!("/api/v1/resources/{id}"),
            None,
            Some(&bad.to_string()),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string()
            .contains("resource.connector_selector.region/"),
        "{body}"
    );
    let refused = client
        .fetch_snapshot(FetchSnapshotRequest {
            labels: labels(&[("bad key", "x")]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("labels.bad key"), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_hold_only_the_resources_a_connector_is_selected_for_on_sqlite() {
    selection(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_hold_only_the_resources_a_connector_is_selected_for_on_postgres() {
    selection(Db::Postgres).await;
}
