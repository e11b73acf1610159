//! Upstream pooling (session mode): connections are reused across client
//! sessions after `DISCARD ALL`, never while busy, bounded by
//! `max_connections` with `acquire_timeout`, closed after `idle_timeout`.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use gate_testkit::PgAuth;

fn backend_pid(stack: &Stack, extra: &[&str]) -> String {
    let mut commands = extra.to_vec();
    commands.push("select pg_backend_pid()");
    let out = psql(stack, "app", "app", "appdb", &commands);
    let stdout = text(&out.stdout);
    stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("{}", text(&out.stderr)))
        .to_owned()
}

/// Wait until the pool holds an idle connection (the last session's, reset).
fn wait_for_idle_connection(stack: &Stack) {
    for _ in 0..100 {
        let (_, metrics) = http_get(stack.health_port, "/metrics");
        let idle = metrics
            .lines()
            .filter(|l| l.starts_with("gate_connpool_idle_connections{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        if idle >= 1.0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no connection came back to the pool within 5 s");
}

#[test]
fn a_second_session_reuses_the_upstream_connection_with_state_reset() {
    let stack = start(
        PgAuth::Scram {
            password: "super".into(),
        },
        &example_policy(),
    );
    let first = backend_pid(
        &stack,
        &["set work_mem = '77MB'", "create temp table scratch (a int)"],
    );
    // psql leaves without waiting for Gate to reset and pool the connection.
    wait_for_idle_connection(&stack);
    let out = psql(
        &stack,
        "app",
        "app",
        "appdb",
        &[
            "select pg_backend_pid()",
            "show work_mem",
            "select count(*) from pg_tables where tablename = 'scratch'",
        ],
    );
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [first.clone(), "4MB".into(), "0".into()],
        "{}",
        text(&out.stderr)
    );
    // The catalog connection aside, only one upstream session exists.
    let sessions = direct(
        &stack,
        "select count(*) from pg_stat_activity where usename = 'gate_app' and application_name = 'psql'",
    );
    assert_eq!(sessions, "1");
}

#[test]
fn different_startup_settings_get_different_connections() {
    let stack = start(PgAuth::Trust, &example_policy());
    let psql_pid = backend_pid(&stack, &[]);
    let out = Command::new(PSQL)
        .env("PGPASSWORD", "app")
        .env("PGAPPNAME", "reporting")
        .args([
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            &stack.port.to_string(),
            "-U",
            "app",
            "-d",
            "appdb",
        ])
        .args([
            "-c",
            "select pg_backend_pid(), current_setting('application_name')",
        ])
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    let (pid, app) = stdout.trim().split_once('|').unwrap();
    assert_ne!(pid, psql_pid);
    assert_eq!(app, "reporting");
}

#[test]
fn a_session_left_in_a_transaction_is_not_reused() {
    let stack = start(PgAuth::Trust, &example_policy());
    let first = backend_pid(&stack, &["begin"]);
    let second = backend_pid(&stack, &[]);
    assert_ne!(
        first, second,
        "a connection with an open transaction must be closed, not pooled"
    );
    let gone = direct(
        &stack,
        &format!("select count(*) from pg_stat_activity where pid = {first}"),
    );
    assert_eq!(gone, "0");
}

#[test]
fn a_full_pool_makes_new_sessions_wait_then_fail_with_53300() {
    let stack = start_with(
        PgAuth::Trust,
        ", pool: {max_connections: 1, acquire_timeout: 300ms}",
        &example_policy(),
        None,
    );
    let holder = Command::new(PSQL)
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
            "select pg_sleep(3)",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while direct(
        &stack,
        "select count(*) from pg_stat_activity where query = 'select pg_sleep(3)'",
    ) != "1"
    {
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = psql(&stack, "app", "app", "appdb", &["select 1"]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "FATAL:  no upstream connection to resource \"primary-db\" became free in time"
        ),
        "{stderr}"
    );
    let (_, metrics) = http_get(stack.health_port, "/metrics");
    let exhausted = format!(
        "gate_connpool_exhausted_total{{resource=\"primary-db\",upstream=\"127.0.0.1:{}\"}} 1",
        stack.pg.port()
    );
    assert!(metrics.contains(&exhausted), "{metrics}");
    assert!(
        metrics.contains("gate_connpool_wait_duration_seconds_count{resource=\"primary-db\""),
        "{metrics}"
    );
    let output = holder.wait_with_output().unwrap();
    assert!(output.status.success());
    // Once the holder is done, its connection serves the next session.
    assert_eq!(
        text(&psql(&stack, "app", "app", "appdb", &["select 1"]).stdout).trim(),
        "1"
    );
}

#[test]
fn idle_connections_expire() {
    let stack = start_with(
        PgAuth::Trust,
        ", pool: {idle_timeout: 200ms}",
        &example_policy(),
        None,
    );
    let first = backend_pid(&stack, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let second = backend_pid(&stack, &[]);
    assert_ne!(first, second);
}
