//! Health and metrics: `/healthz`, `/readyz`, the zero-valued series of a fresh connector, and
//! a `/metrics` scrape after known traffic; `promtool check metrics` accepts every scrape.
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

/// `promtool check metrics` finds no parse error and no lint problem.
fn promtool_accepts(metrics: &str) {
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (package prometheus; `make deps` installs it)");
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
fn a_fresh_connector_exports_its_resources_series_at_zero() {
    let stack = start(PgAuth::Trust, &example_policy());
    let (code, metrics) = http_get(stack.health_port, "/metrics");
    assert_eq!(code, "200");
    promtool_accepts(&metrics);
    let pool = format!(
        "resource=\"primary-db\",upstream=\"127.0.0.1:{}\"",
        stack.pg.port()
    );
    let r = "protocol=\"postgres\",resource=\"primary-db\"";
    for series in [
        format!("gate_connpool_active_connections{{{pool}}}"),
        format!("gate_connpool_waiters{{{pool}}}"),
        format!("gate_connpool_exhausted_total{{{pool}}}"),
        format!("gate_connpool_wait_duration_seconds_count{{{pool}}}"),
        format!("gate_connpool_wait_duration_seconds_bucket{{{pool},le=\"+Inf\"}}"),
        format!("gate_request_duration_seconds_count{{{r}}}"),
        format!("gate_request_duration_seconds_bucket{{{r},le=\"0.005\"}}"),
        format!("gate_sessions_total{{{r},outcome=\"ok\"}}"),
    ] {
        assert_eq!(sample(&metrics, &series), 0.0, "{series}");
    }
    assert!(metrics.contains("# TYPE gate_sessions_total counter\n"));
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

    promtool_accepts(&metrics);

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

/// A recording counts as started and its bytes as written, in a scrape promtool accepts.
#[test]
fn recordings_are_counted() {
    use gate_connector::recording::{RecordingMeta, Recordings};
    let dir = tempfile::tempdir().unwrap();
    let metrics = std::sync::Arc::new(gate_connector::metrics::Metrics::default());
    let recordings = Recordings::new(dir.path())
        .unwrap()
        .with_metrics(std::sync::Arc::clone(&metrics));
    let meta = RecordingMeta {
        session_id: "s".into(),
        resource: "bastion".into(),
        identity: "alice".into(),
        protocol: "ssh",
        width: 80,
        height: 24,
        command: None,
        term: None,
        env: Default::default(),
    };
    let mut recorder = recordings.start(meta).unwrap().unwrap();
    let file = dir.path().join(format!("{}.cast", recorder.id()));
    recorder.output(&[b'x'; 100_000]);
    recorder.output(b"done\r\n");
    recorder.finish(Some(0));
    let text = metrics.render();
    let labels = r#"{protocol="ssh",resource="bastion"}"#;
    assert_eq!(
        sample(&text, &format!("gate_recordings_started_total{labels}")),
        1.0
    );
    let size = std::fs::metadata(file).unwrap().len() as f64;
    assert_eq!(
        sample(&text, &format!("gate_recordings_bytes_total{labels}")),
        size
    );
    promtool_accepts(&text);
}
