//! Recordings end to end: the connector's real `Recorder` writes into its spool, its shipper
//! uploads to a running control plane (real listener, gRPC stream), and the recording is listed,
//! read and replayed (asciinema) over HTTP and gRPC; the spool empties only after the control plane
//! has it, waits while the control plane is down, and ships once it is back; deletion is for
//! admins; retention removes old recordings; filters and pages work.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{Cp, Db, ROOT_KEY, http, start_cp, upload_recording};
use gate_config::{ControlConfig, load_str};
use gate_connector::metrics::Metrics;
use gate_connector::recording::ship::RecordingShipper;
use gate_connector::recording::{RecordingMeta, Recordings};
use gate_control::http::limits::HttpLimits;
use gate_proto::v1::{DeleteRecordingRequest, GetRecordingRequest, ListRecordingsRequest};
use serde_json::Value;

fn meta(resource: &str, identity: &str) -> RecordingMeta {
    RecordingMeta {
        session_id: format!("sess-{identity}"),
        resource: resource.into(),
        identity: identity.into(),
        protocol: "ssh",
        width: 100,
        height: 30,
        command: None,
        term: Some("xterm".into()),
        env: BTreeMap::new(),
    }
}

/// Record one short shell session; returns (id, the file's bytes).
fn record(
    recordings: &Recordings,
    resource: &str,
    identity: &str,
    text: &str,
) -> (String, Vec<u8>) {
    let mut recorder = recordings.start(meta(resource, identity)).unwrap().unwrap();
    let id = recorder.id().to_owned();
    let bytes = text.as_bytes();
    // Split inside the last character when it is multi-byte.
    let cut = bytes.len().saturating_sub(1);
    recorder.output(&bytes[..cut]);
    recorder.output(&bytes[cut..]);
    recorder.resize(120, 40);
    recorder.finish(Some(3));
    let file = recordings.dir().unwrap().join(format!("{id}.cast"));
    (id, std::fs::read(file).unwrap())
}

