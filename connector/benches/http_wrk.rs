//! `make bench`: wrk against an nginx upstream serving a 1 KiB JSON array,
//! in one invocation: direct, through nginx `proxy_pass` (the peer, with
//! upstream keep-alive), through Gate (release build) with an allow-all
//! policy, and through Gate with a filter+mask policy. Reports RPS, p50/p99
//! and Gate's CPU-µs per request; then p99 at a constant 2,000 RPS (an
//! open-loop client here, latency measured from each request's scheduled
//! start) direct vs through Gate. Checks the targets.
#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark: a panic is the report

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use gate_testkit::{Nginx, NginxOptions, free_port};
use support::{Proc, all_stages, cpu_us, per_query, seconds, spawn_gate};

#[path = "support/hyper_floor.rs"]
mod hyper_floor;
mod support;

const AUTH: &str = "Authorization: Basic YXBwOmFwcA=="; // app:app

struct Run {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    requests: u64,
}

fn wrk(url: &str, auth: bool) -> Run {
    let mut cmd = Command::new("/usr/bin/wrk");
    cmd.args(["-t2", "-c16", "--latency", "-d"])
        .arg(format!("{}s", seconds()));
    if auth {
        cmd.args(["-H", AUTH]);
    }
    let out = cmd.arg(url).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "wrk failed: {text}");
    assert!(!text.contains("Non-2xx"), "errors from {url}: {text}");
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {text}"))
            .trim()
            .to_owned()
    };
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in {text}"));
    Run {
        rps: field("Requests/sec:").parse().unwrap(),
        p50_us: micros(&field("50%")),
        p99_us: micros(&field("99%")),
        requests,
    }
}

/// wrk's `812.00us`, `1.20ms`, `2.00s` in µs.
fn micros(text: &str) -> f64 {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e6)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().unwrap() * scale
}

/// p99 latency (µs) at a constant `rate` requests/s over `connections`
/// kept-alive connections, each latency counted from its scheduled start.
fn constant_rate(url: &str, auth: bool, rate: u64, secs: u32) -> f64 {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client: Client<_, Empty<bytes::Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let client = Arc::new(client);
        let uri: http::Uri = url.parse().unwrap();
        let total = rate * u64::from(secs);
        let interval = Duration::from_nanos(1_000_000_000 / rate);
        let start = tokio::time::Instant::now() + Duration::from_millis(50);
        let mut tasks = Vec::with_capacity(total as usize);
        for i in 0..total {
            let scheduled = start + interval * u32::try_from(i).unwrap();
            tokio::time::sleep_until(scheduled).await;
            let client = client.clone();
            let uri = uri.clone();
            tasks.push(tokio::spawn(async move {
                // A kept-alive connection the server closes as a request goes
                // out (nginx's keepalive_requests) is retried once on a new one.
                for attempt in 0..2 {
                    let mut request = http::Request::get(uri.clone());
                    if auth {
                        request = request.header("authorization", &AUTH["Authorization: ".len()..]);
                    }
                    match client.request(request.body(Empty::new()).unwrap()).await {
                        Ok(response) => {
                            assert!(response.status().is_success());
                            let _ = response.into_body().collect().await.unwrap();
                            break;
                        }
                        Err(e) if attempt == 0 => drop(e),
                        Err(e) => panic!("{uri}: {e}"),
                    }
                }
                scheduled.elapsed()
            }));
        }
        let mut latencies = Vec::with_capacity(tasks.len());
        for task in tasks {
            latencies.push(task.await.unwrap().as_secs_f64() * 1e6);
        }
        latencies.sort_by(f64::total_cmp);
        latencies[latencies.len() * 99 / 100]
    })
}

fn items() -> String {
    let mut items = Vec::new();
    let mut i = 0;
    while items.join(",").len() < 1000 {
        items.push(format!(
            r#"{{"id":{i},"org":"{}","email":"user{i}@example.com","ssn":"123-45-{i:04}"}}"#,
            if i % 4 == 3 { "globex" } else { "acme" }
        ));
        i += 1;
    }
    format!("[{}]", items.join(","))
}

