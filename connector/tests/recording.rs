//! The real `Recorder` writing into a temp `recording.dir`, read back by asciinema's own parser and
//! `asciinema cat` (PyPI asciinema 2.x in the test venv): output split mid-UTF-8, input, resizes,
//! a file read while the session still runs, and recordings a stopped connector left open.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use gate_connector::recording::spool::{self, Sidecar};
use gate_connector::recording::{RecordingMeta, Recordings};
use serde_json::Value;

/// asciinema's reading of `path` (fails the test when asciinema cannot read it).
fn asciinema(path: &Path) -> Value {
    serde_json::from_str(&gate_testkit::asciinema_summary(path).unwrap()).unwrap()
}

fn asciinema_cat(path: &Path) -> String {
    gate_testkit::asciinema_cat(path).unwrap()
}

fn meta(command: Option<&str>) -> RecordingMeta {
    RecordingMeta {
        session_id: "sess-1".into(),
        resource: "bastion-web1".into(),
        identity: "alice".into(),
        protocol: "ssh",
        width: 80,
        height: 24,
        command: command.map(str::to_owned),
        term: Some("xterm-256color".into()),
        env: BTreeMap::from([("LANG".to_owned(), "C.UTF-8".to_owned())]),
    }
}

fn only_sidecar(dir: &Path) -> Sidecar {
    let (found, bad) = spool::sidecars(dir);
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(found.len(), 1, "{found:?}");
    found.into_iter().next().unwrap()
}

#[test]
fn a_recorded_shell_is_playable_by_asciinema() {
    let dir = tempfile::tempdir().unwrap();
    let recordings = Recordings::new(dir.path().join("rec")).unwrap();
    let mut recorder = recordings.start(meta(None)).unwrap().unwrap();
    let id = recorder.id().to_owned();
    let cast = dir.path().join("rec").join(format!("{id}.cast"));

    // A prompt, then "héllo 🎉" split inside both multi-byte characters.
    recorder.output(b"$ ");
    let text = "héllo 🎉\r\n".as_bytes();
    recorder.output(&text[..2]);
    recorder.output(&text[2..8]);
    recorder.output(&text[8..]);
    recorder.input(b"ls\r");
    // Mid-session the file is already playable: a crash leaves what was written so far.
    let so_far = asciinema(&cast);
    assert_eq!(so_far["output"], "$ héllo 🎉\r\n");
    std::thread::sleep(std::time::Duration::from_millis(20));
    recorder.resize(120, 40);
    recorder.output(b"\x1b[1mbold\x1b[0m \xff\r\n");
    recorder.finish(Some(0));

    let seen = asciinema(&cast);
    assert_eq!(seen["version"], 2);
    assert_eq!(
        (seen["width"].as_u64(), seen["height"].as_u64()),
        (Some(80), Some(24))
    );
    assert_eq!(seen["env"]["TERM"], "xterm-256color");
    assert_eq!(seen["env"]["LANG"], "C.UTF-8");
    assert_eq!(seen["title"], "bastion-web1");
    assert!(seen["command"].is_null());
    let expected_output = "$ héllo 🎉\r\n\x1b[1mbold\x1b[0m \u{fffd}\r\n";
    assert_eq!(seen["output"], expected_output);
    assert_eq!(seen["input"], "ls\r");
    assert_eq!(seen["resizes"], serde_json::json!(["120x40"]));
    assert!(seen["duration"].as_f64().unwrap() >= 0.02, "{seen}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((seen["timestamp"].as_i64().unwrap() - now).abs() < 60);
    assert_eq!(asciinema_cat(&cast), expected_output);

    let sidecar = only_sidecar(&dir.path().join("rec"));
    assert_eq!(sidecar.id, id);
    assert!(sidecar.finished && !sidecar.interrupted);
    assert_eq!(sidecar.exit_status, Some(0));
    assert_eq!(
        (
            sidecar.resource.as_str(),
            sidecar.identity.as_str(),
            sidecar.protocol.as_str()
        ),
        ("bastion-web1", "alice", "ssh")
    );
    assert!(sidecar.ended_at.is_some());
}

#[test]
fn an_exec_keeps_its_command_and_a_dropped_recorder_is_finished() {
    let dir = tempfile::tempdir().unwrap();
    let recordings = Recordings::new(dir.path()).unwrap();
    let mut recorder = recordings.start(meta(Some("uptime"))).unwrap().unwrap();
    let cast = dir.path().join(format!("{}.cast", recorder.id()));
    // Ends inside a 3-byte sequence: replaced when the recording ends, never lost silently.
    recorder.output(b" 10:00 up 3 days \xe2\x82");
    drop(recorder);
    let seen = asciinema(&cast);
    assert_eq!(seen["command"], "uptime");
    assert_eq!(seen["output"], " 10:00 up 3 days \u{fffd}");
    let sidecar = only_sidecar(dir.path());
    assert!(sidecar.finished);
    assert_eq!(sidecar.exit_status, None);
    assert_eq!(sidecar.command.as_deref(), Some("uptime"));
}

#[test]
fn recordings_left_open_by_a_stopped_connector_are_closed_as_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let recordings = Recordings::new(dir.path()).unwrap();
    let mut recorder = recordings.start(meta(None)).unwrap().unwrap();
    recorder.output(b"top - 10:00:00\r\n");
    let cast = dir.path().join(format!("{}.cast", recorder.id()));
    // The process dies: nothing runs Drop, the sidecar still says unfinished.
    std::mem::forget(recorder);
    assert!(!only_sidecar(dir.path()).finished);
    // The next start closes it; what was written plays.
    let again = Recordings::new(dir.path()).unwrap();
    assert_eq!(again.recover(), 1);
    assert_eq!(again.recover(), 0, "closing is done once");
    let sidecar = only_sidecar(dir.path());
    assert!(sidecar.finished && sidecar.interrupted);
    assert!(sidecar.ended_at.is_some());
    assert_eq!(asciinema(&cast)["output"], "top - 10:00:00\r\n");
}

#[test]
fn recorders_move_to_other_threads() {
    fn send<T: Send + 'static>() {}
    send::<gate_connector::recording::Recorder>();
    send::<Recordings>();
}

#[test]
fn disabled_recordings_record_nothing_and_a_bad_dir_is_named() {
    assert!(Recordings::disabled().start(meta(None)).unwrap().is_none());
    assert!(Recordings::default().dir().is_none());
    let file = tempfile::NamedTempFile::new().unwrap();
    let err = Recordings::new(file.path().join("sub")).unwrap_err();
    assert!(err.to_string().starts_with("recording.dir "), "{err}");
}
