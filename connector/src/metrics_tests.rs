//! What [`super::Metrics::render`] writes: names, HELP and TYPE lines, escaping, cumulative buckets, gauges up and down, preregistered series.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::time::Duration;

use super::{FAMILIES, Metrics};

/// The lines of `text` that start with `prefix`.
fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn every_family_has_its_help_and_type_under_todays_name() {
    let m = Metrics::default();
    // prometheus-client leaves out families without a series.
    assert_eq!(m.render(), "");
    for (name, _, _) in FAMILIES {
        m.touch(name, &[("resource", "db")]);
    }
    let text = m.render();
    for (name, help, kind) in FAMILIES {
        let kind = format!("{kind:?}").to_ascii_lowercase();
        assert_eq!(
            lines(&text, &format!("# HELP {name} ")),
            [format!("# HELP {name} {help}")],
            "{text}"
        );
        assert_eq!(
            lines(&text, &format!("# TYPE {name} ")),
            [format!("# TYPE {name} {kind}")]
        );
    }
    let samples = text.lines().filter(|l| !l.starts_with('#'));
    for sample in samples {
        assert!(
            FAMILIES.iter().any(
                |(name, _, _)| sample.strip_prefix(name).is_some_and(|rest| [
                    "{", "_bucket{", "_sum{", "_count{"
                ]
                .iter()
                .any(|s| rest.starts_with(s)))
            ),
            "{sample} is not in a known family"
        );
    }
}

#[test]
fn histograms_are_cumulative_and_labels_escaped() {
    let m = Metrics::default();
    let l = [("protocol", "postgres"), ("resource", "db\"1\\\n")];
    m.observe(
        "gate_request_duration_seconds",
        &l,
        Duration::from_micros(80),
    );
    m.observe(
        "gate_request_duration_seconds",
        &l,
        Duration::from_millis(3),
    );
    m.observe("gate_request_duration_seconds", &l, Duration::from_secs(60));
    let text = m.render();
    let r = r#"protocol="postgres",resource="db\"1\\\n""#;
    let series = lines(&text, "gate_request_duration_seconds");
    let want: Vec<String> = [
        ("5e-05", 0),
        ("0.0001", 1),
        ("0.00025", 1),
        ("0.0005", 1),
        ("0.001", 1),
        ("0.0025", 1),
        ("0.005", 2),
        ("0.01", 2),
        ("0.025", 2),
        ("0.05", 2),
        ("0.1", 2),
        ("0.25", 2),
        ("0.5", 2),
        ("1", 2),
        ("2.5", 2),
        ("5", 2),
        ("10", 2),
        ("+Inf", 3),
    ]
    .iter()
    .map(|(le, n)| format!("gate_request_duration_seconds_bucket{{{r},le=\"{le}\"}} {n}"))
    .chain([
        format!("gate_request_duration_seconds_sum{{{r}}} 60.00308"),
        format!("gate_request_duration_seconds_count{{{r}}} 3"),
    ])
    .collect();
    assert_eq!(series, want, "{text}");
}

#[test]
fn counters_keep_their_total_names_count_whole_events_and_never_go_down() {
    let m = Metrics::default();
    let pool = [("resource", "db"), ("upstream", "h:1")];
    m.add("gate_connpool_exhausted_total", &pool, 2.0);
    m.add("gate_connpool_exhausted_total", &pool, -5.0);
    m.add("gate_connpool_exhausted_total", &pool, 0.4);
    m.add("gate_connpool_exhausted_total", &pool, 1.0);
    m.add("gate_audit_events_shipped_total", &[], 7.0);
    let text = m.render();
    assert_eq!(
        lines(&text, "gate_connpool_exhausted_total"),
        ["gate_connpool_exhausted_total{resource=\"db\",upstream=\"h:1\"} 3"]
    );
    assert_eq!(
        lines(&text, "gate_audit_events_shipped_total"),
        ["gate_audit_events_shipped_total 7"]
    );
}

#[test]
fn gauges_go_up_and_down_and_can_be_set() {
    let m = Metrics::default();
    let pool = [("resource", "db"), ("upstream", "h:1")];
    m.add("gate_connpool_active_connections", &pool, 1.0);
    m.add("gate_connpool_active_connections", &pool, 1.0);
    m.add("gate_connpool_active_connections", &pool, -1.0);
    m.set("gate_connpool_waiters", &pool, 4.0);
    m.add("gate_connpool_waiters", &pool, -1.0);
    let text = m.render();
    assert_eq!(
        lines(&text, "gate_connpool_active_connections{"),
        ["gate_connpool_active_connections{resource=\"db\",upstream=\"h:1\"} 1.0"]
    );
    assert_eq!(
        lines(&text, "gate_connpool_waiters{"),
        ["gate_connpool_waiters{resource=\"db\",upstream=\"h:1\"} 3.0"]
    );
}

#[test]
fn unknown_names_and_wrong_kinds_change_nothing() {
    let m = Metrics::default();
    let before = m.render();
    m.add("gate_no_such_metric", &[], 1.0);
    m.observe("gate_sessions_total", &[], Duration::from_secs(1));
    m.add("gate_request_duration_seconds", &[], 1.0);
    m.set("gate_sessions_total", &[], 1.0);
    assert_eq!(m.render(), before);
}

#[test]
fn preregistered_series_exist_with_zero_values() {
    let yaml = "resources:\n  - {name: primary-db, protocol: postgres, host: db.internal, port: 5433, database: appdb}\n";
    let config: gate_config::ConnectorConfig =
        gate_config::load_str("test.yaml", yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let m = Metrics::default();
    m.preregister(&config);
    m.preregister(&config); // twice is the same as once
    let text = m.render();
    let pool = r#"resource="primary-db",upstream="db.internal:5433""#;
    let request = r#"protocol="postgres",resource="primary-db""#;
    for line in [
        format!("gate_connpool_active_connections{{{pool}}} 0.0"),
        format!("gate_connpool_waiters{{{pool}}} 0.0"),
        format!("gate_connpool_exhausted_total{{{pool}}} 0"),
        format!("gate_connpool_wait_duration_seconds_bucket{{{pool},le=\"+Inf\"}} 0"),
        format!("gate_connpool_wait_duration_seconds_count{{{pool}}} 0"),
        format!("gate_request_duration_seconds_bucket{{{request},le=\"0.001\"}} 0"),
        format!("gate_request_duration_seconds_count{{{request}}} 0"),
        format!("gate_sessions_total{{{request},outcome=\"ok\"}} 0"),
    ] {
        assert_eq!(lines(&text, &line), [line.as_str()], "{text}");
    }
    // Without a control plane there is no audit shipping to count.
    assert_eq!(
        lines(&text, "gate_audit_events_shipped_total"),
        Vec::<&str>::new()
    );
    // Recording shipping is counted from the start when recordings go to a control plane.
    let yaml = "recording: {dir: /tmp/r}\ncontrol_plane: {url: 'http://cp:8080'}\n";
    let config: gate_config::ConnectorConfig =
        gate_config::load_str("test.yaml", yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let m = Metrics::default();
    m.preregister(&config);
    let text = m.render();
    for line in [
        "gate_recordings_shipped_total 0",
        "gate_recordings_ship_failures_total 0",
    ] {
        assert_eq!(lines(&text, line), [line], "{text}");
    }
}
