//! Recording test support: the connector's real recorder and shipper, the spool's files, HTTP
//! reads, asciinema's reading of a file, uploads through the connector API, and a control plane
//! on a chosen port.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use gate_config::{ControlConfig, load_str};
use gate_connector::metrics::Metrics;
use gate_connector::recording::ship::RecordingShipper;
use gate_connector::recording::{RecordingMeta, Recordings};
use gate_control::http::limits::HttpLimits;
use serde_json::Value;

use super::{Cp, ROOT_KEY, http};

pub fn meta(resource: &str, identity: &str) -> RecordingMeta {
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
pub fn record(
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

pub fn spool_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub async fn get(cp: &Cp, path: &str, key: &str) -> (u16, Value) {
    let (status, text) = http(cp.addr(), "GET", path, Some(key), None, None).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// curl, as a user would fetch the file: (content type, body).
pub fn curl_cast(cp: &Cp, id: &str, key: &str, out: &Path) -> String {
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

pub fn asciinema(path: &Path) -> Value {
    serde_json::from_str(&gate_testkit::asciinema_summary(path).unwrap()).unwrap()
}

pub fn shipper(
    recordings: &Recordings,
    client: gate_proto::client::ConnectorClient,
) -> (RecordingShipper, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    (
        RecordingShipper::new(recordings.clone(), client, Arc::clone(&metrics)).named("edge-7"),
        metrics,
    )
}

/// A control plane started on `port` over the database and recordings in `dir`.
pub async fn control_on(
    dir: &Path,
    port: u16,
    retention: Option<&str>,
) -> gate_control::server::Running {
    let mut yaml = super::config_yaml(dir, None, Some(ROOT_KEY))
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

pub fn shipper_for(
    dir: &Path,
    client: gate_proto::client::ConnectorClient,
) -> (RecordingShipper, Arc<Metrics>) {
    shipper(&Recordings::new(dir).unwrap(), client)
}

/// Upload a small asciicast recording into `org` through the connector API (a fresh connector
/// key); returns the stored recording.
pub async fn upload_recording(
    cp: &Cp,
    org: &str,
    resource: &str,
    identity: &str,
    started_ms: i64,
) -> gate_proto::v1::Recording {
    let cast = b"{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":0,\"env\":{}}\n[0.100000,\"o\",\"$ \"]\n";
    upload_cast(cp, org, resource, identity, started_ms, cast).await
}

/// Upload `cast` (an asciicast file) as an SSH recording into `org`, in two chunks, through the
/// connector API with a fresh connector key; returns the stored recording.
pub async fn upload_cast(
    cp: &Cp,
    org: &str,
    resource: &str,
    identity: &str,
    started_ms: i64,
    cast: &[u8],
) -> gate_proto::v1::Recording {
    use gate_proto::v1::{Recording, UploadRecordingRequest};
    let key = cp.key(org, "connector").await;
    let mut client = cp.connector(Some(&key), None).await;
    let meta = Recording {
        id: gate_proto::wire::new_id_at(u64::try_from(started_ms).unwrap()),
        session_id: "s-1".into(),
        identity: identity.into(),
        resource: resource.into(),
        protocol: "ssh".into(),
        started_at: gate_proto::wire::rfc3339(started_ms),
        ended_at: gate_proto::wire::rfc3339(started_ms + 1500),
        format: "asciicast-v2".into(),
        connector: "edge-1".into(),
        width: 80,
        height: 24,
        exit_status: Some(0),
        ..Recording::default()
    };
    let messages = vec![
        UploadRecordingRequest {
            recording: Some(meta),
            data: cast[..10].to_vec(),
        },
        UploadRecordingRequest {
            recording: None,
            data: cast[10..].to_vec(),
        },
    ];
    let reply = client
        .upload_recording(tokio_stream::iter(messages))
        .await
        .unwrap()
        .into_inner();
    assert!(!reply.duplicate);
    reply.recording.unwrap()
}
