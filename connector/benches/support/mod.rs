//! What the benchmarks share: process CPU readings, a child killed on drop,
//! waiting for a port, and the run length (`GATE_BENCH_SECONDS`).
#![allow(dead_code, unreachable_pub)]

use std::process::Child;
use std::time::{Duration, Instant};

/// Seconds each measured run lasts (`GATE_BENCH_SECONDS`, default 8).
pub fn seconds() -> u32 {
    std::env::var("GATE_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8)
}

/// CPU-µs (user + system) of this process's waited-for children so far.
pub fn children_cpu_us() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let us = |i: usize| fields[i].parse::<u64>().unwrap() * 1_000_000 / 100; // USER_HZ is 100 on Linux
    us(13) + us(14)
}

/// (utime, stime) of a process, in microseconds.
pub fn cpu_us(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let us = |i: usize| fields[i].parse::<u64>().unwrap() * 1_000_000 / 100; // USER_HZ is 100 on Linux
    (us(11), us(12))
}

/// CPU-µs per query of a process between two `cpu_us` readings: (user + system, user, system).
pub fn per_query(before: (u64, u64), after: (u64, u64), queries: u64) -> (f64, f64, f64) {
    let q = queries.max(1) as f64;
    let user = (after.0 - before.0) as f64 / q;
    let system = (after.1 - before.1) as f64 / q;
    (user + system, user, system)
}

pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn wait_port(port: u16) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "port {port} never opened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
