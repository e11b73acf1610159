//! Audit events through a real PostgreSQL: each statement's event carries the
//! protocol, the rows the server reported and the time to ReadyForQuery, for
//! the simple and the extended protocol.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use common::*;
use gate_testkit::PgAuth;

fn events(stack: &Stack, statements: usize) -> Vec<serde_json::Value> {
    audit_when(stack, |text| {
        text.lines()
            .filter(|l| l.contains(r#""kind":"statement""#))
            .count()
            >= statements
    })
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect()
}

fn statement<'a>(events: &'a [serde_json::Value], text: &str) -> &'a serde_json::Value {
    events
        .iter()
        .find(|e| e["kind"] == "statement" && e["statement"] == text)
        .unwrap_or_else(|| panic!("no statement event for {text:?} in {events:#?}"))
}

#[test]
fn statement_events_carry_rows_and_duration() {
    let stack = start(PgAuth::Trust, &example_policy());
    let out = psql(
        &stack,
        "app",
        "app",
        "appdb",
        &[
            "select * from generate_series(1, 5)",
            "select 1; select 2 union select 3",
            "create temporary table scratch (n int); insert into scratch select generate_series(1, 4)",
            "drop table customers",
        ],
    );
    assert!(
        text(&out.stderr).contains("destructive"),
        "{}",
        text(&out.stderr)
    );
    let events = events(&stack, 7);
    let series = statement(&events, "select * from generate_series(1, 5)");
    assert_eq!(series["protocol"], "postgres");
    assert_eq!(series["rows"], 5);
    assert!(series["duration_us"].as_u64().unwrap() > 0, "{series}");
    // One Query, two statements: each gets its own CommandComplete's rows.
    // (Statements of a multi-statement message are audited as Gate split them.)
    assert_eq!(statement(&events, "SELECT 1")["rows"], 1);
    assert_eq!(statement(&events, "SELECT 2 UNION SELECT 3")["rows"], 2);
    assert_eq!(
        statement(&events, "INSERT INTO scratch SELECT generate_series(1, 4)")["rows"],
        4,
        "rows affected"
    );
    let blocked = statement(&events, "drop table customers");
    assert_eq!(blocked["action"], "block");
    assert_eq!(blocked["rows"], 0);
    // Sessions carry the protocol too, and no rows.
    let session = events.iter().find(|e| e["kind"] == "session").unwrap();
    assert_eq!(session["protocol"], "postgres");
    assert!(session.get("rows").is_none(), "{session}");
}

#[test]
fn a_prepared_statement_event_carries_the_rows_of_its_execute() {
    let stack = start(PgAuth::Trust, &example_policy());
    with_tokio_postgres(&stack, |client| async move {
        let rows = client
            .query("select n from generate_series(1, $1::int) as n", &[&3i32])
            .await
            .unwrap();
        assert_eq!(rows.len(), 3);
    });
    let events = events(&stack, 1);
    let prepared = statement(&events, "select n from generate_series(1, $1::int) as n");
    assert_eq!(prepared["rows"], 3, "{prepared}");
    assert!(prepared["duration_us"].as_u64().unwrap() > 0, "{prepared}");
}
