//! Health and metrics: `/healthz`, `/readyz`, and a `/metrics` scrape after
//! known traffic that `promtool check metrics` accepts.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use gate_testkit::PgAuth;

fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no series {series} in\n{metrics}"))
        .parse()
        .unwrap()
}

#[test]
fn health_endpoints_answer() {
    let stack = start(PgAuth::Trust, &example_policy());
    assert_eq!(
        http_get(stack.health_port, "/healthz"),
        ("200".into(), "ok\n".into())
    );
    assert_eq!(
        http_get(stack.health_port, "/readyz"),
        ("200".into(), "ready\n".into())
    );
    assert_eq!(http_get(stack.health_port, "/nope").0, "404");
}

#[test]
fn a_real_scrape_passes_promtool_and_counts_the_traffic() {
    let stack = start(PgAuth::Trust, &example_policy());
    psql(
        &stack,
        "app",
        "app",
        "appdb",
        &[
            "select 1",
            "select email from customers",
            "drop table customers",
            // Same shape as the second (a select from customers): its
            // pre_request verdict is reused, not evaluated again.
            "select name from customers where id = 2",
        ],
    );
    psql(&stack, "app", "wrong", "appdb", &["select 1"]);
    let (code, metrics) = http_get(stack.health_port, "/metrics");
    assert_eq!(code, "200");

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let r = "protocol=\"postgres\",resource=\"primary-db\"";
    assert_eq!(
        sample(
            &metrics,
            &format!("gate_request_duration_seconds_count{{{r}}}")
        ),
        4.0
    );
    assert_eq!(
        sample(
            &metrics,
            &format!(
                "gate_policy_evaluation_duration_seconds_count{{{r},stage=\"pre_request\",action=\"block\"}}"
            )
        ),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            &format!(
                "gate_policy_evaluation_duration_seconds_count{{{r},stage=\"pre_request\",action=\"allow\"}}"
            )
        ),
        2.0
    );
    assert_eq!(
        sample(
            &metrics,
            &format!("gate_sessions_total{{{r},outcome=\"ok\"}}")
        ),
        1.0
    );
    // Reuses are added when the session ends, which may be just after psql exits.
    let reused = format!("gate_policy_verdicts_reused_total{{{r},stage=\"pre_request\"}}");
    let mut metrics = metrics;
    for _ in 0..50 {
        if metrics.contains(&reused) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        metrics = http_get(stack.health_port, "/metrics").1;
    }
    assert_eq!(sample(&metrics, &reused), 1.0);
    assert_eq!(
        sample(
            &metrics,
            "gate_sessions_total{protocol=\"postgres\",resource=\"-\",outcome=\"auth_failed\"}"
        ),
        1.0
    );
    let pool = format!(
        "resource=\"primary-db\",upstream=\"127.0.0.1:{}\"",
        stack.pg.port()
    );
    assert_eq!(
        sample(
            &metrics,
            &format!("gate_connpool_active_connections{{{pool}}}")
        ),
        0.0
    );
    assert_eq!(
        sample(
            &metrics,
            &format!("gate_connpool_exhausted_total{{{pool}}}")
        ),
        0.0
    );
}
