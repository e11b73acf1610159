//! Shared pieces of the SSH suites: a real sshd upstream, Gate in front of it on a dedicated
//! port with two identities (alice in `sftp`, bob not), their keys, and OpenSSH client runs.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)] // in tests a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use gate_testkit::{Sshd, SshdOptions, free_port};

use crate::common;

pub(crate) const POLICY: &str = r#"package gate.ssh_test

import rego.v1

default session := {"action": "allow"}

default pre_request := {"action": "allow"}

pre_request := {"action": "block", "reason": "rm is not allowed here"} if {
	input.ssh.request == "exec"
	startswith(input.ssh.command, "rm ")
}

pre_request := {"action": "block", "reason": "sftp needs the sftp group"} if {
	input.ssh.request == "subsystem"
	input.ssh.subsystem == "sftp"
	not "sftp" in input.user.groups
}

pre_request := {"action": "block", "reason": "port forwarding is off"} if {
	startswith(input.ssh.request, "forward_")
}

pre_request := {"action": "block", "reason": "agent forwarding is off"} if {
	input.ssh.request == "agent"
}
"#;

/// sshd upstream, Gate with two identities in front of it on a dedicated port.
pub(crate) struct Stack {
    pub(crate) sshd: Sshd,
    pub(crate) gate: common::GateOnly,
    pub(crate) port: u16,
    pub(crate) dir: tempfile::TempDir,
}

impl Stack {
    pub(crate) fn key(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

pub(crate) fn keygen(path: &Path) -> String {
    gate_testkit::ssh_keygen(path).unwrap()
}

/// `resource_extra` is appended to the resource, `ssh_extra` to the top-level `ssh:`; a CA key
/// pair `ca` is in the stack's directory.
pub(crate) fn stack_with(resource_extra: &str, ssh_extra: &str) -> Stack {
    stack_full(resource_extra, ssh_extra, "")
}

/// [`stack_with`], with `top_extra` added to the configuration (an `auth:` block).
pub(crate) fn stack_full(resource_extra: &str, ssh_extra: &str, top_extra: &str) -> Stack {
    stack_policy(POLICY, resource_extra, ssh_extra, top_extra)
}

/// [`stack_full`] deciding by `policy` (package `gate.ssh_test`) instead of [`POLICY`].
pub(crate) fn stack_policy(
    policy_text: &str,
    resource_extra: &str,
    ssh_extra: &str,
    top_extra: &str,
) -> Stack {
    let sshd = Sshd::start(SshdOptions {
        config: vec!["AcceptEnv GATE_*".into()],
        ..Default::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let alice = keygen(&dir.path().join("alice"));
    let bob = keygen(&dir.path().join("bob"));
    keygen(&dir.path().join("stranger"));
    let known = dir.path().join("known_hosts");
    std::fs::write(&known, sshd.known_hosts_line() + "\n").unwrap();
    let policy = dir.path().join("ssh.rego");
    std::fs::write(&policy, policy_text).unwrap();
    let port = free_port().unwrap();
    let yaml = format!(
        "default_action: block\n{top_extra}\
         ssh: {{host_key_file: '{host_key}'{ssh_extra}}}\n\
         identities:\n  - {{name: alice, ssh_keys: ['{alice}'], groups: [sre, sftp]}}\n  - {{name: bob, ssh_keys: ['{bob}'], groups: [sre]}}\n\
         resources:\n  - {{name: web1, protocol: ssh, host: 127.0.0.1, port: {up}, username: root, \
         private_key_file: '{client_key}', known_hosts_file: '{known}', listen_port: {port}{resource_extra}}}\n\
         policies:\n  - {{path: '{p}', stage: session}}\n  - {{path: '{p}', stage: pre_request}}\n",
        host_key = dir.path().join("gate_host_ed25519").display(),
        up = sshd.port(),
        client_key = sshd.client_key().display(),
        known = known.display(),
        p = policy.display(),
    );
    let gate = common::start_yaml(&yaml, None);
    Stack {
        sshd,
        gate,
        port,
        dir,
    }
}

pub(crate) fn stack() -> Stack {
    stack_with("", "")
}

pub(crate) fn client_args(key: &Path, port: u16) -> Vec<String> {
    [
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "LogLevel=ERROR",
        "-i",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([key.display().to_string(), "-p".into(), port.to_string()])
    .collect()
}

/// [`client_args`] for `scp` and `sftp`, which take the port as `-P`.
pub(crate) fn copy_args(key: &Path, port: u16) -> Vec<String> {
    client_args(key, port)
        .into_iter()
        .map(|a| if a == "-p" { "-P".into() } else { a })
        .collect()
}

pub(crate) fn ssh(stack: &Stack, key: &str, user: &str, args: &[&str]) -> Output {
    Command::new("ssh")
        .args(client_args(&stack.key(key), stack.port))
        .arg(format!("{user}@127.0.0.1"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
