//! Every metric the Grafana dashboards and alert rules (`charts/gate/files/`) name is in a real
//! scrape of `gate-control` and `gate-connector` after some traffic; and the series the alerts
//! depend on move when their cause happens (a policy error, a connector registering).
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use gate_testkit::scrape::{monitored_names, sample_names};
use support::{World, wait_for};

/// Two values for one complete rule when the statement reads `boom`: an evaluation error.
const ERRS_ON_BOOM: &str = "package local\n\npre_request := {\"action\": \"allow\"}\n\npre_request := {\"action\": \"block\"} if {\n    input.query.tables[_] == \"boom\"\n}\n";

fn scrape(port: u16) -> String {
    let out = Command::new("curl")
        .args(["-s", "-m", "5"])
        .arg(format!("http://127.0.0.1:{port}/metrics"))
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// The value of the sample whose line starts with `series` (name and labels as rendered).
fn value(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_alerts_name_only_metrics_a_real_scrape_shows() {
    let mut world = World::new();
    world.start_connector(ERRS_ON_BOOM);
    wait_for(Duration::from_secs(10), "the connector online", || {
        let (_, list) = world.api("GET", "/api/v1/connectors", None);
        list["connectors"][0]["status"] == "online"
    });
    let client = world.client("app", "app-pw").await.unwrap();
    // The second statement of the same shape reuses the first one's verdict.
    for id in [1, 2] {
        let sql = format!("select name from items where id = {id}");
        client.simple_query(&sql).await.unwrap();
    }
    let refused = client.simple_query("select * from boom").await.unwrap_err();
    assert!(refused.as_db_error().is_some(), "{refused}");
    // Verdict reuses are counted when the session ends.
    drop(client);
    wait_for(
        Duration::from_secs(5),
        "the session's reuses counted",
        || scrape(world.health_port).contains("gate_policy_verdicts_reused_total{"),
    );

    let connector = scrape(world.health_port);
    let control = scrape(world.control_port);
    let mut scraped: BTreeSet<String> = sample_names(&connector);
    scraped.extend(sample_names(&control));
    let wanted = monitored_names("gate_").unwrap();
    let missing: Vec<_> = wanted
        .iter()
        .filter(|n| !n.starts_with("gate_operator_") && !scraped.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "dashboards/alerts name metrics no binary exports: {missing:?}\n--- connector\n{connector}\n--- control\n{control}"
    );
    assert!(wanted.len() > 20, "{wanted:?}");

    // The alerts' inputs move with their causes.
    assert_eq!(
        value(
            &connector,
            "gate_policy_evaluation_errors_total{protocol=\"postgres\",resource=\"primary-db\",stage=\"pre_request\"}"
        ),
        Some(1.0),
        "{connector}"
    );
    assert_eq!(
        value(&control, "gate_control_connectors{status=\"online\"}"),
        Some(1.0),
        "{control}"
    );
    assert_eq!(
        value(&control, "gate_control_deliveries{state=\"dead\"}"),
        Some(0.0),
        "{control}"
    );
    assert!(value(&control, "gate_control_snapshots_total{kind=\"full\"}").unwrap() >= 1.0);
    for transport in ["http", "grpc"] {
        let count = value(
            &control,
            &format!("gate_control_request_duration_seconds_count{{transport=\"{transport}\"}}"),
        );
        assert!(count.unwrap() >= 1.0, "{transport}: {control}");
    }
}