fn spool_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn get(cp: &Cp, path: &str, key: &str) -> (u16, Value) {
    let (status, text) = http(cp.addr(), "GET", path, Some(key), None, None).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// curl, as a user would fetch the file: (content type, body).
fn curl_cast(cp: &Cp, id: &str, key: &str, out: &Path) -> String {
    let url = format!("http://{}/api/v1/recordings/{id}/cast", cp.addr());
    let output = std::process::Command::new("curl")
        .args(["-sS", "-f", "-o"])
        .arg(out)
        .args(["-w", "%{content_type}", "-H"])
        .arg(format!("Authorization: Bearer {key}"))
        .arg(url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn asciinema(path: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/asciinema_check.py");
    let out = std::process::Command::new(gate_testkit::venv_python().unwrap())
        .arg(script)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn shipper(
    recordings: &Recordings,
    client: gate_proto::client::ConnectorClient,
) -> (RecordingShipper, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    (
        RecordingShipper::new(recordings.clone(), client, Arc::clone(&metrics)).named("edge-7"),
        metrics,
    )
}

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
    let (second, _) = record(&recordings, "bastion-db1", "bob", "$ exit\r\n");
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

/// A control plane started on `port` over the database and recordings in `dir`.
async fn control_on(
    dir: &Path,
    port: u16,
    retention: Option<&str>,
) -> gate_control::server::Running {
    let mut yaml = common::config_yaml(dir, None, Some(ROOT_KEY))
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    if let Some(retention) = retention {
        yaml = yaml.replace(
            "recording:\n",
            &format!("recording:\n  retention: {retention}\n"),
        );
    }
    let config: ControlConfig = load_str("control.yaml", &yaml, &|_| None).unwrap();
    gate_control::server::start_with(&config, false, HttpLimits::default())
        .await
        .unwrap()
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

fn shipper_for(
    dir: &Path,
    client: gate_proto::client::ConnectorClient,
) -> (RecordingShipper, Arc<Metrics>) {
    shipper(&Recordings::new(dir).unwrap(), client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_recordings_that_ended_long_ago() {
    let dir = tempfile::tempdir().unwrap();
    let port = gate_testkit::free_port().unwrap();
    let running = control_on(dir.path(), port, Some("5s")).await;
    let cp = Cp {
        running,
        dir,
        pg: None,
    };
    let now = gate_proto::wire::now_ms();
    let old = upload_recording(&cp, "default", "bastion", "alice", now - 3_600_000).await;
    let recent = upload_recording(&cp, "default", "bastion", "bob", now).await;
    let old_file = cp
        .dir
        .path()
        .join("recordings/default")
        .join(format!("{}.cast", old.id));
    assert!(old_file.exists());
    // The sweep runs every tenth of the retention (at least each second).
    let start = std::time::Instant::now();
    loop {
        let (_, list) = get(&cp, "/api/v1/recordings", ROOT_KEY).await;
        let ids: Vec<String> = list["recordings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        if ids == [recent.id.clone()] {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "old recording still listed: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!old_file.exists(), "its file is removed too");
    let (status, _) = get(&cp, &format!("/api/v1/recordings/{}", old.id), ROOT_KEY).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_validated_and_refused_without_storage() {
    use gate_proto::v1::{Recording, UploadRecordingRequest};
    let cp = start_cp(Db::Sqlite).await;
    let key = cp.key("default", "connector").await;
    let mut client = cp.connector(Some(&key), None).await;
    let good = upload_recording(
        &cp,
        "default",
        "bastion",
        "alice",
        gate_proto::wire::now_ms(),
    )
    .await;
    for (recording, field) in [
        (
            Recording {
                id: "not-a-uuid".into(),
                ..good.clone()
            },
            "recording.id",
        ),
        (
            Recording {
                id: gate_proto::wire::new_id(),
                protocol: "telnet".into(),
                ..good.clone()
            },
            "recording.protocol",
        ),
        (
            Recording {
                id: gate_proto::wire::new_id(),
                ended_at: "2000-01-01T00:00:00Z".into(),
                ..good.clone()
            },
            "recording.ended_at",
        ),
        (
            Recording {
                id: gate_proto::wire::new_id(),
                format: "mp4".into(),
                ..good.clone()
            },
            "recording.format",
        ),
    ] {
        let message = UploadRecordingRequest {
            recording: Some(recording),
            data: b"{}".to_vec(),
        };
        let status = client
            .upload_recording(tokio_stream::iter(vec![message]))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{field}: {status:?}"
        );
        assert!(
            status.message().starts_with(field),
            "{field}: {}",
            status.message()
        );
    }
    let no_meta = UploadRecordingRequest {
        recording: None,
        data: b"{}".to_vec(),
    };
    let status = client
        .upload_recording(tokio_stream::iter(vec![no_meta]))
        .await
        .unwrap_err();
    assert!(status.message().starts_with("recording:"), "{status:?}");
    // Readers cannot upload.
    let readonly = cp.key("default", "readonly").await;
    let mut reader = cp.connector(Some(&readonly), None).await;
    let message = UploadRecordingRequest {
        recording: Some(Recording {
            id: gate_proto::wire::new_id(),
            ..good.clone()
        }),
        data: vec![],
    };
    let status = reader
        .upload_recording(tokio_stream::iter(vec![message]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    // No partial files are left behind.
    let stored = spool_files(&cp.dir.path().join("recordings/default"));
    assert_eq!(stored, [format!("{}.cast", good.id)]);

    // A recording the control plane refuses for what it is is set aside; the next one ships.
    let spool = tempfile::tempdir().unwrap();
    let recordings = Recordings::new(spool.path()).unwrap();
    let (refused, _) = record(&recordings, &"r".repeat(300), "alice", "too long a name");
    let (fine, _) = record(&recordings, "bastion", "alice", "ok");
    let (mut sorter, metrics) = shipper(&recordings, client.clone());
    assert_eq!(sorter.ship_all().await.unwrap(), 1);
    assert_eq!(
        spool_files(spool.path()),
        [
            format!("{refused}.cast.rejected"),
            format!("{refused}.json.rejected")
        ]
    );
    assert!(
        metrics
            .render()
            .contains("gate_recordings_ship_failures_total 1")
    );
    let (status, _) = get(&cp, &format!("/api/v1/recordings/{fine}"), ROOT_KEY).await;
    assert_eq!(status, 200);

    // A control plane without recording.dir refuses uploads, and the connector keeps its files.
    let dir = tempfile::tempdir().unwrap();
    let yaml =
        common::config_yaml(dir.path(), None, Some(ROOT_KEY)).replace("recording:\n  dir: ", "# ");
    let config: ControlConfig = load_str("control.yaml", &yaml, &|_| None).unwrap();
    assert!(config.recording.is_none());
    let bare = gate_control::server::start_with(&config, false, HttpLimits::default())
        .await
        .unwrap();
    let bare = Cp {
        running: bare,
        dir,
        pg: None,
    };
    let key = bare.key("default", "connector").await;
    let spool = tempfile::tempdir().unwrap();
    let recordings = Recordings::new(spool.path()).unwrap();
    record(&recordings, "bastion", "alice", "hi");
    let (mut shipper, _) = shipper(&recordings, bare.connector(Some(&key), None).await);
    let error = shipper.ship_all().await.unwrap_err();
    assert!(error.contains("recording.dir"), "{error}");
    assert_eq!(spool_files(spool.path()).len(), 2);
}
