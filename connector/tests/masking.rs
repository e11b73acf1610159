//! Masking through Gate with real clients: columns are resolved through the
//! table OID and column number, so renaming, subqueries, CTEs, cursors,
//! casts, computed columns and COPY cannot get around the masks.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use common::*;
use gate_testkit::PgAuth;

fn app(stack: &Stack, sql: &str) -> (String, String) {
    let out = psql(stack, "app", "app", "appdb", &[sql]);
    (text(&out.stdout).trim().to_owned(), text(&out.stderr))
}

#[test]
fn select_star_masks_email_partially_and_redacts_ssn() {
    let stack = start(PgAuth::Trust, &example_policy());
    let (out, err) = app(&stack, "select * from customers");
    assert_eq!(out, "1|Alice|*************.com|***", "{err}");
}

#[test]
fn admins_see_clear_data() {
    let stack = start(PgAuth::Trust, &example_policy());
    let out = psql(
        &stack,
        "boss",
        "boss",
        "appdb",
        &["select email, ssn from customers"],
    );
    assert_eq!(
        text(&out.stdout).trim(),
        "alice@example.com|123-45-6789",
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn renaming_subqueries_ctes_and_joins_do_not_escape() {
    let stack = start(PgAuth::Trust, &example_policy());
    for sql in [
        "select email as x from customers",
        "select x from (select email as x from customers) s",
        "with t as (select * from customers) select email from t",
        "select c2.email from customers c1 join customers c2 on c1.id = c2.id",
        "SELECT \"email\" AS \"name\" FROM public.customers",
    ] {
        let (out, err) = app(&stack, sql);
        assert_eq!(out, "*************.com", "{sql}: {err}");
    }
}

#[test]
fn computed_columns_from_masked_columns_are_refused() {
    let stack = start(PgAuth::Trust, &example_policy());
    for sql in [
        "select lower(email) from customers",
        "select email || '' from customers",
        "select row_to_json(c) from customers c",
        "select json_agg(c) from customers c",
        "select substr(ssn, 1, 3) from customers",
        // Set operations lose column provenance in PostgreSQL: refused, never guessed.
        "select email from customers union all select email from customers where false",
    ] {
        let (out, err) = app(&stack, sql);
        assert_eq!(out, "", "{sql} must not return data");
        assert!(
            err.contains("is computed from a masked column (on_derived: block)"),
            "{sql}: {err}"
        );
    }
    // Computations that do not touch masked columns pass.
    assert_eq!(
        app(
            &stack,
            "select upper(name), count(*) over () from customers"
        )
        .0,
        "ALICE|1"
    );
    assert_eq!(app(&stack, "select count(*) from customers").0, "1");
}

#[test]
fn on_derived_mask_masks_computed_columns_instead() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("derived.rego");
    std::fs::write(
        &policy,
        "package derived\nimport rego.v1\ndefault session := {\"action\": \"allow\"}\ndefault pre_request := {\"action\": \"allow\"}\n\
         post_request := {\"action\": \"mask\", \"on_derived\": \"mask\", \"masks\": [{\"column\": \"email\", \"strategy\": \"redact\"}]}\n",
    )
    .unwrap();
    let stack = start(PgAuth::Trust, &all_stages(&policy));
    let (out, err) = app(&stack, "select lower(email), name from customers");
    assert_eq!(out, "***|Alice", "{err}");
}

/// A post_request that refuses results also refuses COPY ... TO, whose
/// output would otherwise go around it.
#[test]
fn copy_to_is_refused_when_results_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("no_results.rego");
    std::fs::write(
        &policy,
        "package no_results\nimport rego.v1\ndefault session := {\"action\": \"allow\"}\ndefault pre_request := {\"action\": \"allow\"}\n\
         post_request := {\"action\": \"block\", \"reason\": \"no results today\"}\n",
    )
    .unwrap();
    let stack = start(PgAuth::Trust, &all_stages(&policy));
    let (out, err) = app(&stack, "copy customers to stdout");
    assert!(!out.contains("alice"), "{out}");
    assert!(err.contains("COPY ... TO is refused"), "{err}");
}

