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
    let hits = metric(&stack, "gate_connpool_prepared_hits_total");
    assert!(hits > 1000.0, "prepared statements were not reused: {hits}");
    assert!(metric(&stack, "gate_connpool_prepared_misses_total") >= 1.0);
}

/// psql as `app` with `PGAPPNAME` set to `app_name`; stdout lines, stderr.
fn psql_as(stack: &Stack, app_name: &str, commands: &[&str]) -> (Vec<String>, String) {
    let out = psql_with(
        stack,
        "app",
        "app",
        "appdb",
        &[("PGAPPNAME", app_name)],
        commands,
    );
    let lines = text(&out.stdout).lines().map(str::to_owned).collect();
    (lines, text(&out.stderr))
}

#[test]
fn session_state_pins_the_client_by_default_and_is_audited() {
    let stack = pooled(", max_connections: 2");
    let (lines, stderr) = psql_as(
        &stack,
        "pinner",
        &[
            "set work_mem = '77MB'",
            "show work_mem",
            "select pg_advisory_lock(42)",
            "select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()",
        ],
    );
    assert_eq!(lines, ["SET", "77MB", "", "1"], "{stderr}");
    // Pinned clients go with DISCARD ALL: the next client sees neither the setting nor the lock.
    let (lines, _) = psql_as(
        &stack,
        "pinner",
        &[
            "show work_mem",
            "select count(*) from pg_locks where locktype = 'advisory'",
        ],
    );
    assert_eq!(lines, ["4MB", "0"]);
    let audit = audit_when(&stack, |a| {
        a.contains("pinned to one upstream connection by SET")
    });
    assert!(
        audit.contains("pinned to one upstream connection by SET"),
        "{audit}"
    );
    // Both clients were pinned and are gone.
    assert_eq!(metric(&stack, "gate_connpool_pinned_clients"), 0.0);
}

#[test]
fn session_state_is_refused_with_0a000_when_pinning_is_off() {
    let stack = pooled(", pin_on_session_state: false");
    for statement in [
        "set search_path = public",
        "listen jobs",
        "select pg_advisory_lock(1)",
        "create temp table t (a int)",
        "prepare q as select 1",
        "select set_config('work_mem', '8MB', false)",
    ] {
        let out = psql(
            &stack,
            "app",
            "app",
            "appdb",
            &["\\set VERBOSITY verbose", statement],
        );
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("ERROR:  0A000:")
                && stderr.contains("is not supported with transaction pooling"),
            "{statement}: {stderr}"
        );
    }
    // Transaction-scoped forms run.
    let (lines, stderr) = psql_as(
        &stack,
        "x",
        &[
            "begin; set local work_mem = '9MB'; select pg_advisory_xact_lock(1); show work_mem; commit",
        ],
    );
    assert!(lines.contains(&"9MB".to_owned()), "{lines:?} {stderr}");
}

#[test]
fn clients_with_different_startup_settings_each_see_their_own() {
    let stack = pooled(", max_connections: 4");
    let query = "select current_setting('application_name'), current_setting('search_path')";
    std::thread::scope(|scope| {
        let stack = &stack;
        let handles: Vec<_> = (0..6)
            .map(|i| {
                scope.spawn(move || {
                    let app = format!("app{}", i % 2);
                    let options = format!("-c search_path=schema{}", i % 2);
                    let env = [("PGAPPNAME", app.as_str()), ("PGOPTIONS", options.as_str())];
                    let out = psql_with(stack, "app", "app", "appdb", &env, &[query, query]);
                    let want = format!("{app}|schema{}", i % 2);
                    (want, text(&out.stdout), text(&out.stderr))
                })
            })
            .collect();
        for h in handles {
            let (want, stdout, stderr) = h.join().unwrap();
            assert_eq!(
                stdout.lines().collect::<Vec<_>>(),
                [&want, &want],
                "{stderr}"
            );
        }
    });
}

#[test]
fn a_cancel_reaches_the_pooled_backend_running_the_statement() {
    let stack = pooled(", max_connections: 2");
    with_tokio_postgres(&stack, |client| async move {
        let token = client.cancel_token();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            token.cancel_query(tokio_postgres::NoTls).await.unwrap();
        });
        let started = std::time::Instant::now();
        let err = client
            .simple_query("select pg_sleep(20)")
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
            "{err}"
        );
        canceller.await.unwrap();
        // The connection went back clean: the client goes on.
        let rows = client.simple_query("select 1").await.unwrap();
        assert!(!rows.is_empty());
    });
}

