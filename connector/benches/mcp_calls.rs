//! `make bench`: `tools/call` of a trivial tool (`echo`) at 1 and 8 concurrent clients through
//! Gate (release build, an MCP resource with no policy work beyond the default allow) vs direct
//! to the same upstream, the official Python SDK's server (`connector/tests/mcp_peers/server.py`,
//! stateless JSON). Reports calls/s, p50/p99, the p50 Gate adds, and Gate's CPU-µs per call
//! (`/proc/<pid>/stat`), and checks the target (p50 added ≤ 0.5 ms). Needs the test venv.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark: a panic is the report

use std::process::Command;

use gate_testkit::{free_port, venv_python};
use support::{Proc, cpu_us, per_query, seconds, spawn_connector, spawn_on, wait_port};

mod support;

/// N processes, each on one keep-alive connection, calling `echo` for SECONDS; prints the
/// per-call latencies in µs, one list per process, as JSON.
const LOAD: &str = r#"
import base64, http.client, json, multiprocessing, sys, time
port, clients, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
           "MCP-Protocol-Version": "2025-06-18",
           "Authorization": "Basic " + base64.b64encode(b"app:app").decode()}
def call(conn, i):
    body = json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                       "params": {"name": "echo", "arguments": {"text": "hi"}}})
    conn.request("POST", "/mcp", body, HEADERS)
    reply = conn.getresponse()
    data = reply.read()
    assert reply.status == 200 and b'"hi"' in data, (reply.status, data)
def run(_):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    call(conn, 0)
    lat, i, end = [], 1, time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.perf_counter_ns()
        call(conn, i)
        lat.append((time.perf_counter_ns() - t) // 1000)
        i += 1
    return lat
with multiprocessing.Pool(clients) as pool:
    print(json.dumps([x for lat in pool.map(run, range(clients)) for x in lat]))
"#;

/// (calls, p50 µs, p99 µs) of one run against `port`.
fn load(port: u16, clients: u32) -> (usize, f64, f64) {
    let out = Command::new(venv_python().unwrap())
        .arg("-c")
        .arg(LOAD)
        .args([
            &port.to_string(),
            &clients.to_string(),
            &seconds().to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lat: Vec<u64> = serde_json::from_slice(&out.stdout).unwrap();
    lat.sort_unstable();
    let at = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize] as f64;
    (lat.len(), at(0.50), at(0.99))
}

fn main() {
    let upstream = free_port().unwrap();
    let server = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp_peers/server.py");
    let _server: Proc = spawn_on(
        Command::new(venv_python().unwrap()).arg(server).args([
            &upstream.to_string(),
            "json",
            "stateless",
        ]),
        upstream,
    );
    let dir = tempfile::tempdir().unwrap();
    let listen = free_port().unwrap();
    let body = format!(
        "default_action: allow\nidentities: [{{name: app, password: app}}]\n\
         resources:\n  - {{name: tools, protocol: mcp, host: 127.0.0.1, port: {upstream}, listen_port: {listen}}}\n"
    );
    let (gate, _) = spawn_connector(dir.path(), &body);
    wait_port(listen);
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12} {:>16}",
        "tools/call",
        "direct/s",
        "gate/s",
        "d p50 ms",
        "g p50 ms",
        "d p99 ms",
        "g p99 ms",
        "p50 added",
        "gate CPU-µs/call"
    );
    let mut failed = false;
    for clients in [1u32, 8] {
        let (direct, d50, d99) = load(upstream, clients);
        let before = cpu_us(gate.0.id());
        let (through, g50, g99) = load(listen, clients);
        let (cpu, user, system) = per_query(before, cpu_us(gate.0.id()), through as u64);
        let per_second = |calls: usize| calls as f64 / f64::from(seconds());
        let added_ms = (g50 - d50) / 1000.0;
        println!(
            "{:<12} {:>10.0} {:>10.0} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>12.3} {:>6.1} ({user:.0}u+{system:.0}s)",
            format!("{clients} client(s)"),
            per_second(direct),
            per_second(through),
            d50 / 1000.0,
            g50 / 1000.0,
            d99 / 1000.0,
            g99 / 1000.0,
            added_ms,
            cpu
        );
        let ok = added_ms <= 0.5;
        println!(
            "  target p50 added ≤ 0.5 ms at {clients} client(s): {} ({added_ms:.3} ms)",
            if ok { "PASS" } else { "FAIL" }
        );
        failed |= !ok;
    }
    drop(gate);
    assert!(!failed, "an MCP benchmark target was missed");
}
