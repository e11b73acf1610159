//! PostgreSQL through Gate with real clients (psql, pgbench) against a real
//! PostgreSQL 15: login, routing, session and pre_request policies, rewrites,
//! extended protocol, cancel, upstream SCRAM and md5, audit events.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use gate_testkit::PgAuth;

#[test]
fn queries_pass_and_a_blocked_drop_leaves_the_session_usable() {
    let stack = start(
        PgAuth::Scram {
            password: "super".into(),
        },
        &example_policy(),
    );
    let out = psql(
        &stack,
        "app",
        "app",
        "appdb",
        &[
            "select name from customers",
            "drop table customers",
            "select count(*) from customers",
            "select current_user",
        ],
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["Alice", "1", "gate_app"],
        "stderr: {stderr}"
    );
    assert!(
        stderr.contains("ERROR:  destructive queries are not allowed"),
        "{stderr}"
    );
    assert_eq!(
        direct(&stack, "select count(*) from customers"),
        "1",
        "the table must still exist"
    );
}

#[test]
fn the_refusal_is_sqlstate_42501() {
    let stack = start(PgAuth::Trust, &example_policy());
    let out = psql(
        &stack,
        "app",
        "app",
        "appdb",
        &["\\set VERBOSITY verbose", "truncate customers"],
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("ERROR:  42501: destructive queries are not allowed"),
        "{stderr}"
    );
}

#[test]
fn a_multi_statement_query_with_one_blocked_statement_runs_none() {
    let stack = start(PgAuth::Trust, &example_policy());
    let out = psql(
        &stack,
        "app",
        "app",
        "appdb",
        &["insert into customers values (2, 'Bob', 'b@x', '1'); drop table customers"],
    );
    assert!(text(&out.stderr).contains("destructive queries are not allowed"));
    assert_eq!(
        direct(&stack, "select count(*) from customers"),
        "1",
        "the insert must not have run"
    );
}

#[test]
fn a_blocked_statement_aborts_the_transaction_like_a_server_error() {
    let stack = start(PgAuth::Trust, &example_policy());
    let out = psql(
        &stack,
        "app",
        "app",
        "appdb",
        &[
            "begin; insert into customers values (3, 'C', 'c@x', '3'); drop table customers; commit;",
        ],
    );
    assert!(text(&out.stderr).contains("destructive queries are not allowed"));
    assert_eq!(
        direct(&stack, "select count(*) from customers where id = 3"),
        "0"
    );
}

#[test]
fn wrong_password_and_unknown_user_look_the_same() {
    let stack = start(PgAuth::Trust, &example_policy());
    let wrong = text(&psql(&stack, "app", "nope", "appdb", &["select 1"]).stderr);
    assert!(
        wrong.contains("FATAL:  password authentication failed for user \"app\""),
        "{wrong}"
    );
    let unknown = text(&psql(&stack, "mallory", "nope", "appdb", &["select 1"]).stderr);
    assert!(
        unknown.contains("FATAL:  password authentication failed for user \"mallory\""),
        "{unknown}"
    );
}

#[test]
fn an_unknown_database_reveals_nothing_else() {
    let stack = start(PgAuth::Trust, &example_policy());
    let out = text(&psql(&stack, "app", "app", "nosuchdb", &["select 1"]).stderr);
    assert!(
        out.contains("FATAL:  database \"nosuchdb\" does not exist"),
        "{out}"
    );
    // Routing by resource name works as well as by database name.
    let out = psql(
        &stack,
        "app",
        "app",
        "primary-db",
        &["select current_database()"],
    );
    assert_eq!(text(&out.stdout).trim(), "appdb", "{}", text(&out.stderr));
}

#[test]
fn the_session_policy_can_refuse_a_login() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("admins_only.rego");
    std::fs::write(
        &policy,
        "package admins_only\nimport rego.v1\ndefault session := {\"action\": \"block\", \"reason\": \"only admins may connect\"}\n\
         session := {\"action\": \"allow\"} if \"admins\" in input.user.groups\n\
         pre_request := {\"action\": \"allow\"}\n",
    )
    .unwrap();
    let stack = start(
        PgAuth::Trust,
        &format!(
            "policies:\n  - {{path: \"{}\", stage: session}}\n  - {{path: \"{}\", stage: pre_request}}\n",
            policy.display(),
            policy.display()
        ),
    );
    let out = text(&psql(&stack, "app", "app", "appdb", &["select 1"]).stderr);
    assert!(out.contains("FATAL:  only admins may connect"), "{out}");
    let out = psql(&stack, "boss", "boss", "appdb", &["select 1"]);
    assert_eq!(text(&out.stdout).trim(), "1", "{}", text(&out.stderr));
}

