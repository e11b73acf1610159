//! Who gets in over SSH besides registered keys, and for how long: OpenSSH user certificates
//! signed by `ssh.user_ca_keys` (principal → identity, `groups@gate.dev` → groups), and
//! keyboard-interactive logins with a JWT, and `require_access_grant` (refused without a grant,
//! cut off when it expires or is revoked).
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;
mod ssh_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::jwt;
use gate_connector::managed::Managed;
use gate_proto::v1::Grant;
use ssh_support::*;

/// Sign `key`'s public half with the CA at `ca` (`ssh-keygen -s`), `options` as given.
fn sign(ca: &Path, key: &Path, principals: &str, options: &[&str]) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(ca)
        .args(["-I", "test-cert", "-n", principals])
        .args(options)
        .arg(key.with_extension("pub"))
        .status()
        .unwrap();
    assert!(status.success());
}

fn with_ca() -> (Stack, tempfile::TempDir) {
    let cas = tempfile::tempdir().unwrap();
    let ca = keygen(&cas.path().join("ca"));
    keygen(&cas.path().join("rogue_ca"));
    (stack_with("", &format!(", user_ca_keys: ['{ca}']")), cas)
}

#[test]
fn a_certificate_from_the_configured_ca_logs_in_its_principal_with_its_groups() {
    let (stack, cas) = with_ca();
    let ca = cas.path().join("ca");
    // carol has no static identity: the certificate alone admits her, with its groups.
    let carol = stack.key("carol");
    keygen(&carol);
    sign(
        &ca,
        &carol,
        "carol",
        &["-V", "-5m:+1h", "-O", "extension:groups@gate.dev=sre,sftp"],
    );
    let out = ssh(&stack, "carol", "carol", &["echo", "cert-ok"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "cert-ok\n");
    let audit = stack.gate.audit_when(|a| a.contains("exec: echo cert-ok"));
    assert!(audit.contains("\"identity\":\"carol\""), "{audit}");
    // The policy lets only the sftp group use sftp: carol's certificate says she is in it,
    // hank's does not.
    let hank = stack.key("hank");
    keygen(&hank);
    sign(&ca, &hank, "hank", &["-O", "extension:groups@gate.dev=sre"]);
    let sftp = |who: &str| {
        let args = copy_args(&stack.key(who), stack.port);
        let mut child = Command::new("sftp")
            .args(args)
            .args(["-b", "-", &format!("{who}@127.0.0.1")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(b"pwd\n").unwrap();
        child.wait_with_output().unwrap()
    };
    let out = sftp("carol");
    assert!(
        out.status.success(),
        "{} {}",
        text(&out.stderr),
        stack.gate.audit_when(|_| false)
    );
    assert!(
        text(&out.stdout).contains("Remote working directory"),
        "{}",
        text(&out.stdout)
    );
    let out = sftp("hank");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("sftp needs the sftp group"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn certificates_for_another_principal_expired_or_from_another_ca_are_refused() {
    let (stack, cas) = with_ca();
    let ca = cas.path().join("ca");
    let cases = [
        (
            "wrong_principal",
            ca.clone(),
            vec!["-V", "-5m:+1h"],
            "dave",
            "mallory",
        ),
        ("expired", ca.clone(), vec!["-V", "-2h:-1h"], "erin", "erin"),
        (
            "rogue",
            cas.path().join("rogue_ca"),
            vec!["-V", "-5m:+1h"],
            "frank",
            "frank",
        ),
        (
            "forced",
            ca,
            vec!["-V", "-5m:+1h", "-O", "force-command=/bin/true"],
            "gina",
            "gina",
        ),
    ];
    for (name, signer, options, principal, login) in cases {
        let key = stack.key(name);
        keygen(&key);
        sign(&signer, &key, principal, &options);
        let out = ssh(&stack, name, login, &["true"]);
        assert_eq!(out.status.code(), Some(255), "{name}");
        assert!(
            text(&out.stderr).contains("Permission denied (publickey)"),
            "{name}: {}",
            text(&out.stderr)
        );
    }
}

fn grant(expires_in: Duration) -> Grant {
    Grant {
        access_request_id: "ar-7".into(),
        subject: "alice".into(),
        resource: "web1".into(),
        expires_at: gate_proto::wire::rfc3339(
            gate_proto::wire::now_ms() + i64::try_from(expires_in.as_millis()).unwrap(),
        ),
        ..Default::default()
    }
}

#[test]
fn a_grant_is_required_and_its_end_closes_the_connection_with_the_reason() {
    let stack = stack_with(", require_access_grant: true", "");
    let set_grants = |grants: Vec<Grant>| {
        let engine = gate_connector::startup::compile_policies(&stack.gate.gate.config).unwrap();
        let managed = Managed {
            version: 1,
            grants,
            ..Default::default()
        };
        stack.gate.gate.live.replace(engine, managed);
    };
    let out = ssh(&stack, "alice", "alice", &["true"]);
    assert_eq!(out.status.code(), Some(255));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("requires an approved access request; none is active for \"alice\""),
        "{stderr}"
    );

    // Expiry: the grant ends 2 s from now, the command would run 10 s.
    set_grants(vec![grant(Duration::from_secs(2))]);
    let started = Instant::now();
    let out = ssh(
        &stack,
        "alice",
        "alice",
        &["echo started; sleep 10; echo never"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "cut off at expiry"
    );
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(text(&out.stdout), "started\n");
    assert!(
        text(&out.stderr).contains("access grant for \"web1\" ended (expired or revoked)"),
        "{}",
        text(&out.stderr)
    );

    // Revocation: a long grant, withdrawn while the command runs.
    set_grants(vec![grant(Duration::from_secs(3600))]);
    let child = Command::new("ssh")
        .args(client_args(&stack.key("alice"), stack.port))
        .args(["alice@127.0.0.1", "echo started; sleep 10; echo never"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    set_grants(Vec::new());
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "started\n");
    assert!(
        text(&out.stderr).contains("access grant for \"web1\" ended"),
        "{}",
        text(&out.stderr)
    );
    let audit = stack
        .gate
        .audit_when(|a| a.matches("ended (expired or revoked)").count() >= 2);
    assert!(
        audit.contains("exec: echo started; sleep 10; echo never"),
        "{audit}"
    );
}

/// Log in by keyboard-interactive only, answering the prompt with `token` (through
/// `SSH_ASKPASS`, as a terminal would).
fn ssh_with_token(stack: &Stack, user: &str, token: &str, command: &str) -> std::process::Output {
    let askpass = stack.dir.path().join(format!("askpass-{user}"));
    let token_file = stack.dir.path().join(format!("token-{user}"));
    std::fs::write(&token_file, token).unwrap();
    std::fs::write(
        &askpass,
        format!("#!/bin/sh\ncat '{}'\n", token_file.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o755)).unwrap();
    let args: Vec<String> = client_args(&stack.key("stranger"), stack.port)
        .into_iter()
        .map(|a| {
            if a == "BatchMode=yes" {
                "BatchMode=no".into()
            } else {
                a
            }
        })
        .collect();
    Command::new("ssh")
        .args(&args)
        .args(["-o", "PreferredAuthentications=keyboard-interactive"])
        .arg(format!("{user}@127.0.0.1"))
        .arg(command)
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn keyboard_interactive_takes_a_token_for_the_login_name() {
    let issuer_dir = tempfile::tempdir().unwrap();
    let (pem, auth) = jwt::trusted_issuer(issuer_dir.path());
    let stack = stack_full("", "", &auth);
    let exp = jwt::now() + 600;
    let token = jwt::token(&pem, "k1", jwt::claims("dana", &["sre"], "gate", exp));
    let out = ssh_with_token(&stack, "dana", &token, "echo token-ok");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "token-ok\n");
    let audit = stack.gate.audit_when(|a| a.contains("exec: echo token-ok"));
    assert!(audit.contains("\"identity\":\"dana\""), "{audit}");
    // A token for someone else, an expired one, a token from no trusted issuer: refused alike.
    let other = jwt::token(&pem, "k1", jwt::claims("erin", &[], "gate", exp));
    let expired = jwt::token(
        &pem,
        "k1",
        jwt::claims("dana", &[], "gate", jwt::now() - 600),
    );
    let (rogue_pem, _) = jwt::keypair(issuer_dir.path(), "rogue", "k1");
    let rogue = jwt::token(&rogue_pem, "k1", jwt::claims("dana", &[], "gate", exp));
    for (name, token) in [("other", other), ("expired", expired), ("rogue", rogue)] {
        let out = ssh_with_token(&stack, "dana", &token, "true");
        assert_eq!(out.status.code(), Some(255), "{name}");
        assert!(
            text(&out.stderr).contains("Permission denied"),
            "{name}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn a_token_login_ends_when_the_token_expires() {
    let issuer_dir = tempfile::tempdir().unwrap();
    let (pem, auth) = jwt::trusted_issuer(issuer_dir.path());
    let stack = stack_full("", "", &auth);
    // The token is good for 3 more seconds; the command would run 10.
    let token = jwt::token(
        &pem,
        "k1",
        jwt::claims("dana", &["sre"], "gate", jwt::now() + 3),
    );
    let started = Instant::now();
    let out = ssh_with_token(&stack, "dana", &token, "echo started; sleep 10; echo never");
    assert!(started.elapsed() < Duration::from_secs(8), "cut off at exp");
    assert_eq!(out.status.code(), Some(255));
    assert_eq!(text(&out.stdout), "started\n");
    let reason = "the identity token of \"dana\" expired; log in again with a new one";
    assert!(text(&out.stderr).contains(reason), "{}", text(&out.stderr));
    // The audit's JSON escapes the quotes.
    let audited = "expired; log in again with a new one";
    let audit = stack.gate.audit_when(|a| a.contains(audited));
    assert!(audit.contains(audited), "{audit}");
}
