//! Recording rules on a running control plane: retention removes recordings that ended long
//! ago, uploads are validated field by field, a refused recording is set aside by the connector,
//! and a control plane without `recording.dir` refuses uploads while the connector keeps them.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::recordings::*;
use common::{Cp, Db, ROOT_KEY, start_cp};
use gate_config::{ControlConfig, load_str};
use gate_connector::recording::Recordings;
use gate_control::http::limits::HttpLimits;

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