#[test]
fn a_rewrite_replaces_the_statement() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("rewrite.rego");
    std::fs::write(
        &policy,
        "package rewrite\nimport rego.v1\ndefault session := {\"action\": \"allow\"}\ndefault pre_request := {\"action\": \"allow\"}\n\
         pre_request := {\"action\": \"rewrite\", \"query\": \"select 'rewritten'\"} if input.query.tables == [\"customers\"]\n",
    )
    .unwrap();
    let stack = start(
        PgAuth::Trust,
        &format!(
            "policies:\n  - {{path: \"{}\", stage: session}}\n  - {{path: \"{}\", stage: pre_request}}\n",
            policy.display(),
            policy.display()
        ),
    );
    let out = psql(
        &stack,
        "app",
        "app",
        "appdb",
        &["select ssn from customers", "select 'untouched'"],
    );
    assert_eq!(
        text(&out.stdout).lines().collect::<Vec<_>>(),
        ["rewritten", "untouched"],
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn upstream_md5_login_works() {
    let stack = start(
        PgAuth::Md5 {
            password: "super".into(),
        },
        &example_policy(),
    );
    // The seed set gate_app's password while SCRAM was the default; store it as md5.
    direct(
        &stack,
        "set password_encryption = 'md5'; alter role gate_app password 'gate-app-pw'",
    );
    let out = psql(&stack, "app", "app", "appdb", &["select current_user"]);
    assert_eq!(
        text(&out.stdout).trim(),
        "gate_app",
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn pgbench_extended_and_prepared_protocols_pass_and_blocks_apply() {
    let stack = start(
        PgAuth::Scram {
            password: "super".into(),
        },
        &example_policy(),
    );
    pgbench_init(&stack);
    for mode in ["simple", "extended", "prepared"] {
        let out = Command::new(PGBENCH)
            .env("PGPASSWORD", "app")
            .args([
                "-n",
                "-S",
                "-t",
                "50",
                "-c",
                "2",
                "-M",
                mode,
                "-h",
                "127.0.0.1",
                "-p",
                &stack.port.to_string(),
                "-U",
                "app",
                "appdb",
            ])
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{mode}: {}\n{stdout}",
            text(&out.stderr)
        );
        assert!(
            stdout.contains("number of transactions actually processed: 100/100"),
            "{mode}: {stdout}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("drop.sql");
    std::fs::write(&script, "drop table pgbench_branches;\n").unwrap();
    let out = Command::new(PGBENCH)
        .env("PGPASSWORD", "app")
        .args(["-n", "-t", "1", "-M", "extended", "-f"])
        .arg(&script)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &stack.port.to_string(),
            "-U",
            "app",
            "appdb",
        ])
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("destructive queries are not allowed"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(direct(&stack, "select count(*) from pgbench_branches"), "1");
}

#[test]
fn cancel_reaches_the_upstream_backend() {
    let stack = start(PgAuth::Trust, &example_policy());
    let child = Command::new(PSQL)
        .env("PGPASSWORD", "app")
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &stack.port.to_string(),
            "-U",
            "app",
            "-d",
            "appdb",
            "-c",
            "select pg_sleep(30)",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the statement runs upstream, then interrupt psql (it sends a CancelRequest).
    let started = Instant::now();
    while direct(
        &stack,
        "select count(*) from pg_stat_activity where query = 'select pg_sleep(30)'",
    ) != "1"
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the sleep never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        text(&out.stderr).contains("canceling statement due to user request"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn every_decision_is_audited() {
    let stack = start(PgAuth::Trust, &example_policy());
    psql(
        &stack,
        "app",
        "app",
        "appdb",
        &["select 1", "drop table customers"],
    );
    // The audit sink writes in the background: wait for the three events.
    let events: Vec<serde_json::Value> = audit_when(&stack, |text| text.lines().count() >= 3)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("session", "allow"),
            ("statement", "allow"),
            ("statement", "block")
        ]
    );
    let blocked = &events[2];
    assert_eq!(blocked["identity"], "app");
    assert_eq!(blocked["resource"], "primary-db");
    assert_eq!(blocked["reason"], "destructive queries are not allowed");
    assert_eq!(blocked["policies"], serde_json::json!(["example"]));
    assert_eq!(
        blocked["statement"], "drop table customers",
        "the statement as the client sent it"
    );
    assert!(
        blocked["client"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
}
