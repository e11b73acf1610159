//! An identity created in the control plane with `ssh_keys` logs in over SSH through a connector
//! that has no static identity for it: the key travels in the snapshot, and removing it from
//! the identity locks the key out again. Real gate-control, gate-connector, sshd and ssh.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use gate_testkit::{Sshd, SshdOptions};
use serde_json::json;
use support::{ALLOW_ALL, World};

fn ssh(key: &Path, port: u16, user: &str, command: &str) -> Output {
    Command::new("ssh")
        .args(["-F", "/dev/null", "-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes"])
        .args(["-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR", "-i"])
        .arg(key)
        .args(["-p", &port.to_string()])
        .arg(format!("{user}@127.0.0.1"))
        .arg(command)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Run `ssh` until `done` holds for its output (the connector syncs every second).
fn ssh_until(key: &Path, port: u16, what: &str, done: impl Fn(&Output) -> bool) -> Output {
    let started = Instant::now();
    loop {
        let out = ssh(key, port, "carol", "echo via-control-plane");
        if done(&out) {
            return out;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_control_plane_identitys_ssh_key_logs_in_until_it_is_removed() {
    let sshd = Sshd::start(SshdOptions::default()).unwrap();
    let mut world = World::new();
    let dir = world.dir.path().to_owned();
    let known = dir.join("known_hosts");
    std::fs::write(&known, sshd.known_hosts_line() + "\n").unwrap();
    let carol = gate_testkit::ssh_keygen(&dir.join("carol")).unwrap();
    gate_testkit::ssh_keygen(&dir.join("stranger")).unwrap();
    world.start_connector_with(
        ALLOW_ALL,
        &format!(
            "  - {{name: web1, protocol: ssh, host: 127.0.0.1, port: {up}, username: root, private_key_file: '{key}', known_hosts_file: '{known}'}}\nssh: {{host_key_file: '{host}'}}\n",
            up = sshd.port(),
            key = sshd.client_key().display(),
            known = known.display(),
            host = dir.join("gate_host_ed25519").display(),
        ),
    );
    let port = world.connector_port;

    // A malformed key is refused by the API, naming the line.
    let (code, body) = world.api(
        "POST",
        "/api/v1/identities",
        Some(json!({"name": "carol", "ssh_keys": ["ssh-ed25519 not*base64"]})),
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["field"], "identity.ssh_keys[0]", "{body}");

    let (code, identity) = world.api(
        "POST",
        "/api/v1/identities",
        Some(json!({"name": "carol", "ssh_keys": [carol]})),
    );
    assert_eq!(code, 201, "{identity}");
    assert_eq!(identity["ssh_keys"][0], carol.as_str(), "{identity}");
    let out = ssh_until(
        &dir.join("carol"),
        port,
        "carol's key in the snapshot",
        |o| o.status.success(),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "via-control-plane\n");

    // Another key for the same name is not carol's (the connector also offers token logins).
    let out = ssh(&dir.join("stranger"), port, "carol", "true");
    assert_eq!(out.status.code(), Some(255));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("Permission denied (publickey,keyboard-interactive)")
    );

    // Removing the key from the identity locks it out once the connector syncs.
    let id = identity["id"].as_str().unwrap();
    let (code, body) = world.api(
        "PUT",
        &format!("/api/v1/identities/{id}"),
        Some(json!({"name": "carol", "ssh_keys": []})),
    );
    assert_eq!(code, 200, "{body}");
    let out = ssh_until(&dir.join("carol"), port, "the key removed", |o| {
        !o.status.success()
    });
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("Permission denied (publickey,keyboard-interactive)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
