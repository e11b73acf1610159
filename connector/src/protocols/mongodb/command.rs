//! What a command is, for policies and audit: its operation (the body's
//! first key), database (`$db`), collection, filter (the find/count/
//! distinct/findAndModify query, the first update or delete statement's
//! `q`, the first `bulkWrite` operation's `filter`, or an aggregate
//! pipeline's leading `$match`), the pipeline's stage names, and the whole
//! command as canonical extended JSON. `explain` is described by the
//! command it explains (operation `explain`); `bulkWrite` (sent to `admin`)
//! by its namespaces: `tables` lists them, `database` and `collection` are
//! theirs when they share one.

use bson::{Bson, Document};
use gate_policy::QueryInfo;

use super::codec::{OpMsg, Sequence};

/// Fields drivers add to every command that say nothing about what it does.
const NOISE: &[&str] = &["lsid", "$clusterTime", "$readPreference", "txnNumber"];

/// A command with its OP_MSG document sequences folded back in as arrays
/// (`insert` sends `documents`, `update` sends `updates` that way).
pub fn full_body(msg: &OpMsg) -> Document {
    let mut body = msg.body.clone();
    fold(&mut body, &msg.sequences);
    body
}

fn fold(body: &mut Document, sequences: &[Sequence]) {
    for sequence in sequences {
        let docs = sequence
            .documents
            .iter()
            .cloned()
            .map(Bson::Document)
            .collect();
        body.insert(sequence.identifier.clone(), Bson::Array(docs));
    }
}

/// The command's name: the first key of its body.
pub fn name(body: &Document) -> &str {
    body.keys().next().map(String::as_str).unwrap_or_default()
}

/// Describe `body` (sequences folded in) for `pre_request` and audit.
pub fn describe(body: &Document, default_db: Option<&str>) -> QueryInfo {
    let operation = name(body).to_owned();
    let mut database = body
        .get_str("$db")
        .ok()
        .map(str::to_owned)
        .or_else(|| default_db.map(str::to_owned));
    let subject = explained(body).unwrap_or(body);
    let subject_operation = name(subject);
    let mut collection = collection(subject_operation, subject);
    let filter = filter(subject_operation, subject)
        .map(|f| Bson::Document(f.clone()).into_relaxed_extjson());
    let mut tables = Vec::new();
    if operation == "bulkWrite" {
        let namespaces = bulk_namespaces(body);
        let one = |part: fn(&(String, String)) -> &String| {
            let first = namespaces.first().map(part)?;
            namespaces
                .iter()
                .all(|n| part(n) == first)
                .then(|| first.clone())
        };
        if let Some(db) = one(|n| &n.0) {
            database = Some(db);
            collection = one(|n| &n.1);
        }
        tables = namespaces
            .iter()
            .map(|(db, c)| format!("{db}.{c}"))
            .collect();
    }
    let mut raw = body.clone();
    for field in NOISE {
        raw.remove(*field);
    }
    let raw = Bson::Document(raw).into_canonical_extjson().to_string();
    QueryInfo {
        raw,
        kind: operation.to_ascii_lowercase(),
        pipeline: pipeline(subject)
            .map(|stages| {
                stages
                    .iter()
                    .filter_map(stage_name)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        operation: Some(operation),
        database,
        collection,
        filter,
        tables,
        ..Default::default()
    }
}

/// The command an `explain` explains.
pub fn explained(body: &Document) -> Option<&Document> {
    (name(body) == "explain")
        .then(|| body.get_document("explain").ok())
        .flatten()
}

/// `bulkWrite`'s namespaces (`nsInfo[].ns`) as (database, collection), in order, once each.
fn bulk_namespaces(body: &Document) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let entries = body
        .get_array("nsInfo")
        .map(Vec::as_slice)
        .unwrap_or_default();
    for ns in entries
        .iter()
        .filter_map(|e| e.as_document()?.get_str("ns").ok())
    {
        let (db, coll) = ns.split_once('.').unwrap_or((ns, ""));
        if !out.iter().any(|(d, c)| d == db && c == coll) {
            out.push((db.to_owned(), coll.to_owned()));
        }
    }
    out
}

/// The collection a command works on: the string value of its first key,
/// or `getMore`'s `collection`.
fn collection(operation: &str, body: &Document) -> Option<String> {
    if operation == "getMore" {
        return body.get_str("collection").ok().map(str::to_owned);
    }
    match body.get(operation) {
        Some(Bson::String(name)) => Some(name.clone()),
        _ => None,
    }
}

/// The documents a command filters by.
fn filter<'b>(operation: &str, body: &'b Document) -> Option<&'b Document> {
    let first_statement = |field: &str| match body.get_array(field).ok()?.first()? {
        Bson::Document(statement) => statement.get_document("q").ok(),
        _ => None,
    };
    match operation {
        "find" => body.get_document("filter").ok(),
        "count" | "distinct" | "findAndModify" | "findandmodify" => body.get_document("query").ok(),
        "update" => first_statement("updates"),
        "delete" => first_statement("deletes"),
        "bulkWrite" => match body.get_array("ops").ok()?.first()? {
            Bson::Document(op) => op.get_document("filter").ok(),
            _ => None,
        },
        "aggregate" => match pipeline(body)?.first()? {
            Bson::Document(stage) => stage.get_document("$match").ok(),
            _ => None,
        },
        _ => None,
    }
}

