//! What a command is, for policies and audit: its operation (the body's
//! first key), database (`$db`), collection, filter (the find/count/
//! distinct/findAndModify query, the first update or delete statement's
//! `q`, or an aggregate pipeline's leading `$match`), the pipeline's stage
//! names, and the whole command as canonical extended JSON.

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
    let database = body
        .get_str("$db")
        .ok()
        .map(str::to_owned)
        .or_else(|| default_db.map(str::to_owned));
    let collection = collection(&operation, body);
    let filter = filter(&operation, body).map(|f| Bson::Document(f.clone()).into_relaxed_extjson());
    let mut raw = body.clone();
    for field in NOISE {
        raw.remove(*field);
    }
    let raw = Bson::Document(raw).into_canonical_extjson().to_string();
    QueryInfo {
        raw,
        kind: operation.to_ascii_lowercase(),
        pipeline: pipeline(body)
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
        ..Default::default()
    }
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

        let more = doc! {"getMore": 42_i64, "collection": "customers", "$db": "shop"};
        let q = describe(&more, None);
        assert_eq!(q.kind, "getmore");
        assert_eq!(q.collection.as_deref(), Some("customers"));
        assert_eq!(q.filter, None);
    }
}
