//! SSH sessions recorded through Gate: a real OpenSSH client's PTY shell and an exec, on a
//! resource with `record: true`, land in `recording.dir` as asciicast v2 that asciinema's own
//! parser reads back (output, typed input with `record_input`, exit status in the metadata).
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;
mod ssh_support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use ssh_support::*;

/// The finished recordings in `dir`: (cast file, metadata), oldest first.
fn finished(dir: &Path, want: usize) -> Vec<(PathBuf, Value)> {
    for _ in 0..100 {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|x| x == "json") {
                let meta: Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                if meta["finished"] == true {
                    out.push((path.with_extension("cast"), meta));
                }
            }
        }
        if out.len() >= want {
            out.sort_by(|a, b| a.0.cmp(&b.0));
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("fewer than {want} finished recordings in {}", dir.display());
}

fn summary(path: &Path) -> Value {
    serde_json::from_str(&gate_testkit::asciinema_summary(path).unwrap()).unwrap()
}

#[test]
fn a_pty_shell_and_an_exec_are_recorded_as_playable_asciicast() {
    let recordings = tempfile::tempdir().unwrap();
    let stack = stack_full(
        ", record: true, record_input: true",
        "",
        &format!("recording: {{dir: '{}'}}\n", recordings.path().display()),
    );

    let mut shell = Command::new("ssh")
        .args(client_args(&stack.key("alice"), stack.port))
        .arg("-tt")
        .arg("alice@127.0.0.1")
        .env("TERM", "xterm-256color")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    shell
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"echo recorded=$((6*7)) caf\xc3\xa9; exit 3\n")
        .unwrap();
    let out = shell.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    let exec = Command::new("ssh")
        .args(client_args(&stack.key("alice"), stack.port))
        .arg("alice@127.0.0.1")
        .arg("echo exec-output-$((2+2))")
        .output()
        .unwrap();
    assert_eq!(text(&exec.stdout), "exec-output-4\n");

    let recorded = finished(recordings.path(), 2);
    let (shell_cast, shell_meta) = recorded
        .iter()
        .find(|(_, m)| m["command"].is_null())
        .unwrap();
    assert_eq!(shell_meta["protocol"], "ssh");
    assert_eq!(shell_meta["identity"], "alice");
    assert_eq!(shell_meta["resource"], "web1");
    assert_eq!(shell_meta["format"], "asciicast-v2");
    assert_eq!(shell_meta["exit_status"], 3, "{shell_meta}");
    let cast = summary(shell_cast);
    assert_eq!(cast["version"], 2);
    assert_eq!(cast["env"]["TERM"], "xterm-256color", "{cast}");
    let output = cast["output"].as_str().unwrap();
    assert!(output.contains("recorded=42 café"), "{cast}");
    assert!(
        cast["input"].as_str().unwrap().contains("echo recorded="),
        "record_input keeps what was typed: {cast}"
    );
    let played = gate_testkit::asciinema_cat(shell_cast).unwrap();
    assert!(played.contains("recorded=42 café"), "{played}");

    let (exec_cast, exec_meta) = recorded
        .iter()
        .find(|(_, m)| m["command"] == "echo exec-output-$((2+2))")
        .unwrap();
    assert_eq!(exec_meta["exit_status"], 0, "{exec_meta}");
    let cast = summary(exec_cast);
    assert_eq!(cast["command"], "echo exec-output-$((2+2))", "{cast}");
    assert!(
        cast["output"].as_str().unwrap().contains("exec-output-4"),
        "{cast}"
    );
}

#[test]
fn without_record_nothing_is_written() {
    let recordings = tempfile::tempdir().unwrap();
    let stack = stack_full(
        "",
        "",
        &format!("recording: {{dir: '{}'}}\n", recordings.path().display()),
    );
    let exec = Command::new("ssh")
        .args(client_args(&stack.key("alice"), stack.port))
        .arg("alice@127.0.0.1")
        .arg("echo quiet")
        .output()
        .unwrap();
    assert_eq!(text(&exec.stdout), "quiet\n");
    std::thread::sleep(Duration::from_millis(300));
    let files: Vec<_> = std::fs::read_dir(recordings.path()).unwrap().collect();
    assert!(files.is_empty(), "{files:?}");
}
