//! Gate against a scripted MongoDB upstream (`tests/data/mongo_scripted_upstream.py`,
//! an independent implementation): Gate's own SCRAM-SHA-256 login upstream
//! as the resource's user, zlib, snappy and zstd replies masked, a reply Gate
//! cannot decode refused while masks apply (fail closed), exhaust getMore
//! streams masked reply by reply, a wrong upstream password, and a
//! transaction passing through with its session fields.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::mongo::through_gate;
use common::{example_policy, repo, start_gate};
use gate_testkit::venv_python;

/// The scripted upstream; killed on drop.
struct Scripted {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scripted() -> Scripted {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("commands.log");
    let mut child = Command::new(venv_python().unwrap())
        .arg(repo().join("connector/tests/data/mongo_scripted_upstream.py"))
        .arg("0")
        .arg(&log)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().strip_prefix("ready ").unwrap().parse().unwrap();
    Scripted {
        child,
        port,
        log,
        _dir: dir,
    }
}

/// Gate in front of `upstream`, logging in as gate_app with `password`; the resource's own port.
fn gate(upstream: &Scripted, password: &str) -> (common::GateRun, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let yaml = format!(
        "identities:\n  - {{name: app, password: app-pw}}\n\
         resources:\n  - {{name: scripted, protocol: mongodb, host: 127.0.0.1, port: {}, database: shop, \
         username: gate_app, password: {password}, auth_source: admin, listen_port: {port}}}\n{}",
        upstream.port,
        example_policy()
    );
    (start_gate(&yaml, None, vec![listener]), port)
}

#[test]
fn gate_logs_in_upstream_and_masks_compressed_and_exhaust_replies() {
    let upstream = scripted();
    let (gate_run, port) = gate(&upstream, "upstream-pw");
    let out = through_gate(
        port,
        "app",
        "app-pw",
        "",
        "print([d['email'] for d in db.plain.find()])\n\
         print([d['email'] for d in db.zlib.find()])\n\
         print([d['email'] for d in db.snappy.find()])\n\
         print([d['email'] for d in db.zstd.find()])\n\
         try:\n    db.corrupt.find_one()\nexcept pymongo.errors.OperationFailure as e:\n    print(e.code, e.details['errmsg'])\n\
         print([d['email'] for d in db.exhaust.find(cursor_type=pymongo.CursorType.EXHAUST, batch_size=2)])",
    );
    let lines: Vec<&str> = out.lines().collect();
    let masked = "'*************.com'";
    assert_eq!(lines[0], format!("[{masked}, {masked}]"), "{out}");
    assert_eq!(lines[1], format!("[{masked}, {masked}]"), "{out}");
    assert_eq!(lines[2], format!("[{masked}, {masked}]"), "{out}");
    assert_eq!(lines[3], format!("[{masked}, {masked}]"), "{out}");
    assert_eq!(
        lines[4],
        "17 Gate cannot inspect the reply (upstream protocol error: malformed snappy data); refused while masks apply",
        "{out}"
    );
    assert_eq!(lines[5], format!("[{}]", [masked; 6].join(", ")), "{out}");
    // Gate authenticated upstream itself, before any command reached it.
    // Gate's hello is capped by the upstream's maxWireVersion (21 here).
    let again = through_gate(
        port,
        "app",
        "app-pw",
        "",
        "print(client.admin.command('hello')['maxWireVersion'])\nprint(db.plain.find_one()['_id'])",
    );
    assert_eq!(again, "21\n1\n");
    let log = std::fs::read_to_string(&upstream.log).unwrap();
    // The second client reused the first one's pooled upstream connection: one login.
    assert_eq!(log.matches("saslStart").count(), 1, "{log}");
    assert!(log.contains("saslStart 1 authed=False"), "{log}");
    assert!(log.contains("find 'plain' authed=True"), "{log}");
    assert!(
        log.lines()
            .filter(|l| !l.starts_with("hello") && !l.starts_with("sasl"))
            .all(|l| l.contains("authed=True")),
        "{log}"
    );
    let (_, metrics) = common::http_get(gate_run.health_port, "/metrics");
    for series in [
        "gate_request_duration_seconds_count{protocol=\"mongodb\",resource=\"scripted\"}",
        "gate_connpool_active_connections{resource=\"scripted\"",
        "gate_sessions_total{protocol=\"mongodb\"",
    ] {
        assert!(metrics.contains(series), "{series}\n{metrics}");
    }
}

#[test]
fn a_wrong_upstream_password_is_a_clear_client_error() {
    let upstream = scripted();
    let (_gate, port) = gate(&upstream, "wrong");
    let out = through_gate(
        port,
        "app",
        "app-pw",
        "",
        "try:\n    db.plain.find_one()\nexcept pymongo.errors.OperationFailure as e:\n    print(e.code, e.details['errmsg'])",
    );
    assert_eq!(
        out.trim(),
        "6 could not connect to resource \"scripted\"",
        "{out}"
    );
}

#[test]
fn a_transaction_reaches_the_upstream_with_its_session_fields() {
    let upstream = scripted();
    let (_gate, port) = gate(&upstream, "upstream-pw");
    let out = through_gate(
        port,
        "app",
        "app-pw",
        "",
        "with client.start_session() as s:\n    with s.start_transaction():\n        db.orders.insert_one({'_id': 1}, session=s)\nprint('committed')",
    );
    assert_eq!(out.trim(), "committed");
    let log = std::fs::read_to_string(&upstream.log).unwrap();
    let insert = log.find("insert 'orders' authed=True txn=True").unwrap();
    let commit = log
        .find("commitTransaction 1 authed=True txn=True")
        .unwrap();
    assert!(insert < commit, "{log}");
}
