//! PostgreSQL transaction pooling (`pool.mode: transaction`): many real clients (pgbench in all
//! three protocols, tokio-postgres, psycopg with server-side prepares) share a few upstream
//! connections; session state pins or is refused; each client keeps its startup settings;
//! cancels reach the backend running the client's statement.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use gate_testkit::PgAuth;

fn pooled(extra: &str) -> Stack {
    start_with(
        PgAuth::Trust,
        &format!(", pool: {{mode: transaction{extra}}}"),
        &example_policy(),
        None,
    )
}

fn pgbench_init(stack: &Stack) {
    let init = Command::new(PGBENCH)
        .args(["-i", "-q", "-s", "1", "-h"])
        .arg(stack.pg.socket_dir())
        .args([
            "-p",
            &stack.pg.port().to_string(),
            "-U",
            "postgres",
            "appdb",
        ])
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", text(&init.stderr));
    direct(
        stack,
        "grant all on all tables in schema public to gate_app",
    );
}

/// The most upstream backends serving pgbench seen while `run` runs.
fn peak_backends(stack: &Stack, run: impl FnOnce()) -> usize {
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let socket = stack.pg.socket_dir().to_path_buf();
    let port = stack.pg.port();
    let watcher =
        {
            let (done, peak) = (done.clone(), peak.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let out = Command::new(PSQL)
                    .args(["-X", "-A", "-t", "-h"])
                    .arg(&socket)
                    .args(["-p", &port.to_string(), "-U", "postgres", "-d", "appdb", "-c"])
                    .arg("select count(*) from pg_stat_activity where application_name = 'pgbench'")
                    .output()
                    .unwrap();
                    if let Ok(n) = text(&out.stdout).trim().parse::<usize>() {
                        peak.fetch_max(n, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
    run();
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    peak.load(Ordering::Relaxed)
}

#[test]
fn two_hundred_pgbench_clients_share_ten_connections_in_every_protocol() {
    let stack = pooled(", max_connections: 10, acquire_timeout: 30s");
    pgbench_init(&stack);
    for mode in ["simple", "extended", "prepared"] {
        let peak = peak_backends(&stack, || {
            let out = Command::new(PGBENCH)
                .env("PGPASSWORD", "app")
                .args([
                    "-n",
                    "-c",
                    "200",
                    "-j",
                    "2",
                    "-t",
                    "10",
                    "-M",
                    mode,
                    "-h",
                    "127.0.0.1",
                ])
                .args(["-p", &stack.port.to_string(), "-U", "app", "appdb"])
                .output()
                .unwrap();
            let stdout = text(&out.stdout);
            assert!(
                out.status.success(),
                "{mode}: {}\n{stdout}",
                text(&out.stderr)
            );
            assert!(
                stdout.contains("number of transactions actually processed: 2000/2000"),
                "{mode}: {stdout}"
            );
            assert!(
                stdout.contains("number of failed transactions: 0"),
                "{mode}: {stdout}"
            );
        });
        assert!(peak <= 10, "{mode}: {peak} upstream backends for pgbench");
        assert!(peak >= 1, "{mode}: the watcher saw no backend");
    }
    let (_, metrics) = http_get(stack.health_port, "/metrics");
    let hits = metrics
        .lines()
        .find(|l| l.starts_with("gate_connpool_prepared_hits_total{"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        hits > 1000.0,
        "prepared statements were not reused:\n{metrics}"
    );
    assert!(
        metrics.contains("gate_connpool_prepared_misses_total{"),
        "{metrics}"
    );
}
