//! A determined user against masking: whole rows, data moved before it is
//! read, functions and procedural code, views, values quoted in server
//! messages, and planner statistics. Each attempt runs through Gate as `app`
//! (masks on `email` and `ssn`, `on_derived: block`); nothing the client
//! receives — rows, notices, errors — may contain a clear email or SSN.
//! Statements on tables without masked columns must still work.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use common::*;
use gate_testkit::PgAuth;

/// Fragments of the clear values (the partial email mask keeps `.com`).
const CLEAR: &[&str] = &["alice@", "@example", "123-45", "45-6789"];

/// Objects an administrator made earlier, which `app` may use.
const ADMIN_SETUP: &str = "
    create function leak_email(int) returns text language sql as $$ select email from customers where id = $1 $$;
    create function noisy() returns int language plpgsql as $$ begin raise notice 'seen: %', (select email from customers limit 1); return 1; end $$;
    create procedure shout() language plpgsql as $$ begin raise notice '%', (select ssn from customers limit 1); end $$;
    create view contacts as select id, email as contact, ssn as tax_id from customers;
    create view contacts2 as select contact as c2, tax_id as t2 from contacts;
    create materialized view contacts_mv as select id, email as contact from customers;
    grant select on contacts, contacts2, contacts_mv to gate_app;
    create table plain (id int, note text);
    insert into plain values (1, 'hello');
    grant all on plain to gate_app;
";

fn stack() -> Stack {
    let stack = start(PgAuth::Trust, &example_policy());
    direct(&stack, ADMIN_SETUP);
    stack
}

/// Everything psql printed for `statements` run in one session as `app`.
fn attempt(stack: &Stack, statements: &[&str]) -> String {
    let out = psql(stack, "app", "app", "appdb", statements);
    format!("{}\n{}", text(&out.stdout), text(&out.stderr))
}

fn assert_no_leak(what: &str, received: &str) {
    for clear in CLEAR {
        assert!(
            !received.contains(clear),
            "{what}: {clear:?} reached the client:\n{received}"
        );
    }
}

#[test]
fn whole_row_values_are_masked_or_refused() {
    let stack = stack();
    for sql in [
        "select c from customers c",
        "select c::text from customers c",
        "select customers from customers",
        "select customers::text from customers",
        "select row_to_json(c) from customers c",
        "select to_jsonb(customers)::text from customers",
        "select (c.*)::text from customers c",
        "select format('%s', c) from customers c",
        "select array_agg(c)::text from customers c",
        "select json_agg(customers)::text from customers",
        "select x from (select * from customers) x",
        "select t::text from (select email, ssn from customers) t",
        "select row(email, ssn)::text from customers",
        "select concat_ws(',', c) from customers c",
        "with t as (select * from customers) select t::text from t",
        "select string_agg(email, ',') from customers",
        "select email from customers where false union select ssn from customers",
    ] {
        let received = attempt(&stack, &[sql]);
        assert_no_leak(sql, &received);
        assert!(
            received.contains("masked column") || received.contains("***"),
            "{sql}: neither masked nor refused:\n{received}"
        );
    }
}

#[test]
fn data_moved_before_it_is_read_is_refused() {
    let stack = stack();
    for (steps, refusal) in [
        (
            &[
                "create table m1 as select * from customers",
                "select * from m1",
            ][..],
            "statement copies whole rows of customers",
        ),
        (
            &[
                "create table m2 as select email as e, ssn as s from customers",
                "select * from m2",
            ],
            "statement copies masked column email",
        ),
        (
            &["select * into m3 from customers", "select * from m3"],
            "SELECT … INTO",
        ),
        (
            &["select email into m4 from customers", "select * from m4"],
            "masked column email",
        ),
        (
            &[
                "create table m5 (e text)",
                "insert into m5 select email from customers",
                "select * from m5",
            ],
            "INSERT … SELECT",
        ),
        (
            &[
                "create table m6 (e text)",
                "insert into m6 select c::text from customers c",
                "select * from m6",
            ],
            "whole rows of customers",
        ),
        (
            &[
                "create table m7 (e text)",
                "insert into m7 values ((select ssn from customers limit 1))",
                "select * from m7",
            ],
            "masked column ssn",
        ),
        (
            &[
                "create table m8 (e text)",
                "with x as (select email from customers) insert into m8 select * from x",
                "select * from m8",
            ],
            "masked column email",
        ),
        (
            &[
                "update customers set name = email",
                "select name from customers",
            ],
            "UPDATE … SET",
        ),
        (
            &[
                "create view v1 as select email as contact from customers",
                "select contact from v1",
            ],
            "CREATE VIEW",
        ),
        (
            &[
                "create materialized view mv1 as select ssn as t from customers",
                "select t from mv1",
            ],
            "CREATE MATERIALIZED VIEW",
        ),
        (
            &[
                "create function f1() returns text language sql as $$ select email from customers limit 1 $$",
                "select f1()",
            ],
            "CREATE FUNCTION",
        ),
        (
            &[
                "create function f2() returns setof customers language sql as $$ select * from customers $$",
                "select f2()::text",
            ],
            "CREATE FUNCTION reads table customers",
        ),
        (
            &[
                "create table m9 as select leak_email(id) as e from customers",
                "select * from m9",
            ],
            "user-defined function leak_email",
        ),
        (
            &["copy customers to '/tmp/gate-leak.csv'"],
            "COPY ... TO is refused",
        ),
        (
            &["copy (select email from customers) to stdout"],
            "COPY ... TO is refused",
        ),
    ] {
        let what = steps.join("; ");
        let received = attempt(&stack, steps);
        assert_no_leak(&what, &received);
        assert!(
            received.contains(refusal),
            "{what}: expected {refusal:?}:\n{received}"
        );
    }
    // Nothing was changed by the refused UPDATE.
    assert_eq!(direct(&stack, "select name from customers").trim(), "Alice");
}

