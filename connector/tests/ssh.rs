//! SSH through Gate with real OpenSSH clients (`ssh`, `scp`, `sftp`) against a real sshd:
//! exec allowed and refused by policy, exit status, a PTY shell, sftp and scp both ways, port
//! forwarding refused, wrong keys, a changed upstream host key, the shared listener
//! (certificates and access grants: `ssh_access.rs`).
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;
mod ssh_support;

use std::process::{Command, Stdio};

use gate_testkit::{Sshd, SshdOptions, free_port};
use ssh_support::*;

#[test]
fn exec_runs_upstream_and_a_refused_command_exits_1_with_the_reason() {
    let stack = stack();
    let out = ssh(&stack, "alice", "alice", &["echo", "hello from $(whoami)"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello from root\n");
    let out = ssh(&stack, "alice", "alice", &["echo oops >&2; exit 7"]);
    assert_eq!(out.status.code(), Some(7), "exit status passes through");
    assert_eq!(text(&out.stderr), "oops\n");
    let out = ssh(&stack, "alice", "alice", &["rm -rf /tmp/nothing-here"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "gate: exec refused: rm is not allowed here\r\n"
    );
    assert!(out.stdout.is_empty());
    let audit = stack.gate.audit_when(|a| a.contains("rm is not allowed"));
    assert!(audit.contains("exec: echo hello from $(whoami)"), "{audit}");
    assert!(audit.contains("exec: rm -rf /tmp/nothing-here"), "{audit}");
}

#[test]
fn a_wrong_key_or_unknown_user_gets_the_plain_permission_denied() {
    let stack = stack();
    for (key, user) in [
        ("stranger", "alice"),
        ("bob", "alice"),
        ("alice", "nobody"),
        ("alice", "alice@other"),
    ] {
        let out = ssh(&stack, key, user, &["true"]);
        assert_eq!(out.status.code(), Some(255), "{key} as {user}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("Permission denied (publickey)"),
            "{key} as {user}: {stderr}"
        );
        assert!(!stderr.contains("gate"), "no hint: {stderr}");
    }
}

#[test]
fn a_shell_with_a_pty_runs_interactively() {
    let stack = stack();
    let mut child = Command::new("ssh")
        .args(client_args(&stack.key("alice"), stack.port))
        .args(["-tt", "-o", "SetEnv=GATE_GREETING=hi LANG=C.UTF-8"])
        .arg("alice@127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let stdin = child.stdin.as_mut().unwrap();
        stdin
            .write_all(b"tty; echo answer=$((6*7)) greeting=$GATE_GREETING; exit 3\n")
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    // GATE_GREETING passes (sshd accepts GATE_*); LANG is refused upstream, and the
    // shell starts all the same.
    assert!(stdout.contains("answer=42 greeting=hi"), "{stdout}");
    assert!(
        stdout.contains("/dev/pts/"),
        "a real terminal upstream: {stdout}"
    );
    assert_eq!(out.status.code(), Some(3), "{stdout} {}", text(&out.stderr));
    let audit = stack.gate.audit_when(|a| a.contains("\"shell\""));
    assert!(audit.contains("pty: "), "{audit}");
    assert!(
        audit.contains("env: GATE_GREETING") && audit.contains("env: LANG"),
        "{audit}"
    );
}

/// Run tmux on its own server socket `socket`.
fn tmux(socket: &str, args: &[&str]) -> std::process::Output {
    Command::new("tmux")
        .args(["-L", socket])
        .args(args)
        .output()
        .unwrap()
}

/// A tmux server, killed on drop (also when the test fails midway).
struct TmuxServer(String);

impl Drop for TmuxServer {
    fn drop(&mut self) {
        tmux(&self.0, &["kill-server"]);
    }
}

fn wait_for(path: &std::path::Path) -> String {
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{} never written", path.display());
}

#[test]
fn a_terminal_resize_reaches_the_upstream_pty() {
    let stack = stack();
    let socket = format!("gate-ssh-{}", std::process::id());
    let ssh = format!(
        "ssh {} -tt alice@127.0.0.1",
        client_args(&stack.key("alice"), stack.port).join(" ")
    );
    let _server = TmuxServer(socket.clone());
    let out = tmux(
        &socket,
        &["new-session", "-d", "-x", "100", "-y", "30", &ssh],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = stack.dir.path().join("size-before");
    let after = stack.dir.path().join("size-after");
    let typed = |line: String| {
        let out = tmux(&socket, &["send-keys", &line, "Enter"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    typed(format!("stty size > {}", before.display()));
    let size = wait_for(&before);
    let out = tmux(&socket, &["resize-window", "-x", "120", "-y", "40"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::thread::sleep(std::time::Duration::from_millis(300));
    typed(format!("stty size > {}", after.display()));
    let resized = wait_for(&after);
    typed("exit".into());
    assert_eq!(size, "30 100\n", "the pty-req size");
    assert_eq!(resized, "40 120\n", "the window-change size");
}

#[test]
fn sftp_scp_and_rsync_move_files_and_sftp_is_refused_without_the_group() {
    let stack = stack();
    let local = stack.dir.path().join("payload.bin");
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&local, &payload).unwrap();
    let remote_dir = tempfile::tempdir().unwrap();
    let remote = remote_dir.path().join("up.bin");
    let back = stack.dir.path().join("back.bin");
    let batch = stack.dir.path().join("batch");
    std::fs::write(
        &batch,
        format!(
            "put {} {}\nget {} {}\n",
            local.display(),
            remote.display(),
            remote.display(),
            back.display()
        ),
    )
    .unwrap();
    let sftp = |key: &str, user: &str| {
        let args = copy_args(&stack.key(key), stack.port);
        Command::new("sftp")
            .args(args)
            .arg("-b")
            .arg(&batch)
            .arg(format!("{user}@127.0.0.1"))
            .output()
            .unwrap()
    };
    let out = sftp("alice", "alice");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&remote).unwrap(), payload);
    assert_eq!(std::fs::read(&back).unwrap(), payload);

    let out = sftp("bob", "bob");
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("gate: subsystem refused: sftp needs the sftp group"),
        "{stderr}"
    );

    for legacy in [false, true] {
        std::fs::remove_file(&back).ok();
        let scp = |from: String, to: String| {
            let args = copy_args(&stack.key("alice"), stack.port);
            let mut command = Command::new("scp");
            if legacy {
                command.arg("-O");
            }
            let out = command.args(args).arg(from).arg(to).output().unwrap();
            assert!(
                out.status.success(),
                "legacy={legacy}: {}",
                text(&out.stderr)
            );
        };
        let target = remote_dir.path().join(format!("scp-{legacy}.bin"));
        scp(
            local.display().to_string(),
            format!("alice@127.0.0.1:{}", target.display()),
        );
        assert_eq!(
            std::fs::read(&target).unwrap(),
            payload,
            "upload, legacy={legacy}"
        );
        scp(
            format!("alice@127.0.0.1:{}", target.display()),
            back.display().to_string(),
        );
        assert_eq!(
            std::fs::read(&back).unwrap(),
            payload,
            "download, legacy={legacy}"
        );
    }
    // rsync runs `rsync --server` upstream as an exec.
    let synced = remote_dir.path().join("rsync.bin");
    let transport = format!(
        "ssh {}",
        client_args(&stack.key("alice"), stack.port).join(" ")
    );
    let out = Command::new("rsync")
        .args(["-e", &transport])
        .arg(&local)
        .arg(format!("alice@127.0.0.1:{}", synced.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&synced).unwrap(), payload, "rsync");
    let audit = stack.gate.audit_when(|a| a.contains("rsync --server"));
    assert!(audit.contains("subsystem: sftp"), "{audit}");
    assert!(audit.contains("exec: scp -t"), "{audit}");
}

#[test]
fn port_forwarding_is_refused_by_policy_and_the_connection_stays_usable() {
    let stack = stack();
    // OpenSSH reports a refused channel at its INFO level.
    let args: Vec<String> = client_args(&stack.key("alice"), stack.port)
        .into_iter()
        .map(|a| {
            if a == "LogLevel=ERROR" {
                "LogLevel=INFO".into()
            } else {
                a
            }
        })
        .collect();
    let out = Command::new("ssh")
        .args(&args)
        .args(["-W", "127.0.0.1:22", "alice@127.0.0.1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("refused by gate: port forwarding is off"),
        "{stderr}"
    );
    // -L with a command: the forward is refused when used; the exec still runs.
    let lport = free_port().unwrap();
    let forward = format!("{lport}:127.0.0.1:22");
    let child = Command::new("ssh")
        .args(&args)
        .args([
            "-L",
            &forward,
            "alice@127.0.0.1",
            "sleep 2; echo still-here",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut read = String::new();
    for _ in 0..50 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", lport)) {
            use std::io::Read as _;
            s.set_read_timeout(Some(std::time::Duration::from_secs(3)))
                .unwrap();
            let _ = s.read_to_string(&mut read);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        !read.starts_with("SSH-"),
        "the forward reached the target: {read}"
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "still-here\n", "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("refused by gate: port forwarding is off"),
        "{}",
        text(&out.stderr)
    );
    let audit = stack
        .gate
        .audit_when(|a| a.matches("port forwarding is off").count() >= 2);
    assert!(audit.contains("forward_local: 127.0.0.1:22"), "{audit}");
}

#[test]
fn a_changed_upstream_host_key_is_refused_and_audited() {
    let other = Sshd::start(SshdOptions::default()).unwrap();
    let stack = stack_with("", "");
    // Pin the other server's key for this upstream's address.
    let port = stack.gate.gate.config.resources[0].port;
    let pinned = format!("[127.0.0.1]:{port} {}", other.host_public_key().trim());
    std::fs::write(stack.dir.path().join("known_hosts"), pinned + "\n").unwrap();
    let out = ssh(&stack, "alice", "alice", &["true"]);
    assert_eq!(out.status.code(), Some(255));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("gate: the host key of web1 does not match its pinned key"),
        "{stderr}"
    );
    let audit = stack
        .gate
        .audit_when(|a| a.contains("pins a different key"));
    assert!(audit.contains("host key SHA256:"), "{audit}");
    let metrics = stack.gate.gate.metrics.render();
    let sessions = |outcome: &str| {
        metrics.lines().any(|l| {
            l.starts_with("gate_sessions_total{")
                && l.contains("protocol=\"ssh\"")
                && l.contains(&format!("outcome=\"{outcome}\""))
                && l.ends_with(" 1")
        })
    };
    assert!(sessions("upstream_error") && !sessions("ok"), "{metrics}");
}

#[test]
fn the_shared_listener_detects_ssh_and_the_login_names_the_resource() {
    let stack = stack();
    let out = Command::new("ssh")
        .args(client_args(&stack.key("alice"), stack.gate.port))
        .args(["-l", "alice@web1", "127.0.0.1", "echo shared"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "shared\n");
}

/// A russh client, for what OpenSSH's client never sends or never shows: `signal` requests
/// and the `exit-signal` answer.
struct Trusting;

impl russh::client::Handler for Trusting {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, russh::Error> {
        Ok(true)
    }
}

#[test]
fn signals_and_exit_signals_pass_through() {
    use russh::{ChannelMsg, Sig};
    let stack = stack();
    let runtime = common::test_runtime();
    let key = russh::keys::load_secret_key(stack.key("alice"), None).unwrap();
    let signals = runtime.block_on(async {
        let config = std::sync::Arc::new(russh::client::Config::default());
        let mut handle = russh::client::connect(config, ("127.0.0.1", stack.port), Trusting)
            .await
            .unwrap();
        let key = russh::keys::PrivateKeyWithHashAlg::new(std::sync::Arc::new(key), None);
        assert!(
            handle
                .authenticate_publickey("alice", key)
                .await
                .unwrap()
                .success()
        );
        let mut seen = Vec::new();
        // One channel kills itself; another gets the client's `signal` request.
        for (command, signal) in [("kill -TERM $$", None), ("exec sleep 2", Some(Sig::INT))] {
            let mut channel = handle.channel_open_session().await.unwrap();
            channel.exec(true, command).await.unwrap();
            let started = std::time::Instant::now();
            while let Some(msg) = channel.wait().await {
                match msg {
                    ChannelMsg::Success => {
                        if let Some(signal) = signal.clone() {
                            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                            channel.signal(signal).await.unwrap();
                        }
                    }
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        seen.push(format!("{signal_name:?}"))
                    }
                    ChannelMsg::ExitStatus { exit_status } => {
                        seen.push(format!("exit {exit_status}"))
                    }
                    _ => {}
                }
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "{command}"
            );
        }
        seen
    });
    // This sshd (run without privilege separation) refuses to deliver signals, but logs the
    // request Gate passed on; the sleep then ends by itself.
    assert_eq!(signals, ["TERM", "exit 0"]);
    let log = stack.sshd.log_tail();
    assert!(log.contains("session_signal_req"), "{log}");
}