/// Result plans are cached per result shape within a session; a policy
/// that reads the statement text must still be asked for each text, or a
/// plan made for one statement would pass another statement's rows clear.
#[test]
fn a_policy_that_reads_the_statement_text_is_asked_for_every_statement() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("by_text.rego");
    std::fs::write(
        &policy,
        "package by_text\nimport rego.v1\ndefault session := {\"action\": \"allow\"}\ndefault pre_request := {\"action\": \"allow\"}\n\
         post_request := {\"action\": \"mask\", \"masks\": [{\"column\": \"email\", \"strategy\": \"redact\"}]} if contains(input.query.raw, \">=\")\n",
    )
    .unwrap();
    let stack = start(PgAuth::Trust, &all_stages(&policy));
    // One session: the same result shape (same columns, same table) twice.
    let out = psql(
        &stack,
        "app",
        "app",
        "appdb",
        &[
            "select email from customers where id > 0",
            "select email from customers where id >= 1",
            "select email from customers where id > 0",
        ],
    );
    assert_eq!(
        text(&out.stdout).trim(),
        "alice@example.com\n***\nalice@example.com",
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn cursors_are_masked() {
    let stack = start(PgAuth::Trust, &example_policy());
    let out = psql(
        &stack,
        "app",
        "app",
        "appdb",
        &[
            "begin",
            "declare c cursor for select email from customers",
            "fetch all from c",
            "commit",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("*************.com"),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(!stdout.contains("alice@"), "{stdout}");
}

#[test]
fn copy_to_stdout_is_refused_while_masks_apply() {
    let stack = start(PgAuth::Trust, &example_policy());
    let (out, err) = app(&stack, "copy customers to stdout");
    assert!(!out.contains("alice"), "{out}");
    assert!(
        err.contains("COPY ... TO is refused while masking applies"),
        "{err}"
    );
    let admin = psql(
        &stack,
        "boss",
        "boss",
        "appdb",
        &["copy customers to stdout"],
    );
    assert!(
        text(&admin.stdout).contains("alice@example.com"),
        "{}",
        text(&admin.stderr)
    );
}

#[test]
fn a_large_result_streams_masked() {
    let stack = start(PgAuth::Trust, &example_policy());
    direct(
        &stack,
        "insert into customers select g, 'n' || g, 'user' || g || '@example.com', 'ssn-' || g from generate_series(2, 100001) g",
    );
    let out = psql(
        &stack,
        "app",
        "app",
        "appdb",
        &["select email, ssn from customers"],
    );
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 100_001, "{}", text(&out.stderr));
    assert!(
        stdout
            .lines()
            .all(|l| !l.contains('@') && l.ends_with("|***")),
        "a value escaped the mask"
    );
}

#[test]
fn tokio_postgres_prepared_statements_with_binary_results_are_masked() {
    let stack = start(
        PgAuth::Scram {
            password: "super".into(),
        },
        &example_policy(),
    );
    direct(
        &stack,
        "create table accounts (id int, email varchar(100), balance int); insert into accounts values (7, 'bob@example.org', 1234567); grant select on accounts to gate_app",
    );
    with_tokio_postgres(&stack, |client| async move {
        let statement = client
            .prepare("select id, email, balance from accounts where id = $1")
            .await
            .unwrap();
        assert_eq!(
            statement.columns()[1].type_(),
            &tokio_postgres::types::Type::TEXT,
            "masked varchar is re-described as text"
        );
        assert_eq!(
            statement.columns()[0].type_(),
            &tokio_postgres::types::Type::INT4
        );
        for _ in 0..3 {
            let row = client.query_one(&statement, &[&7i32]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), 7);
            assert_eq!(row.get::<_, String>(1), "***********.org");
            assert_eq!(row.get::<_, i32>(2), 1234567);
        }
        // Blocked statements fail with the policy's reason and the connection stays usable.
        let error = client
            .execute("drop table accounts", &[])
            .await
            .unwrap_err();
        assert_eq!(
            error.as_db_error().unwrap().message(),
            "destructive queries are not allowed"
        );
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
        );
        let row = client
            .query_one("select count(*) from accounts", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), 1);
    });
}