#[test]
fn functions_and_procedural_code_are_masked_or_refused() {
    let stack = stack();
    for (sql, refusal) in [
        ("select leak_email(1)", "computed from a masked column"),
        (
            "select leak_email(id) from customers",
            "computed from a masked column",
        ),
        ("select noisy()", "computed from a masked column"),
        (
            "do $$ begin raise notice '%', (select email from customers limit 1); end $$",
            "DO is refused while masks apply",
        ),
        ("call shout()", "CALL is refused while masks apply"),
    ] {
        let received = attempt(&stack, &[sql]);
        assert_no_leak(sql, &received);
        assert!(
            received.contains(refusal),
            "{sql}: expected {refusal:?}:\n{received}"
        );
    }
}

#[test]
fn views_are_traced_to_the_masked_columns_they_read() {
    let stack = stack();
    for sql in [
        "select contact from contacts",
        "select tax_id from contacts",
        "select c2, t2 from contacts2",
        "select * from contacts2",
        "select contact from contacts_mv",
    ] {
        let received = attempt(&stack, &[sql]);
        assert_no_leak(sql, &received);
    }
}

#[test]
fn values_in_server_messages_are_redacted() {
    let stack = stack();
    for sql in [
        "select email::int from customers",
        "select ssn::int from customers",
        "select cast(email as date) from customers",
        "select 1 / (length(email) - length(email)) from customers",
        "insert into customers values (1, 'x', 'y', 'z')",
        "select * from customers where id = email::int",
    ] {
        let received = attempt(&stack, &[sql]);
        assert_no_leak(sql, &received);
        assert!(received.contains("ERROR"), "{sql}: {received}");
    }
    let received = attempt(&stack, &["select email::int from customers"]);
    assert!(
        received.contains("invalid input syntax for type integer: \"***\""),
        "the message keeps its shape:\n{received}"
    );
}

#[test]
fn planner_statistics_are_refused() {
    let stack = stack();
    direct(&stack, "analyze customers");
    for sql in [
        "select most_common_vals::text from pg_stats where tablename = 'customers'",
        "select * from pg_stats",
        "select histogram_bounds::text from pg_catalog.pg_stats",
        "select * from pg_stats_ext",
    ] {
        let received = attempt(&stack, &[sql]);
        assert_no_leak(sql, &received);
        assert!(received.contains("planner statistics"), "{sql}: {received}");
    }
}

#[test]
fn binary_results_over_the_extended_protocol_do_not_leak() {
    let stack = stack();
    with_tokio_postgres(&stack, |client| async move {
        for sql in [
            "select c::text from customers c",
            "select row_to_json(c)::text from customers c",
            "select leak_email(1)",
            "select contact from contacts",
            "select email::int::text from customers",
        ] {
            let received = match client.query(sql, &[]).await {
                Ok(rows) => rows
                    .iter()
                    .map(|r| format!("{:?}", r.try_get::<_, String>(0)))
                    .collect::<Vec<_>>()
                    .join("\n"),
                Err(e) => format!("{e:?}"),
            };
            assert_no_leak(sql, &received);
        }
        let error = client
            .execute("create table b1 as select * from customers", &[])
            .await
            .unwrap_err();
        let message = error.as_db_error().unwrap().message();
        assert!(message.contains("whole rows of customers"), "{message}");
    });
}

#[test]
fn tables_without_masked_columns_are_unaffected() {
    let stack = stack();
    let received = attempt(
        &stack,
        &[
            "create table p2 as select * from plain",
            "insert into p2 select * from plain",
            "update plain set note = note || '!'",
            "create view pv as select * from plain",
            "select count(*) from pv",
            "select p from plain p",
            "select row_to_json(p) from plain p",
            "select * into p3 from plain",
            "select note from p3",
            "copy plain to stdout",
            "select * from pg_class where relname = 'plain'",
            // Assigning into a masked column keeps the value masked.
            "update customers set email = lower(email) where id = 1",
            "update customers set email = 'alice@example.com', name = 'Alice' where id = 1",
        ],
    );
    assert!(!received.contains("ERROR"), "{received}");
    assert!(received.contains("(1,hello!)"), "{received}");
    assert!(
        received.contains(r#"{"id":1,"note":"hello!"}"#),
        "{received}"
    );
    // Admins have no masks: nothing is refused for them.
    let out = psql(
        &stack,
        "boss",
        "boss",
        "appdb",
        &[
            "create table boss_copy as select * from customers",
            "select email from boss_copy",
        ],
    );
    assert!(
        text(&out.stdout).contains("alice@example.com"),
        "{}",
        text(&out.stderr)
    );
}
