//! MongoDB masking bypass suite: pymongo through Gate against nx-27017,
//! `example.rego` masking `email` (partial) and `ssn` (redact). Every
//! attempt to move, rename, compute or reshape a masked field is either
//! refused by Gate (code 13, "refused while masks apply") or answered with
//! the values masked: no clear email or SSN ever reaches the client.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use common::example_policy;
use common::mongo::{as_app, start, start_allowing, through_gate};

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
    (
        "getField",
        "db.customers.aggregate([{'$project': {'x': {'$getField': 'email'}}}])",
    ),
    (
        "getField on ROOT",
        "db.customers.aggregate([{'$project': {'x': {'$getField': {'field': 'ssn', 'input': '$$ROOT'}}}}])",
    ),
    (
        "replaceWith ROOT merged",
        "db.customers.aggregate([{'$replaceWith': {'$mergeObjects': ['$$ROOT', {'x': 1}]}}])",
    ),
    (
        "CURRENT path",
        "db.customers.aggregate([{'$project': {'x': '$$CURRENT.email'}}])",
    ),
    (
        "let variable",
        "db.customers.aggregate([{'$project': {'x': {'$let': {'vars': {'c': '$contact'}, 'in': '$$c.email'}}}}])",
    ),
    (
        "map over a copy",
        "db.customers.aggregate([{'$project': {'x': {'$map': {'input': ['$ssn'], 'in': '$$this'}}}}])",
    ),
    (
        "arrayElemAt",
        "db.customers.aggregate([{'$project': {'x': {'$arrayElemAt': [['$email'], 0]}}}])",
    ),
    (
        "cond",
        "db.customers.aggregate([{'$project': {'x': {'$cond': [True, '$ssn', None]}}}])",
    ),
    (
        "facet",
        "db.customers.aggregate([{'$facet': {'a': [{'$project': {'x': '$email'}}]}}])",
    ),
    (
        "lookup pipeline",
        "db.customers.aggregate([{'$lookup': {'from': 'customers', 'pipeline': [{'$project': {'x': '$email'}}], 'as': 'j'}}])",
    ),
    (
        "unionWith",
        "db.customers.aggregate([{'$unionWith': {'coll': 'customers', 'pipeline': [{'$project': {'x': '$email'}}]}}])",
    ),
    (
        "nested output path",
        "db.customers.aggregate([{'$addFields': {'contact.alias': '$contact.email'}}])",
    ),
    (
        "sortByCount",
        "db.customers.aggregate([{'$sortByCount': '$ssn'}])",
    ),
    (
        "bucket output",
        "db.customers.aggregate([{'$bucket': {'groupBy': '$_id', 'boundaries': [0, 10], 'output': {'v': {'$push': '$email'}}}}])",
    ),
    (
        "setWindowFields",
        "db.customers.aggregate([{'$setWindowFields': {'sortBy': {'_id': 1}, 'output': {'x': {'$first': '$email'}}}}])",
    ),
    (
        "find projection ROOT",
        "db.customers.find({}, {'x': '$$ROOT'})",
    ),
    (
        "find projection getField",
        "db.customers.find({}, {'x': {'$getField': 'ssn'}})",
    ),
    (
        "pipeline update copy",
        "[db.customers.update_one({'_id': 1}, [{'$set': {'name': '$email'}}]).raw_result]",
    ),
    (
        "rename update",
        "[db.customers.update_one({'_id': 1}, {'$rename': {'email': 'name'}}).raw_result]",
    ),
    ("change stream", "db.customers.watch()"),
    (
        "geoNear includeLocs",
        "db.customers.aggregate([{'$geoNear': {'near': [0, 0], 'distanceField': 'd', 'key': 'ssn', 'includeLocs': 'x'}}])",
    ),
    (
        "view over customers",
        "[db.command({'create': 'clear', 'viewOn': 'customers', 'pipeline': [{'$project': {'x': '$ssn'}}]})]",
    ),
    (
        "parent renamed",
        "db.customers.aggregate([{'$project': {'c': '$contact'}}])",
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
        "getField",
        "getField on ROOT",
        "replaceWith ROOT merged",
        "CURRENT path",
        "let variable",
        "map over a copy",
        "arrayElemAt",
        "cond",
        "facet",
        "lookup pipeline",
        "unionWith",
        "nested output path",
        "sortByCount",
        "bucket output",
        "setWindowFields",
        "find projection ROOT",
        "find projection getField",
        "pipeline update copy",
        "rename update",
        "change stream",
        "geoNear includeLocs",
        "view over customers",
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
    // A subdocument under another name keeps its masked field's name.
    assert!(
        outcome("parent renamed").contains("\"***************.org\""),
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
    // The refused updates changed nothing.
    let first = through_gate(
        stack.port,
        "boss",
        "boss-pw",
        "",
        "d = db.customers.find_one({'_id': 1})\nprint(d['name'], d['email'])",
    );
    assert_eq!(first.trim(), "user1 user1@example.com");
}

/// Masks scoped to `customers` (`table`) still hold when another
/// collection's command reaches customers through `$lookup`/`$unionWith`.
#[test]
fn masks_of_one_collection_hold_through_lookups_from_another() {
    let (_dir, stack) = start_allowing(
        "post_request := {\"action\": \"mask\", \"masks\": [{\"column\": \"email\", \"strategy\": \"redact\", \"table\": \"customers\"}]}\n",
    );
    let out = as_app(
        &stack,
        "db.orders.insert_one({'_id': 1, 'customer': 1})\n\
         print(db.orders.find_one()['customer'])\n\
         print(db.customers.find_one({'_id': 1})['email'])\n\
         for stage in [{'$lookup': {'from': 'customers', 'localField': 'customer', 'foreignField': '_id', 'as': 'c'}},\n\
         \x20             {'$unionWith': 'customers'},\n\
         \x20             {'$facet': {'a': [{'$lookup': {'from': 'customers', 'pipeline': [], 'as': 'c'}}]}}]:\n\
         \x20   try:\n        print('ok', list(db.orders.aggregate([stage])))\n\
         \x20   except pymongo.errors.OperationFailure as e:\n        print('refused', e.code)",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "{out}");
    assert_eq!(lines[1], "***", "{out}");
    assert_eq!(&lines[2..], ["refused 13"; 3], "{out}");
    assert!(!out.contains("example.com"), "{out}");
}
