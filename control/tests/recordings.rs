//! Recordings end to end: the connector's real `Recorder` writes into its spool, its shipper
//! uploads to a running control plane (real listener, gRPC stream), and the recording is listed
//! with filters and pages, read and replayed (curl, asciinema) over HTTP and gRPC, and deleted by
//! admins only; the spool empties only after the control plane has it, waits while the control
//! plane is down, and ships once it is back.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::recordings::*;
use common::{Db, ROOT_KEY, http, start_cp};
use gate_connector::recording::Recordings;
use gate_proto::v1::{DeleteRecordingRequest, GetRecordingRequest, ListRecordingsRequest};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_recordings_are_listed_read_replayed_and_deleted_by_admins_sqlite() {
    shipped_recordings_are_listed_read_replayed_and_deleted_by_admins(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_recordings_are_listed_read_replayed_and_deleted_by_admins_postgres() {
    shipped_recordings_are_listed_read_replayed_and_deleted_by_admins(Db::Postgres).await;
}

async fn shipped_recordings_are_listed_read_replayed_and_deleted_by_admins(db: Db) {
    let cp = start_cp(db).await;
    let org = cp.org("acme").await;
    let connector_key = cp.key(&org, "connector").await;
    let readonly = cp.key(&org, "readonly").await;
    let editor = cp.key(&org, "editor").await;
    let admin = cp.key(&org, "admin").await;

    let spool = tempfile::tempdir().unwrap();
    let recordings = Recordings::new(spool.path()).unwrap();
    let (first, first_bytes) = record(
        &recordings,
        "bastion-web1",
        "alice",
        "$ uname\r\nLinux ünïcode 🎉",
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (second, second_bytes) = record(&recordings, "bastion-db1", "bob", "$ exit\r\n");
    assert_eq!(
        spool_files(spool.path()).len(),
        4,
        "a file and its metadata each"
    );

    let (mut shipper, metrics) =
        shipper(&recordings, cp.connector(Some(&connector_key), None).await);
    assert_eq!(shipper.ship_all().await.unwrap(), 2);
    assert!(
        spool_files(spool.path()).is_empty(),
        "shipped recordings leave the spool"
    );
    assert!(metrics.render().contains("gate_recordings_shipped_total 2"));
    let (_, scrape) = http(cp.addr(), "GET", "/metrics", None, None, None).await;
    assert!(
        scrape.contains("\ngate_control_recordings_stored_total 2\n"),
        "{scrape}"
    );
    let stored_bytes = (first_bytes.len() + second_bytes.len()).to_string();
    assert!(scrape.contains(&format!(
        "\ngate_control_recording_bytes_total {stored_bytes}\n"
    )));

    // HTTP: list (newest first), filters, pages.
    let (status, list) = get(&cp, "/api/v1/recordings", &readonly).await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.as_str(), first.as_str()]);
    for (query, expected) in [
        ("resource=bastion-web1", vec![first.as_str()]),
        ("identity=bob", vec![second.as_str()]),
        ("protocol=ssh&identity=alice", vec![first.as_str()]),
        ("protocol=mcp", vec![]),
        ("until=2000-01-01T00:00:00Z", vec![]),
        (
            "since=2000-01-01T00:00:00Z&resource=bastion-db1",
            vec![second.as_str()],
        ),
    ] {
        let (status, list) = get(&cp, &format!("/api/v1/recordings?{query}"), &readonly).await;
        assert_eq!(status, 200, "{query}: {list}");
        let got: Vec<&str> = list["recordings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(got, expected, "{query}");
    }
    let (_, page) = get(&cp, "/api/v1/recordings?limit=1", &readonly).await;
    assert_eq!(page["recordings"][0]["id"], second.as_str());
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = get(
        &cp,
        &format!("/api/v1/recordings?limit=1&cursor={cursor}"),
        &readonly,
    )
    .await;
    assert_eq!(rest["recordings"][0]["id"], first.as_str());
    assert_eq!(rest["next_cursor"], "");
    let (status, bad) = get(&cp, "/api/v1/recordings?since=yesterday", &readonly).await;
    assert_eq!(
        (status, bad["field"].as_str()),
        (400, Some("since")),
        "{bad}"
    );
    let (status, bad) = get(&cp, "/api/v1/recordings?protocol=telnet", &readonly).await;
    assert_eq!(
        (status, bad["field"].as_str()),
        (400, Some("protocol")),
        "{bad}"
    );

    // HTTP: metadata, then the file with curl, played by asciinema.
    let (status, one) = get(&cp, &format!("/api/v1/recordings/{first}"), &readonly).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["resource"], "bastion-web1");
    assert_eq!(one["identity"], "alice");
    assert_eq!(one["session_id"], "sess-alice");
    assert_eq!(one["format"], "asciicast-v2");
    assert_eq!(one["exit_status"], 3);
    assert_eq!(
        (one["width"].as_u64(), one["height"].as_u64()),
        (Some(100), Some(30))
    );
    assert_eq!(one["size_bytes"].as_u64(), Some(first_bytes.len() as u64));
    assert_eq!(one["org_id"], org.as_str());
    assert_eq!(one["connector"], "edge-7");
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("first.cast");
    assert_eq!(
        curl_cast(&cp, &first, &readonly, &file),
        "application/x-asciicast"
    );
    assert_eq!(std::fs::read(&file).unwrap(), first_bytes);
    let played = asciinema(&file);
    assert_eq!(played["output"], "$ uname\r\nLinux ünïcode 🎉");
    assert_eq!(played["resizes"], serde_json::json!(["120x40"]));

    // gRPC: the same service functions.
    let mut grpc = cp.admin(Some(&readonly), None).await;
    let listed = grpc
        .list_recordings(ListRecordingsRequest {
            identity: "alice".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.recordings.len(), 1);
    assert_eq!(listed.recordings[0].id, first);
    let got = grpc
        .get_recording(GetRecordingRequest { id: first.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.exit_status, Some(3));
    let mut stream = grpc
        .get_recording_data(GetRecordingRequest { id: first.clone() })
        .await
        .unwrap()
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        bytes.extend_from_slice(&chunk.data);
    }
    assert_eq!(bytes, first_bytes);

    // Deleting is for admins.
    for key in [&readonly, &editor] {
        let (status, reply) = http(
            cp.addr(),
            "DELETE",
            &format!("/api/v1/recordings/{first}"),
            Some(key),
            None,
            None,
        )
        .await;
        assert_eq!(status, 403, "{reply}");
    }
    let denied = grpc
        .delete_recording(DeleteRecordingRequest { id: first.clone() })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let stored = cp
        .dir
        .path()
        .join("recordings")
        .join(&org)
        .join(format!("{first}.cast"));
    assert!(stored.exists());
    let (status, reply) = http(
        cp.addr(),
        "DELETE",
        &format!("/api/v1/recordings/{first}"),
        Some(&admin),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert!(!stored.exists(), "the file goes with the row");
    let (status, _) = get(&cp, &format!("/api/v1/recordings/{first}"), &readonly).await;
    assert_eq!(status, 404);
    let (status, _) = get(&cp, &format!("/api/v1/recordings/{first}/cast"), &readonly).await;
    assert_eq!(status, 404);
    // Another organization sees none of it.
    let (_, other) = get(&cp, "/api/v1/recordings", ROOT_KEY).await;
    assert_eq!(other["recordings"], serde_json::json!([]), "{other}");
    // Deleting the organization removes its recordings' files.
    let org_files = cp.dir.path().join("recordings").join(&org);
    assert!(org_files.join(format!("{second}.cast")).exists());
    let (status, reply) = http(
        cp.addr(),
        "DELETE",
        &format!("/api/v1/organizations/{org}"),
        Some(ROOT_KEY),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert!(!org_files.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_wait_in_the_spool_while_the_control_plane_is_down() {
    let cp = start_cp(Db::Sqlite).await;
    let key = cp.key("default", "connector").await;
    let port = cp.addr().port();
    let dir: PathBuf = cp.dir.path().to_path_buf();
    let client = cp.connector(Some(&key), None).await;
    let common::Cp {
        running, dir: keep, ..
    } = cp;
    running.stop().await.unwrap();

    let spool = tempfile::tempdir().unwrap();
    let recordings = Recordings::new(spool.path()).unwrap();
    let (id, bytes) = record(
        &recordings,
        "bastion-web1",
        "alice",
        "$ whoami\r\nalice\r\n",
    );
    let (mut shipper, metrics) = shipper(&recordings, client);
    assert!(shipper.ship_all().await.is_err(), "nobody is listening");
    assert_eq!(
        spool_files(spool.path()).len(),
        2,
        "kept until the control plane has it"
    );
    assert!(
        metrics
            .render()
            .contains("gate_recordings_ship_failures_total 1"),
        "{}",
        metrics.render()
    );

    // The shipper keeps trying in the background; the control plane comes back on its port.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(shipper.run(stopped));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running = control_on(&dir, port, None).await;
    let start = std::time::Instant::now();
    while !spool_files(spool.path()).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not shipped after the control plane came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    task.await.unwrap();
    let stored = dir.join("recordings/default").join(format!("{id}.cast"));
    assert_eq!(std::fs::read(stored).unwrap(), bytes);
    assert!(metrics.render().contains("gate_recordings_shipped_total 1"));

    // A retried upload (its answer lost) is stored once.
    let again = Recordings::new(spool.path()).unwrap();
    let mut recorder = again.start(meta("bastion-web1", "alice")).unwrap().unwrap();
    recorder.output(b"x");
    recorder.finish(None);
    let leftover = spool_files(spool.path());
    let copy = tempfile::tempdir().unwrap();
    for name in &leftover {
        std::fs::copy(spool.path().join(name), copy.path().join(name)).unwrap();
    }
    let client = gate_proto::client::connect_connector(
        &running.url(),
        gate_proto::client::Credentials::new(Some(&key), None).unwrap(),
    )
    .await
    .unwrap();
    let (mut first, _) = shipper_for(spool.path(), client.clone());
    assert_eq!(first.ship_all().await.unwrap(), 1);
    let (mut retry, _) = shipper_for(copy.path(), client);
    assert_eq!(
        retry.ship_all().await.unwrap(),
        1,
        "a duplicate is acknowledged"
    );
    let (_, text) = http(
        running.addr,
        "GET",
        "/api/v1/recordings",
        Some(ROOT_KEY),
        None,
        None,
    )
    .await;
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["recordings"].as_array().unwrap().len(), 2, "{list}");
    running.stop().await.unwrap();
    drop(keep);
}
