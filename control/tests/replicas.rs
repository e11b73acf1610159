//! Two control-plane replicas on one PostgreSQL: a change made through replica A reaches a
//! connector watching replica B within a second (LISTEN/NOTIFY between replicas).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Cp, ROOT_KEY, config_yaml, postgres_store};
use gate_proto::v1::WatchSnapshotRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_replica_reaches_watchers_of_another() {
    let (pg, dsn) = postgres_store();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let yaml = config_yaml(dir.path(), Some(&dsn), Some(ROOT_KEY));
        let config: gate_config::ControlConfig =
            gate_config::load_str("c.yaml", &yaml, &|_| None).unwrap();
        let running = gate_control::server::start(&config, false).await.unwrap();
        replicas.push(Cp {
            running,
            dir,
            pg: None,
        });
    }
    let (a, b) = (&replicas[0], &replicas[1]);
    let key = a.key("default", "connector").await;
    let mut watcher = b.connector(Some(&key), None).await;
    let mut stream = watcher
        .watch_snapshot(WatchSnapshotRequest {
            connector_id: String::new(),
            known_version: 0,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();

    let changed = Instant::now();
    let (status, _) = a
        .root(
            "POST",
            "/api/v1/resources",
            None,
            Some(r#"{"name":"made-on-a","protocol":"postgres","host":"h","port":5432}"#),
        )
        .await;
    assert_eq!(status, 201);
    let pushed = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            let snapshot = stream.message().await.unwrap().unwrap();
            if snapshot.resources.iter().any(|r| r.name == "made-on-a") {
                return snapshot;
            }
        }
    })
    .await
    .expect("replica B's watcher did not see replica A's change within a second");
    assert!(pushed.version > first.version);
    assert!(changed.elapsed() < Duration::from_secs(1));
    drop(pg);
}
