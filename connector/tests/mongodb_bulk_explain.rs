//! `bulkWrite` (MongoDB 8.0) and `explain` through Gate, with pymongo and
//! nx-27017: their policy input (namespaces, collection, filter, pipeline
//! of what is explained), refusals in MongoDB's format, the audit, and the
//! masking guard on what they carry.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use common::audit_file_when;
use common::mongo::{as_app, start_allowing};

/// Blocks bulk writes that reach `shop.customers`, explains of anything but
/// `orders`, and explains whose filter names `email`; masks `email`.
const RULES: &str = r#"
pre_request := {"action": "block", "reason": "no bulk writes to customers"} if {
	input.query.operation == "bulkWrite"
	"shop.customers" in input.query.tables
}
pre_request := {"action": "block", "reason": "explain only orders"} if {
	input.query.operation == "explain"
	input.query.collection != "orders"
}
pre_request := {"action": "block", "reason": "no explaining email lookups"} if {
	input.query.operation == "explain"
	input.query.filter.email
}
post_request := {"action": "mask", "masks": [{"column": "email", "strategy": "redact"}]}
"#;

#[test]
fn bulk_write_and_explain_are_decided_audited_and_guarded() {
    let (_dir, stack) = start_allowing(RULES);
    let out = as_app(
        &stack,
        "from pymongo import InsertOne, UpdateOne\n\
         def attempt(f):\n\
         \x20   try:\n        print('ok', f())\n\
         \x20   except pymongo.errors.ClientBulkWriteException as e:\n        print('refused', e.error.code, e.error.details.get('errmsg'))\n\
         \x20   except pymongo.errors.OperationFailure as e:\n        print('refused', e.code, e.details.get('errmsg'))\n\
         attempt(lambda: client.bulk_write([InsertOne(namespace='shop.orders', document={'_id': 1, 'n': 1}),\n\
         \x20   UpdateOne(namespace='shop.orders', filter={'_id': 1}, update={'$set': {'n': 2}})]).modified_count)\n\
         attempt(lambda: client.bulk_write([InsertOne(namespace='shop.orders', document={'_id': 2}),\n\
         \x20   InsertOne(namespace='shop.customers', document={'_id': 99, 'email': 'new@example.com'})]).inserted_count)\n\
         attempt(lambda: client.bulk_write([UpdateOne(namespace='shop.orders', filter={'_id': 1}, update=[{'$set': {'n': '$email'}}])]).modified_count)\n\
         attempt(lambda: db.command({'explain': {'find': 'orders', 'filter': {'_id': 1}}, 'verbosity': 'queryPlanner'})['queryPlanner']['namespace'])\n\
         attempt(lambda: db.command({'explain': {'find': 'customers', 'filter': {'_id': 1}}})['ok'])\n\
         attempt(lambda: db.command({'explain': {'find': 'orders', 'filter': {'email': 'a'}}})['ok'])\n\
         attempt(lambda: db.command({'explain': {'aggregate': 'orders', 'pipeline': [{'$project': {'x': '$email'}}], 'cursor': {}}, 'verbosity': 'executionStats'})['ok'])\n\
         print(sorted((d['_id'], d.get('n')) for d in db.orders.find()))\n\
         print(db.customers.count_documents({'_id': 99}))",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "ok 1", "{out}");
    assert_eq!(lines[1], "refused 13 no bulk writes to customers", "{out}");
    let guarded =
        |line: &str| line.starts_with("refused 13 ") && line.ends_with("refused while masks apply");
    // A bulkWrite pipeline update copying a masked field, and an explained
    // aggregate (guarded as the aggregate): refused.
    assert!(guarded(lines[2]) && guarded(lines[6]), "{out}");
    assert_eq!(lines[3], "ok shop.orders", "{out}");
    assert_eq!(lines[4], "refused 13 explain only orders", "{out}");
    assert_eq!(lines[5], "refused 13 no explaining email lookups", "{out}");
    // Only the allowed bulk write reached the upstream (nothing of the refused one).
    assert_eq!(lines[7], "[(1, 2)]", "{out}");
    assert_eq!(lines[8], "0", "{out}");
    // Both are audited with their decision and the command.
    let audit = audit_file_when(&stack.gate.audit, |a| {
        a.contains("no bulk writes to customers") && a.contains("explain only orders")
    });
    let line = |needle: &str| {
        audit
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no audit line with {needle}:\n{audit}"))
            .to_owned()
    };
    let bulk = line("no bulk writes to customers");
    assert!(
        bulk.contains("bulkWrite") && bulk.contains("shop.customers"),
        "{bulk}"
    );
    let explain = line("explain only orders");
    assert!(
        explain.contains("explain") && explain.contains("customers"),
        "{explain}"
    );
}
