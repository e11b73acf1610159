//! Remote port forwarding (`ssh -R`) and agent forwarding (`ssh -A`) through Gate with the real
//! OpenSSH client, sshd upstream and ssh-agent: relayed when the policy allows them, refused
//! (and audited) when it does not.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;
mod ssh_support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gate_testkit::free_port;
use ssh_support::*;

/// Forwarding for alice only.
const POLICY: &str = r#"package gate.ssh_test

import rego.v1

default session := {"action": "allow"}

default pre_request := {"action": "allow"}

pre_request := {"action": "block", "reason": "forwarding is for alice only"} if {
	input.ssh.request in {"forward_remote", "agent"}
	input.user.name != "alice"
}
"#;

fn forwarding_stack() -> Stack {
    stack_policy(POLICY, "", "", "")
}

/// A child killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP echo server on the client's side; its port.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// `ssh -N` with `forward` (`-R spec`), failing when the forward is refused; `log_level`
/// replaces the quiet default.
fn ssh_forwarding(stack: &Stack, key: &str, user: &str, spec: &str, log_level: &str) -> Child {
    let args: Vec<String> = client_args(&stack.key(key), stack.port)
        .into_iter()
        .map(|a| {
            if a == "LogLevel=ERROR" {
                format!("LogLevel={log_level}")
            } else {
                a
            }
        })
        .collect();
    Command::new("ssh")
        .args(args)
        .args(["-N", "-o", "ExitOnForwardFailure=yes", "-R", spec])
        .arg(format!("{user}@127.0.0.1"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Connect to the upstream side's listener on `port` (sshd's, on this machine) until it
/// answers, send a line and read it back through the forward.
fn echo_through(stack: &Stack, port: u16, line: &str) -> String {
    let started = Instant::now();
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(e) => {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "the remote forward's listener on {port} never opened: {e}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = vec![0u8; line.len()];
    let echoed = stream
        .write_all(line.as_bytes())
        .and_then(|()| stream.read_exact(&mut got));
    if let Err(e) = echoed {
        panic!(
            "no echo through {port}: {e}; sshd: {}",
            stack.sshd.log_tail()
        );
    }
    text(&got)
}

#[test]
fn an_allowed_remote_forward_reaches_the_client_side_and_a_refused_one_fails() {
    let stack = forwarding_stack();
    let echo = echo_server();

    // A fixed port: sshd listens on it upstream, each connection comes back to the echo server.
    let remote = free_port().unwrap();
    let _alice = Running(ssh_forwarding(
        &stack,
        "alice",
        "alice",
        &format!("127.0.0.1:{remote}:127.0.0.1:{echo}"),
        "ERROR",
    ));
    assert_eq!(echo_through(&stack, remote, "ping 1\n"), "ping 1\n");
    assert_eq!(
        echo_through(&stack, remote, "and again\n"),
        "and again\n",
        "a second connection"
    );

    // Port 0: the upstream picks the port and the client learns it (OpenSSH prints it).
    let mut dynamic = Running(ssh_forwarding(
        &stack,
        "alice",
        "alice",
        &format!("0:127.0.0.1:{echo}"),
        "INFO",
    ));
    let stderr = dynamic.0.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let allocated: u16 = loop {
        let line = lines.next().expect("ssh exited before allocating").unwrap();
        if let Some(rest) = line.strip_prefix("Allocated port ") {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    assert_eq!(echo_through(&stack, allocated, "dynamic\n"), "dynamic\n");

    // bob may not: the forward fails, ssh gives up, nothing listens upstream.
    let refused_port = free_port().unwrap();
    let bob = ssh_forwarding(
        &stack,
        "bob",
        "bob",
        &format!("127.0.0.1:{refused_port}:127.0.0.1:{echo}"),
        "ERROR",
    );
    let out = bob.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("remote port forwarding failed"),
        "{}",
        text(&out.stderr)
    );
    assert!(TcpStream::connect(("127.0.0.1", refused_port)).is_err());
    let audit = stack
        .gate
        .audit_when(|a| a.contains(&format!("forward_remote: 127.0.0.1:{refused_port}")));
    assert!(
        audit.contains(&format!("forward_remote: 127.0.0.1:{remote}")),
        "{audit}"
    );
    assert!(audit.contains("forwarding is for alice only"), "{audit}");
}

/// An ssh-agent on a socket in the stack's directory, holding alice's key.
fn agent(stack: &Stack) -> (Running, std::path::PathBuf) {
    let socket = stack.dir.path().join("agent.sock");
    let agent = Running(
        Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while !socket.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no agent socket"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let added = Command::new("ssh-add")
        .arg(stack.key("alice"))
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    assert!(added.status.success(), "{}", text(&added.stderr));
    (agent, socket)
}

fn ssh_with_agent(
    stack: &Stack,
    user: &str,
    socket: &std::path::Path,
    command: &str,
) -> std::process::Output {
    Command::new("ssh")
        .args(client_args(&stack.key(user), stack.port))
        .arg("-A")
        .arg(format!("{user}@127.0.0.1"))
        .arg(command)
        .env("SSH_AUTH_SOCK", socket)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn an_allowed_agent_forward_lists_the_clients_keys_upstream_and_a_refused_one_has_no_agent() {
    let stack = forwarding_stack();
    let (_agent, socket) = agent(&stack);
    let fingerprint = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(stack.key("alice").with_extension("pub"))
        .output()
        .unwrap();
    let fingerprint = text(&fingerprint.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();

    // Upstream, `ssh-add -l` talks to the client's agent through sshd, Gate and the client.
    let out = ssh_with_agent(&stack, "alice", &socket, "ssh-add -l");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&fingerprint),
        "{} lacks {fingerprint}",
        text(&out.stdout)
    );

    // bob's request is refused: upstream there is no agent (ssh-add exits 2), the exec runs.
    let out = ssh_with_agent(&stack, "bob", &socket, "ssh-add -l; echo exit=$?");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "exit=2\n");
    let audit = stack
        .gate
        .audit_when(|a| a.contains("forwarding is for alice only"));
    assert!(audit.contains("\"statement\":\"agent\""), "{audit}");
}