#[test]
fn many_tokio_postgres_clients_share_few_connections_with_prepared_statements() {
    let stack = pooled(", max_connections: 3, max_prepared_statements: 2");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let port = stack.port;
    runtime.block_on(async move {
        let mut tasks = Vec::new();
        for i in 0..30i32 {
            tasks.push(tokio::spawn(async move {
                let conn = format!("host=127.0.0.1 port={port} user=app password=app dbname=appdb");
                let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                // Three statements per client over a cache of two per connection: evictions.
                let a = client.prepare("select $1::int + 1").await.unwrap();
                let b = client
                    .prepare("select name from customers where id = $1")
                    .await
                    .unwrap();
                let c = client.prepare("select $1::text || 'x'").await.unwrap();
                for _ in 0..5 {
                    let row = client.query_one(&a, &[&i]).await.unwrap();
                    assert_eq!(row.get::<_, i32>(0), i + 1);
                    let row = client.query_one(&b, &[&1i32]).await.unwrap();
                    assert_eq!(row.get::<_, String>(0), "Alice");
                    let row = client.query_one(&c, &[&i.to_string()]).await.unwrap();
                    assert_eq!(row.get::<_, String>(0), format!("{i}x"));
                }
                drop(a);
                // Closed on the client side; a new statement of the same text still works.
                let again = client.prepare("select $1::int + 1").await.unwrap();
                assert_eq!(
                    client
                        .query_one(&again, &[&1i32])
                        .await
                        .unwrap()
                        .get::<_, i32>(0),
                    2
                );
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let backends = direct(
        &stack,
        "select count(*) from pg_stat_activity where usename = 'gate_app' and application_name = ''",
    );
    assert!(
        backends.parse::<usize>().unwrap() <= 4,
        "{backends} backends"
    );
}

/// Twenty psycopg 3 clients at once, each preparing every statement on the server
/// (`prepare_threshold=0`), over two upstream connections.
const PSYCOPG_CLIENTS: &str = r#"
import sys, threading, psycopg
port = sys.argv[1]
errors, results = [], []
def client(i):
    try:
        with psycopg.connect(f"host=127.0.0.1 port={port} user=app password=app dbname=appdb",
                             prepare_threshold=0, autocommit=True) as conn:
            for n in range(10):
                row = conn.execute("select %s::int * 2, (select name from customers where id = %s)", (i + n, 1)).fetchone()
                assert row == ((i + n) * 2, "Alice"), row
            with conn.transaction():
                conn.execute("select pg_advisory_xact_lock(%s)", (i,))
                total = conn.execute("select count(*) from customers where id > %s", (0,)).fetchone()[0]
            results.append(total)
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
for t in threads: t.start()
for t in threads: t.join()
print(len(results), len(errors))
for e in errors[:3]: print(e)
"#;

#[test]
fn psycopg_clients_with_server_side_prepares_share_two_connections() {
    let stack = pooled(", max_connections: 2, acquire_timeout: 20s");
    let lines = python_lines(&["-c", PSYCOPG_CLIENTS, &stack.port.to_string()]);
    assert_eq!(lines.first().map(String::as_str), Some("20 0"), "{lines:?}");
    assert!(metric(&stack, "gate_connpool_prepared_hits_total") >= 20.0);
}

/// The value of the pool's series of metric `name`.
fn metric(stack: &Stack, name: &str) -> f64 {
    let (_, metrics) = http_get(stack.health_port, "/metrics");
    let series = format!("{name}{{resource=\"primary-db\"");
    metrics
        .lines()
        .find(|l| l.starts_with(&series))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
}

#[test]
fn a_statement_the_server_cannot_prepare_fails_like_postgres_and_the_client_goes_on() {
    let stack = pooled(", max_connections: 1");
    direct(
        &stack,
        "create table gone (a int); grant all on gone to gate_app",
    );
    let stack = &stack;
    with_tokio_postgres(stack, |client| async move {
        let err = client
            .prepare("select * from no_such_table")
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE),
            "{err}"
        );
        let gone = client.prepare("select a from gone").await.unwrap();
        assert!(client.query(&gone, &[]).await.unwrap().is_empty());
        // A statement whose table is dropped behind its back reports the server's error.
        direct(stack, "drop table gone");
        let err = client.query(&gone, &[]).await.unwrap_err();
        assert!(err.code().is_some(), "{err}");
        let rows = client.query("select $1::int", &[&7i32]).await.unwrap();
        assert_eq!(rows[0].get::<_, i32>(0), 7);
    });
}

#[test]
fn an_idle_connection_the_server_closed_is_replaced_between_transactions() {
    let stack = pooled(", max_connections: 2");
    let stack = &stack;
    with_tokio_postgres(stack, |client| async move {
        let first: i32 = client
            .query_one("select pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        // Every idle pooled backend is terminated behind Gate's back.
        direct(
            stack,
            "select count(pg_terminate_backend(pid)) from pg_stat_activity where usename = 'gate_app' and state = 'idle'",
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let second: i32 = client
            .query_one("select pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        assert_ne!(first, second);
    });
}

#[test]
fn discard_all_on_a_pinned_connection_makes_gate_prepare_again() {
    let stack = pooled(", max_connections: 1");
    with_tokio_postgres(&stack, |client| async move {
        let before = client.prepare("select $1::int * 3").await.unwrap();
        let row = client.query_one(&before, &[&2i32]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 6);
        // DISCARD pins the client and drops every statement on its connection, Gate's too.
        client.batch_execute("discard all").await.unwrap();
        let after = client.prepare("select $1::int * 3").await.unwrap();
        let row = client.query_one(&after, &[&3i32]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 9);
    });
}

#[test]
fn copy_in_and_out_keep_the_connection_until_done() {
    let stack = pooled(", max_connections: 1");
    direct(
        &stack,
        "create table copied (a int, b text); grant all on copied to gate_app",
    );
    let mut child = Command::new(PSQL)
        .env("PGPASSWORD", "app")
        .args([
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            &stack.port.to_string(),
        ])
        .args(["-U", "app", "-d", "appdb", "-c", "copy copied from stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"1\tone\n2\ttwo\n3\tthree\n\\.\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (lines, stderr) = psql_as(
        &stack,
        "reader",
        &[
            "copy (select b from copied order by a) to stdout",
            "select count(*) from copied",
        ],
    );
    assert_eq!(lines, ["one", "two", "three", "3"], "{stderr}");
}
