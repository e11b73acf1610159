//! `make bench`: OpenSSH through Gate (release build, an allow-all policy evaluated for every
//! request) vs straight to the same sshd, in one invocation on loopback: sequential `ssh host
//! true` execs (`GATE_BENCH_SSH_EXECS`, default 1000) for the added latency per exec (target
//! ≤ 5 ms), and an `scp` upload of a file (`GATE_BENCH_SCP_MIB`, default 256) for the throughput
//! ratio (target ≥ 0.8).
#![allow(clippy::unwrap_used, clippy::print_stdout)] // a benchmark: a panic is the report

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gate_testkit::{Sshd, SshdOptions};
use support::spawn_connector;

mod support;

const ALLOW: &str = "package gate.bench_ssh\n\nimport rego.v1\n\ndefault session := {\"action\": \"allow\"}\n\ndefault pre_request := {\"action\": \"allow\"}\n";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Client options shared by ssh and scp (`port_flag` is `-p` or `-P`).
fn options(key: &Path, known_hosts: &Path, port_flag: &str, port: u16) -> Vec<String> {
    let mut args: Vec<String> = [
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.push("-o".into());
    args.push(format!("UserKnownHostsFile={}", known_hosts.display()));
    args.extend([
        "-o".into(),
        "StrictHostKeyChecking=no".into(),
        "-o".into(),
        "LogLevel=ERROR".into(),
    ]);
    args.extend([
        "-i".into(),
        key.display().to_string(),
        port_flag.into(),
        port.to_string(),
    ]);
    args
}

struct Target {
    key: PathBuf,
    port: u16,
    user: String,
}

fn execs(target: &Target, known_hosts: &Path, n: u64) -> Duration {
    let started = Instant::now();
    for _ in 0..n {
        let status = Command::new("ssh")
            .args(options(&target.key, known_hosts, "-p", target.port))
            .arg(format!("{}@127.0.0.1", target.user))
            .arg("true")
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
    started.elapsed()
}

fn upload(target: &Target, known_hosts: &Path, file: &Path, to: &Path) -> Duration {
    let started = Instant::now();
    let status = Command::new("scp")
        .args(options(&target.key, known_hosts, "-P", target.port))
        .arg(file)
        .arg(format!("{}@127.0.0.1:{}", target.user, to.display()))
        .status()
        .unwrap();
    assert!(status.success());
    started.elapsed()
}

fn main() {
    let execs_n = env_number("GATE_BENCH_SSH_EXECS", 1000);
    let mib = env_number("GATE_BENCH_SCP_MIB", 256);
    let sshd = Sshd::start(SshdOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("alice");
    let alice = gate_testkit::ssh_keygen(&key).unwrap();
    let known = dir.path().join("known_hosts");
    std::fs::write(&known, sshd.known_hosts_line() + "\n").unwrap();
    let policy = dir.path().join("allow.rego");
    std::fs::write(&policy, ALLOW).unwrap();
    let body = format!(
        "ssh: {{host_key_file: '{}'}}\n\
         identities: [{{name: alice, ssh_keys: ['{}']}}]\n\
         resources:\n  - {{name: web1, protocol: ssh, host: 127.0.0.1, port: {}, username: root, \
         private_key_file: '{}', known_hosts_file: '{}'}}\n\
         policies:\n  - {{path: '{p}', stage: session}}\n  - {{path: '{p}', stage: pre_request}}\n",
        dir.path().join("host_key").display(),
        alice.trim(),
        sshd.port(),
        sshd.client_key().display(),
        known.display(),
        p = policy.display(),
    );
    let (gate, gate_port) = spawn_connector(dir.path(), &body);
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let direct = Target {
        key: sshd.client_key().to_owned(),
        port: sshd.port(),
        user,
    };
    let through = Target {
        key,
        port: gate_port,
        user: "alice@web1".into(),
    };
    let client_known = dir.path().join("client_known_hosts");

    // Warm both paths (host keys learnt, caches filled).
    execs(&direct, &client_known, 3);
    execs(&through, &client_known, 3);
    let d = execs(&direct, &client_known, execs_n);
    let g = execs(&through, &client_known, execs_n);
    let per = |t: Duration| t.as_secs_f64() * 1000.0 / execs_n as f64;
    let added = per(g) - per(d);
    println!(
        "{:<24} {:>12} {:>12} {:>14}",
        "ssh host true", "direct ms", "gate ms", "added ms/exec"
    );
    println!(
        "{:<24} {:>12.2} {:>12.2} {:>14.2}",
        format!("{execs_n} sequential"),
        per(d),
        per(g),
        added
    );
    let latency_ok = added <= 5.0;
    println!(
        "  target added latency ≤ 5 ms per exec: {} ({added:.2} ms)",
        verdict(latency_ok)
    );

    let file = dir.path().join("payload.bin");
    let chunk: Vec<u8> = (0..1024 * 1024)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    {
        use std::io::Write as _;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for _ in 0..mib {
            out.write_all(&chunk).unwrap();
        }
    }
    let remote = tempfile::tempdir().unwrap();
    let d = upload(
        &direct,
        &client_known,
        &file,
        &remote.path().join("direct.bin"),
    );
    let g = upload(
        &through,
        &client_known,
        &file,
        &remote.path().join("gate.bin"),
    );
    let rate = |t: Duration| mib as f64 / t.as_secs_f64();
    let ratio = rate(g) / rate(d);
    println!(
        "{:<24} {:>12} {:>12} {:>14}",
        "scp upload", "direct MiB/s", "gate MiB/s", "ratio"
    );
    println!(
        "{:<24} {:>12.1} {:>12.1} {:>14.2}",
        format!("{mib} MiB"),
        rate(d),
        rate(g),
        ratio
    );
    let throughput_ok = ratio >= 0.8;
    println!(
        "  target scp throughput ≥ 0.8× direct: {} ({ratio:.2}×)",
        verdict(throughput_ok)
    );
    assert_eq!(
        std::fs::metadata(remote.path().join("gate.bin"))
            .unwrap()
            .len(),
        mib * 1024 * 1024
    );
    drop(gate);
    assert!(
        latency_ok && throughput_ok,
        "an SSH benchmark target was missed"
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}