fn start_gate(dir: &Path, upstream: u16) -> (Proc, u16) {
    let port = free_port().unwrap();
    let health = free_port().unwrap();
    let policy = dir.join("bench.rego");
    std::fs::write(
        &policy,
        r#"package bench
import rego.v1
default session := {"action": "allow"}
default pre_request := {"action": "allow"}
default post_request := {"action": "allow"}
post_request := {"action": "filter", "filters": [{"field": "org", "op": "eq", "value": "acme"}],
  "masks": [{"column": "email", "strategy": "email"}, {"column": "ssn", "strategy": "redact"}]} if {
	input.resource.name == "masked"
}
"#,
    )
    .unwrap();
    let yaml = format!(
        "listen_addr: \"127.0.0.1:{port}\"\nhealth_addr: \"127.0.0.1:{health}\"\n\
         identities: [{{name: app, password: app}}]\n\
         resources:\n  - {{name: plain, protocol: http, host: 127.0.0.1, port: {upstream}, host_names: [127.0.0.1]}}\n\
         \x20 - {{name: masked, protocol: http, host: 127.0.0.1, port: {upstream}, host_names: [localhost]}}\n\
         {}logging: {{level: warn}}\n",
        all_stages(&policy)
    );
    (spawn_gate(dir, &yaml, port), port)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Nginx::start(NginxOptions {
        files: vec![("items.json".into(), items())],
        ..Default::default()
    })
    .unwrap();
    let up = upstream.port();
    let peer = Nginx::start(NginxOptions {
        http_config: format!("upstream api {{ server 127.0.0.1:{up}; keepalive 32; }}"),
        server_config: "location / { proxy_pass http://api; proxy_http_version 1.1; proxy_set_header Connection \"\"; }".into(),
        ..Default::default()
    })
    .unwrap();
    let (gate, gate_port) = start_gate(dir.path(), up);
    let floor_port = hyper_floor::start(up);
    let path = "/items.json";
    // Warm every path (connections, pools).
    for url in [
        format!("http://127.0.0.1:{gate_port}{path}"),
        format!("http://localhost:{gate_port}{path}"),
    ] {
        let out = Command::new("curl")
            .args(["-sf", "-H", AUTH])
            .arg(&url)
            .output()
            .unwrap();
        assert!(out.status.success(), "{url} does not answer through Gate");
    }
    println!(
        "http: wrk -t2 -c16 for {}s, 1 KiB JSON ({} bytes) from nginx",
        seconds(),
        items().len()
    );
    let direct = wrk(&format!("{}{path}", upstream.base_url()), false);
    let proxied = wrk(&format!("{}{path}", peer.base_url()), false);
    let floor = wrk(&format!("http://127.0.0.1:{floor_port}{path}"), false);
    let before = cpu_us(gate.0.id());
    let allow = wrk(&format!("http://127.0.0.1:{gate_port}{path}"), true);
    let allow_cpu = per_query(before, cpu_us(gate.0.id()), allow.requests);
    let before = cpu_us(gate.0.id());
    let masked = wrk(&format!("http://localhost:{gate_port}{path}"), true);
    let masked_cpu = per_query(before, cpu_us(gate.0.id()), masked.requests);
    println!(
        "  {:<22} {:>10} {:>10} {:>10} {:>14}",
        "", "RPS", "p50 µs", "p99 µs", "gate CPU-µs/req"
    );
    for (who, run, cpu) in [
        ("direct", &direct, None),
        ("nginx proxy_pass", &proxied, None),
        ("bare hyper proxy", &floor, None),
        ("gate allow-all", &allow, Some(allow_cpu)),
        ("gate filter+mask", &masked, Some(masked_cpu)),
    ] {
        let cpu = cpu.map_or("-".to_owned(), |(t, u, s)| {
            format!("{t:.1} ({u:.1}u+{s:.1}s)")
        });
        println!(
            "  {who:<22} {:>10.0} {:>10.0} {:>10.0} {cpu:>14}",
            run.rps, run.p50_us, run.p99_us
        );
    }
    let rate = 2000;
    let secs = seconds().min(5);
    let direct_p99 = constant_rate(&format!("{}{path}", upstream.base_url()), false, rate, secs);
    let gate_p99 = constant_rate(
        &format!("http://127.0.0.1:{gate_port}{path}"),
        true,
        rate,
        secs,
    );
    println!("  p99 at a constant {rate} RPS: direct {direct_p99:.0} µs, gate {gate_p99:.0} µs");

    let mut failed = false;
    let mut check = |name: &str, ok: bool, detail: String| {
        println!(
            "  target {name}: {} ({detail})",
            if ok { "PASS" } else { "FAIL" }
        );
        failed |= !ok;
    };
    let r = allow.rps / proxied.rps;
    check(
        "gate allow-all ≥ 1.0× nginx proxy_pass",
        r >= 1.0,
        format!("{r:.2}×"),
    );
    println!(
        "  (bare hyper proxy, the floor of the libraries Gate's HTTP path is built on: {:.2}× nginx; gate allow-all {:.2}× of it)",
        floor.rps / proxied.rps,
        allow.rps / floor.rps
    );
    let r = masked.rps / proxied.rps;
    check(
        "gate filter+mask ≥ 0.7× nginx proxy_pass",
        r >= 0.7,
        format!("{r:.2}×"),
    );
    let added = gate_p99 - direct_p99;
    check(
        "p99 at 2,000 RPS ≤ direct + 300 µs",
        added <= 300.0,
        format!("+{added:.0} µs"),
    );
    drop(gate);
    drop(peer);
    drop(upstream);
    if failed {
        std::process::exit(1);
    }
}
