//! The masking guard and friends, as pure functions.
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use gate_policy::{Action, Mask, Strategy, Verdict};

use super::*;

fn masks() -> Verdict {
    let mut verdict = Verdict::refusal();
    verdict.action = Action::Mask;
    verdict.masks = vec![Mask {
        column: "email".into(),
        strategy: Strategy::Partial,
        table: None,
    }];
    verdict
}

fn refused(sql: &str) -> bool {
    let query = classify(sql).into_iter().next().unwrap();
    needs_guard(&query, sql) && masking_guard(&masks(), &query, sql).is_some()
}

#[test]
fn data_movement_is_refused_only_when_it_can_carry_masked_data() {
    for sql in [
        "create table t as select email from customers",
        "insert into t select * from customers",
        "replace into t select lower(email) from customers",
        "select email into @v from customers",
        "select email from customers into outfile '/tmp/x'",
        "select @v := email from customers",
        "create view v as select id from customers",
        "call leak()",
        "prepare s from 'select email from customers'",
        "update customers set name = email",
        "show warnings",
    ] {
        assert!(refused(sql), "{sql}");
    }
    for sql in [
        "insert into t select id, name from customers",
        "update customers set email = 'x' where id = 1",
        "select id into @v from customers limit 1",
        "insert into t values (1, 'a')",
        "select email from customers",
    ] {
        assert!(!refused(sql), "{sql}");
    }
}

#[test]
fn local_infile_and_quoted_values() {
    assert!(is_local_infile(
        "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE t"
    ));
    assert!(!is_local_infile("LOAD DATA INFILE '/tmp/x' INTO TABLE t"));
    assert_eq!(
        redact_quoted("Duplicate entry 'alice@example.com' for key 'PRIMARY'"),
        "Duplicate entry '***' for key '***'"
    );
}

#[test]
fn computed_columns_calling_unknown_functions_take_every_mask() {
    assert_eq!(
        computed_derived(&masks(), "select my_func(id) from customers"),
        Some(Strategy::Partial)
    );
    assert_eq!(
        computed_derived(&masks(), "select lower(email) from customers"),
        Some(Strategy::Partial)
    );
    assert_eq!(
        computed_derived(&masks(), "select count(*) from customers"),
        None
    );
}