/// An aggregate's pipeline.
pub fn pipeline(body: &Document) -> Option<&Vec<Bson>> {
    body.get_array("pipeline").ok()
}

/// A stage's operator (`$match`).
pub fn stage_name(stage: &Bson) -> Option<&str> {
    match stage {
        Bson::Document(stage) => stage.keys().next().map(String::as_str),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn find_update_delete_and_aggregate_are_described() {
        let find =
            doc! {"find": "customers", "filter": {"id": 1}, "$db": "shop", "lsid": {"id": 1}};
        let q = describe(&find, None);
        assert_eq!(q.kind, "find");
        assert_eq!(q.operation.as_deref(), Some("find"));
        assert_eq!(q.database.as_deref(), Some("shop"));
        assert_eq!(q.collection.as_deref(), Some("customers"));
        assert_eq!(q.filter, Some(serde_json::json!({"id": 1})));
        assert!(q.raw.contains("\"$numberInt\":\"1\""), "{}", q.raw);
        assert!(!q.raw.contains("lsid"), "{}", q.raw);

        let msg = OpMsg {
            flags: 0,
            body: doc! {"update": "customers", "$db": "shop"},
            sequences: vec![Sequence {
                identifier: "updates".into(),
                documents: vec![doc! {"q": {"name": "Bob"}, "u": {"$set": {"x": 1}}}],
            }],
        };
        let q = describe(&full_body(&msg), None);
        assert_eq!(q.filter, Some(serde_json::json!({"name": "Bob"})));

        let delete = doc! {"delete": "c", "deletes": [{"q": {"a": 2}, "limit": 1}]};
        let q = describe(&delete, Some("app"));
        assert_eq!(q.kind, "delete");
        assert_eq!(q.database.as_deref(), Some("app"));
        assert_eq!(q.filter, Some(serde_json::json!({"a": 2})));

        let agg = doc! {"aggregate": "c", "pipeline": [{"$match": {"b": true}}, {"$group": {"_id": "$x"}}], "cursor": {}};
        let q = describe(&agg, None);
        assert_eq!(q.filter, Some(serde_json::json!({"b": true})));
        assert_eq!(q.pipeline, vec!["$match".to_owned(), "$group".to_owned()]);

        let explain = doc! {"explain": {"aggregate": "orders", "pipeline": [{"$match": {"n": 1}}]}, "verbosity": "queryPlanner", "$db": "shop"};
        let q = describe(&explain, None);
        assert_eq!(q.operation.as_deref(), Some("explain"));
        assert_eq!(q.collection.as_deref(), Some("orders"));
        assert_eq!(q.filter, Some(serde_json::json!({"n": 1})));
        assert_eq!(q.pipeline, vec!["$match".to_owned()]);

        let bulk = doc! {"bulkWrite": 1, "ops": [{"update": 0, "filter": {"_id": 3}, "updateMods": {"$set": {"a": 1}}}, {"insert": 1, "document": {}}],
        "nsInfo": [{"ns": "shop.customers"}, {"ns": "shop.customers"}], "$db": "admin"};
        let q = describe(&bulk, None);
        assert_eq!(q.database.as_deref(), Some("shop"));
        assert_eq!(q.collection.as_deref(), Some("customers"));
        assert_eq!(q.tables, vec!["shop.customers".to_owned()]);
        assert_eq!(q.filter, Some(serde_json::json!({"_id": 3})));
        let mixed = doc! {"bulkWrite": 1, "ops": [], "nsInfo": [{"ns": "shop.a"}, {"ns": "crm.b"}], "$db": "admin"};
        let q = describe(&mixed, None);
        assert_eq!(q.database.as_deref(), Some("admin"));
        assert_eq!(q.collection, None);
        assert_eq!(q.tables, vec!["shop.a".to_owned(), "crm.b".to_owned()]);
        let two = doc! {"bulkWrite": 1, "ops": [], "nsInfo": [{"ns": "shop.a"}, {"ns": "shop.b"}], "$db": "admin"};
        let q = describe(&two, None);
        assert_eq!((q.database.as_deref(), q.collection), (Some("shop"), None));

        let more = doc! {"getMore": 42_i64, "collection": "customers", "$db": "shop"};
        let q = describe(&more, None);
        assert_eq!(q.kind, "getmore");
        assert_eq!(q.collection.as_deref(), Some("customers"));
        assert_eq!(q.filter, None);
    }
}
