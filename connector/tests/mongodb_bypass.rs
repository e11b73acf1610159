//! MongoDB masking bypass suite: pymongo through Gate against nx-27017,
//! `example.rego` masking `email` (partial) and `ssn` (redact). Every
//! attempt to move, rename, compute or reshape a masked field is either
//! refused by Gate (code 13, "refused while masks apply") or answered with
//! the values masked: no clear email or SSN ever reaches the client.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use common::example_policy;
use common::mongo::{start, through_gate};

/// (name, pymongo expression producing the documents).
const ATTEMPTS: &[(&str, &str)] = &[
    (
        "project rename",
        "db.customers.aggregate([{'$project': {'x': '$email'}}])",
    ),
    (
        "addFields copy",
        "db.customers.aggregate([{'$addFields': {'x': '$email'}}])",
    ),
    (
        "set concat",
        "db.customers.aggregate([{'$set': {'x': {'$concat': ['$email', '']}}}])",
    ),
    (
        "group key",
        "db.customers.aggregate([{'$group': {'_id': '$email'}}])",
    ),
    (
        "group push",
        "db.customers.aggregate([{'$group': {'_id': None, 'all': {'$push': '$ssn'}}}])",
    ),
    (
        "group whole documents",
        "db.customers.aggregate([{'$group': {'_id': None, 'all': {'$push': '$$ROOT'}}}])",
    ),
    (
        "lookup",
        "db.customers.aggregate([{'$lookup': {'from': 'customers', 'localField': '_id', 'foreignField': '_id', 'as': 'x'}}])",
    ),
    (
        "replaceRoot nested",
        "db.customers.aggregate([{'$replaceRoot': {'newRoot': {'x': '$contact.email'}}}])",
    ),
    (
        "objectToArray",
        "db.customers.aggregate([{'$project': {'kv': {'$objectToArray': '$contact'}}}])",
    ),
    (
        "find projection expression",
        "db.customers.find({}, {'x': '$email'})",
    ),
    (
        "find projection slice",
        "db.customers.find({}, {'email': 1, 'ssn': 1})",
    ),
    (
        "unwind array of subdocuments",
        "db.customers.aggregate([{'$addFields': {'arr': [{'k': 1}, {'k': 2}]}}, {'$unwind': '$arr'}])",
    ),
    (
        "replaceRoot subdocument",
        "db.customers.aggregate([{'$replaceRoot': {'newRoot': '$contact'}}])",
    ),
    (
        "dotted filter",
        "db.customers.find({'contact.phone': '555'})",
    ),
    (
        "distinct nested",
        "[{'v': v} for v in db.customers.distinct('contact.email')]",
    ),
    (
        "out to a copy",
        "db.customers.aggregate([{'$match': {}}, {'$out': 'copy'}])",
    ),
];

#[test]
fn no_attempt_leaks_a_masked_value() {
    let stack = start(&example_policy());
    let mut script = String::from("import json\nfrom bson import json_util\n");
    for (name, expression) in ATTEMPTS {
        script.push_str(&format!(
            "try:\n    print({name:?}, 'ok', json_util.dumps(list({expression})))\n\
             except pymongo.errors.OperationFailure as e:\n    print({name:?}, 'refused', e.code, e.details.get('errmsg'))\n"
        ));
    }
    let out = through_gate(stack.port, "app", "app-pw", "", &script);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), ATTEMPTS.len(), "{out}");
    for ((name, _), line) in ATTEMPTS.iter().zip(&lines) {
        assert!(line.starts_with(name), "{line}");
        // No clear value: seeded emails are userN@example.com / backupN@example.org, SSNs 123-45-678N.
        for clear in ["user1@", "backup1@", "123-45-678"] {
            assert!(!line.contains(clear), "{name} leaked {clear}: {line}");
        }
        let refused_by_gate =
            line.contains(" refused 13 ") && line.contains("refused while masks apply");
        let answered = line.contains(" ok ");
        assert!(
            refused_by_gate || answered,
            "{name}: neither refused by Gate nor answered: {line}"
        );
    }
    let outcome = |name: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(name))
            .unwrap()
            .to_string()
    };
    // What must be refused (it would move a masked value out of masking's reach).
    for name in [
        "project rename",
        "addFields copy",
        "set concat",
        "group key",
        "group push",
        "group whole documents",
        "lookup",
        "replaceRoot nested",
        "objectToArray",
        "find projection expression",
        "out to a copy",
    ] {
        assert!(outcome(name).contains(" refused 13 "), "{}", outcome(name));
    }
    // What is allowed, and comes back masked.
    assert!(
        outcome("find projection slice").contains("\"*************.com\""),
        "{out}"
    );
    assert!(
        outcome("replaceRoot subdocument").contains("\"***************.org\""),
        "{out}"
    );
    assert!(
        outcome("dotted filter").contains("\"ssn\": \"***\""),
        "{out}"
    );
    assert!(
        outcome("distinct nested").contains("***************.org"),
        "{out}"
    );
    // Nothing was copied upstream by the refused $out.
    let copies = through_gate(
        stack.port,
        "boss",
        "boss-pw",
        "",
        "print(db.copy.count_documents({}))",
    );
    assert_eq!(copies.trim(), "0");
}
