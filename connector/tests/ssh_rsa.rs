//! RSA keys on every leg (rsa-sha2-256/512): a client logging in with a registered RSA key,
//! Gate presenting an RSA host key the client pins, and an upstream sshd that offers only an RSA
//! host key and accepts Gate's RSA `private_key_file`. Real OpenSSH on both sides.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;
mod ssh_support;

use std::path::Path;
use std::process::{Command, Stdio};

use gate_testkit::{Sshd, SshdOptions, free_port};
use ssh_support::text;

/// An RSA key pair without passphrase at `path`; the public key line.
fn rsa_keygen(path: &Path) -> String {
    let status = Command::new("ssh-keygen")
        .args([
            "-q", "-t", "rsa", "-b", "3072", "-N", "", "-C", "rsa-test", "-f",
        ])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn rsa_keys_log_in_clients_serve_as_gates_host_key_and_reach_the_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let upstream_host = rsa_keygen(&path("upstream_host_rsa"));
    let upstream_login = rsa_keygen(&path("upstream_login_rsa"));
    let gate_host = rsa_keygen(&path("gate_host_rsa"));
    let alice = rsa_keygen(&path("alice"));
    let sshd = Sshd::start(SshdOptions {
        authorized_keys: vec![upstream_login],
        config: vec![
            format!("HostKey {}", path("upstream_host_rsa").display()),
            "HostKeyAlgorithms rsa-sha2-512,rsa-sha2-256".into(),
        ],
    })
    .unwrap();
    std::fs::write(
        path("upstream_known_hosts"),
        format!("[127.0.0.1]:{} {upstream_host}\n", sshd.port()),
    )
    .unwrap();
    let policy = path("allow.rego");
    std::fs::write(
        &policy,
        "package gate.rsa\n\ndefault session := {\"action\": \"allow\"}\n\ndefault pre_request := {\"action\": \"allow\"}\n",
    )
    .unwrap();
    let port = free_port().unwrap();
    let gate = common::start_yaml(
        &format!(
            "default_action: block\n\
             ssh: {{host_key_file: '{host}'}}\n\
             identities:\n  - {{name: alice, ssh_keys: ['{alice}']}}\n\
             resources:\n  - {{name: web1, protocol: ssh, host: 127.0.0.1, port: {up}, username: root, \
             private_key_file: '{login}', known_hosts_file: '{known}', listen_port: {port}}}\n\
             policies:\n  - {{path: '{p}', stage: session}}\n  - {{path: '{p}', stage: pre_request}}\n",
            host = path("gate_host_rsa").display(),
            up = sshd.port(),
            login = path("upstream_login_rsa").display(),
            known = path("upstream_known_hosts").display(),
            p = policy.display(),
        ),
        None,
    );
    // The client pins Gate's RSA host key and offers only RSA signatures.
    std::fs::write(
        path("gate_known_hosts"),
        format!("[127.0.0.1]:{port} {gate_host}\n"),
    )
    .unwrap();
    let known = format!("UserKnownHostsFile={}", path("gate_known_hosts").display());
    let args: Vec<String> = ssh_support::client_args(&path("alice"), port)
        .into_iter()
        .map(|a| match a.as_str() {
            "StrictHostKeyChecking=no" => "StrictHostKeyChecking=yes".to_owned(),
            "UserKnownHostsFile=/dev/null" => known.clone(),
            _ => a,
        })
        .collect();
    let out = Command::new("ssh")
        .args(args)
        .args(["-o", "HostKeyAlgorithms=rsa-sha2-512,rsa-sha2-256"])
        .args(["-o", "PubkeyAcceptedAlgorithms=rsa-sha2-512,rsa-sha2-256"])
        .args(["alice@127.0.0.1", "echo rsa-ok"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} / sshd: {}",
        text(&out.stderr),
        sshd.log_tail()
    );
    assert_eq!(text(&out.stdout), "rsa-ok\n");
    // Upstream, sshd saw Gate log in with the RSA key.
    let log = sshd.log_tail();
    assert!(log.contains("Accepted publickey for root"), "{log}");
    assert!(log.contains("RSA SHA256:"), "{log}");
    let audit = gate.audit_when(|a| a.contains("exec: echo rsa-ok"));
    assert!(audit.contains("\"identity\":\"alice\""), "{audit}");
}
