//! `make bench`: a pymongo find-by-id loop at 1 and 8 clients through Gate
//! (release build, example.rego active, so every reply is masked) vs direct
//! against the same `nx-27017`, in one invocation on loopback. Reports
//! ops/s and Gate's CPU-µs per op, and checks the target (≤ 60 µs). Needs
//! the test venv (`scripts/test-venv.sh`).
#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark: a panic is the report

use std::path::Path;
use std::process::Command;

use gate_testkit::{Nx27017, venv_python};
use support::{Proc, cpu_us, example_policies, per_query, seconds, spawn_connector};

mod support;

/// N processes, each with its own client, calling `find_one` by random id for `SECONDS`.
const LOAD: &str = r#"
import multiprocessing, random, sys, time, pymongo
uri, clients, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def run(_):
    db = pymongo.MongoClient(uri).shop
    db.customers.find_one({"_id": 1})
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        assert db.customers.find_one({"_id": random.randint(1, 1000)}) is not None
        n += 1
    return n
with multiprocessing.Pool(clients) as pool:
    print(sum(pool.map(run, range(clients))))
"#;

const SEED: &str = r#"
import sys, pymongo
db = pymongo.MongoClient(sys.argv[1]).shop
db.customers.insert_many([{"_id": i, "name": f"user{i}", "email": f"user{i}@example.com"} for i in range(1, 1001)])
"#;

fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new(venv_python().unwrap())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn start_gate(dir: &Path, upstream: u16) -> (Proc, u16) {
    let body = format!(
        "identities: [{{name: app, password: app}}]\n\
         resources:\n  - {{name: events-mongo, protocol: mongodb, host: 127.0.0.1, port: {upstream}, database: shop}}\n{}",
        example_policies()
    );
    spawn_connector(dir, &body)
}

fn main() {
    let nx = Nx27017::start().unwrap();
    let direct_uri = format!("mongodb://127.0.0.1:{}/?directConnection=true", nx.port());
    python(SEED, &[&direct_uri]);
    let dir = tempfile::tempdir().unwrap();
    let (gate, gate_port) = start_gate(dir.path(), nx.port());
    let gate_uri = format!(
        "mongodb://app:app@127.0.0.1:{gate_port}/?directConnection=true&authMechanism=SCRAM-SHA-256"
    );
    let secs = seconds().to_string();
    println!(
        "{:<16} {:>12} {:>12} {:>8} {:>20}",
        "find-by-id", "direct op/s", "gate op/s", "ratio", "gate CPU-µs/op"
    );
    let mut failed = false;
    for clients in [1u32, 8] {
        let n = clients.to_string();
        let direct: f64 = python(LOAD, &[&direct_uri, &n, &secs]).parse().unwrap();
        let before = cpu_us(gate.0.id());
        let through: f64 = python(LOAD, &[&gate_uri, &n, &secs]).parse().unwrap();
        let (cpu, user, system) = per_query(before, cpu_us(gate.0.id()), through as u64);
        let per_second = |ops: f64| ops / f64::from(seconds());
        println!(
            "{:<16} {:>12.0} {:>12.0} {:>8.2} {:>10.1} ({user:.0}u+{system:.0}s)",
            format!("{clients} client(s)"),
            per_second(direct),
            per_second(through),
            through / direct.max(1.0),
            cpu
        );
        let ok = cpu <= 60.0;
        println!(
            "  target gate CPU ≤ 60 µs per op at {clients} client(s): {} ({cpu:.1} µs)",
            if ok { "PASS" } else { "FAIL" }
        );
        failed |= !ok;
    }
    drop(gate);
    assert!(!failed, "a MongoDB benchmark target was missed");
}
