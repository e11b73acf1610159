//! MySQL transparency: with an allow-all policy and no masks, Gate is
//! invisible. The same statements through mysql-connector-python (text and
//! binary protocol) and PyMySQL give identical transcripts through Gate and
//! direct to the same MariaDB, and a large result streams through Gate.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{GateRun, all_stages, mariadb_shop, python_lines, start_gate};
use gate_testkit::MariaDb;

const ALLOW_ALL: &str = "package allow_all\nimport rego.v1\nsession := {\"action\": \"allow\"}\npre_request := {\"action\": \"allow\"}\npost_request := {\"action\": \"allow\"}\n";

struct Stack {
    _gate: GateRun,
    port: u16,
    db: MariaDb,
    _dir: tempfile::TempDir,
}

fn start() -> Stack {
    let db = mariadb_shop(Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("allow_all.rego");
    std::fs::write(&policy, ALLOW_ALL).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let yaml = format!(
        "identities:\n  - {{name: app, password: app-pw}}\n\
         resources:\n  - {{name: orders-db, protocol: mysql, host: 127.0.0.1, port: {}, database: shop, username: gate_app, password: gate-app-pw, listen_port: {port}}}\n{}",
        db.port(),
        all_stages(&policy),
    );
    let gate = start_gate(&yaml, None, vec![listener]);
    Stack {
        _gate: gate,
        port,
        db,
        _dir: dir,
    }
}

fn transcript(port: u16, user: &str, password: &str) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/mysql_transparency.py"
    );
    python_lines(&[script, &port.to_string(), user, password, "shop"]).join("\n")
}

/// The transcript line tagged `#n`.
fn line(transcript: &str, needle: &str) -> bool {
    transcript.lines().any(|l| l.contains(needle))
}

#[test]
fn the_statements_give_identical_results_through_gate_and_direct() {
    let stack = start();
    let direct = transcript(stack.db.port(), "gate_app", "gate-app-pw");
    let gate = transcript(stack.port, "app", "app-pw");

    // What the transcript covers, so that two identical broken runs cannot pass.
    let statements: usize = direct
        .lines()
        .find_map(|l| l.strip_prefix("statements "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(statements >= 50, "the suite has {statements} statements");
    for needle in [
        "Decimal('12345678901234.123456')",
        "datetime.datetime(2024, 2, 29, 23, 59, 59, 999999)",
        "b'\\x00\\xff\\x10\\x80ab\\xfe'", // BLOB bytes
        "b'\\x02\\xab'",                  // BIT(10) b'1010101011' (PyMySQL)
        "'b', ['x', 'z']",                // ENUM, SET (mysql-connector)
        "'{\"a\": [1, 2.5, \"three\", null, true], \"b\": {\"c\": \"ü\"}}'", // JSON
        "('Warning', 1365, 'Division by 0')", // SHOW WARNINGS
        "ct error 1146 '42S02' \"Table 'shop.no_such_table' doesn't exist\"",
        "ct error 1062 '23000' \"Duplicate entry '1' for key 'PRIMARY'\"",
        "ct error 1644 '45000' 'custom failure'",
        "ps error 1146 '42S02'",
        "ct rows 2 [('id', 3, 0, 20483)]", // third result of a multi-statement
        "py 2 [('id', 3, 11, 11, 0, False), ('v', 253, 80, 80, 0, True)] ((5, 'FIVE'),)",
        "ct status True", // inside a transaction (server status flags)
        "Rows matched: 1  Changed: 1  Warnings: 0",
        "ps rows [('b', 254, 0, 1), ('HEX(?)', 253, 1, 0)] [(b'\\x00\\xff\\x80binary\\x00', '0102')]",
        "datetime.timedelta(days=-2, seconds=82800, microseconds=5)",
        "cmd after reset [(None,)]", // COM_RESET_CONNECTION
        "[(90000, '9dd4e461268c8034f5c8564e155c67a6')]", // COM_STMT_SEND_LONG_DATA
        "cmd fetch ([(7, 'r7'), (8, 'r8'), (9, 'r9'), (10, 'r10')], {'warning_count': 0, 'status_flag': 130})", // COM_STMT_FETCH to the last row
        "bulk 100000 ",
    ] {
        assert!(
            line(&direct, needle),
            "direct transcript lacks {needle}:\n{direct}"
        );
    }
    assert!(
        direct.lines().count() > 150,
        "every statement printed: {direct}"
    );

    let differing: Vec<(&str, &str)> = gate
        .lines()
        .zip(direct.lines())
        .filter(|(g, d)| g != d)
        .take(5)
        .collect();
    assert!(
        differing.is_empty() && gate.lines().count() == direct.lines().count(),
        "transcripts differ (gate {} lines, direct {}): first differences (gate, direct): {differing:#?}",
        gate.lines().count(),
        direct.lines().count()
    );
}

/// The resident memory of this process (Gate runs in it), in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

const BIG: &str = r#"
import hashlib, sys, pymysql, pymysql.cursors
c = pymysql.connect(host="127.0.0.1", port=int(sys.argv[1]), user=sys.argv[2], password=sys.argv[3],
    database="shop", cursorclass=pymysql.cursors.SSCursor)
cur = c.cursor()
cur.execute("SELECT seq, REPEAT(CHAR(65 + seq % 26), 1000) FROM seq_1_to_100000")
digest, rows, size = hashlib.sha256(), 0, 0
for row in cur:
    digest.update(row[1]); rows += 1; size += len(row[1])
print(rows, size, digest.hexdigest())
"#;

#[test]
fn a_100k_row_result_streams_through_gate() {
    let stack = start();
    let direct = python_lines(&[
        "-c",
        BIG,
        &stack.db.port().to_string(),
        "gate_app",
        "gate-app-pw",
    ]);
    assert!(direct[0].starts_with("100000 100000000 "), "{direct:?}");

    let baseline = rss_kib();
    let peak = Arc::new(Mutex::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let now = rss_kib();
                let mut peak = peak.lock().unwrap();
                *peak = (*peak).max(now);
                drop(peak);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    let through_gate = python_lines(&["-c", BIG, &stack.port.to_string(), "app", "app-pw"]);
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!(through_gate, direct, "the same rows through Gate");
    let grown = peak.lock().unwrap().saturating_sub(baseline);
    assert!(
        grown < 32 * 1024,
        "Gate's memory grew by {grown} KiB while relaying a 100 MB result: it must stream"
    );
}
