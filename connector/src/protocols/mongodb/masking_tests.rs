//! Masking of reply documents and the fail-closed guard.

use bson::{Bson, doc};
use gate_policy::mask::MaskingKey;
use gate_policy::{Mask, Strategy};

use super::{guard, mask_reply};

fn mask(column: &str, strategy: Strategy) -> Mask {
    Mask {
        column: column.into(),
        strategy,
        table: None,
    }
}

#[test]
fn cursor_batches_are_masked_at_any_depth_by_name_and_by_path() {
    let masks = [
        mask("email", Strategy::Email),
        mask("ssn", Strategy::Redact),
        mask("card.number", Strategy::Partial),
    ];
    let masks: Vec<&Mask> = masks.iter().collect();
    let mut reply = doc! {
        "cursor": {
            "firstBatch": [
                {"_id": 1, "email": "alice@example.com", "ssn": 123456789_i64,
                 "contacts": [{"email": "bob@example.com"}, {"phone": "1"}],
                 "card": [{"number": "4111111111111111"}, {"number": "5500000000000004"}],
                 "number": "keep"},
                {"_id": 2, "email": Bson::Null, "profile": {"email": "c@d.org"}},
            ],
            "id": 0_i64, "ns": "shop.customers",
        },
        "ok": 1.0,
    };
    let n = mask_reply(
        "find",
        &doc! {"find": "customers"},
        &mut reply,
        &masks,
        None,
    )
    .unwrap();
    assert_eq!(n, 2);
    let batch = reply
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap();
    let first = batch[0].as_document().unwrap();
    assert_eq!(first.get_str("email").unwrap(), "a***@example.com");
    // Non-strings become the string `***`.
    assert_eq!(first.get_str("ssn").unwrap(), "***");
    let contacts = first.get_array("contacts").unwrap();
    assert_eq!(
        contacts[0].as_document().unwrap().get_str("email").unwrap(),
        "b***@example.com"
    );
    let cards = first.get_array("card").unwrap();
    assert_eq!(
        cards[1].as_document().unwrap().get_str("number").unwrap(),
        "************0004"
    );
    assert_eq!(first.get_str("number").unwrap(), "keep");
    assert_eq!(first.get_i32("_id").unwrap(), 1);
    let second = batch[1].as_document().unwrap();
    assert_eq!(second.get("email"), Some(&Bson::Null));
    assert_eq!(
        second
            .get_document("profile")
            .unwrap()
            .get_str("email")
            .unwrap(),
        "c***@d.org"
    );
}

#[test]
fn next_batch_find_and_modify_and_distinct_are_masked() {
    let masks = [mask("email", Strategy::Redact), mask("ssn", Strategy::Null)];
    let masks: Vec<&Mask> = masks.iter().collect();
    let mut more =
        doc! {"cursor": {"nextBatch": [{"email": "x@y.z", "ssn": "1"}], "id": 0_i64}, "ok": 1};
    mask_reply("getMore", &doc! {"getMore": 1_i64}, &mut more, &masks, None).unwrap();
    let doc = more
        .get_document("cursor")
        .unwrap()
        .get_array("nextBatch")
        .unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(doc, doc! {"email": "***", "ssn": Bson::Null});

    let mut fam = doc! {"value": {"email": "x@y.z", "n": 1}, "ok": 1};
    mask_reply("findAndModify", &doc! {}, &mut fam, &masks, None).unwrap();
    assert_eq!(
        fam.get_document("value").unwrap().get_str("email").unwrap(),
        "***"
    );

    let mut distinct = doc! {"values": ["a@b.c", "d@e.f"], "ok": 1};
    mask_reply(
        "distinct",
        &doc! {"distinct": "c", "key": "contact.email"},
        &mut distinct,
        &masks,
        None,
    )
    .unwrap();
    assert_eq!(
        distinct.get_array("values").unwrap(),
        &vec![Bson::from("***"), Bson::from("***")]
    );
    let mut other = doc! {"values": ["Alice"], "ok": 1};
    mask_reply(
        "distinct",
        &doc! {"distinct": "c", "key": "name"},
        &mut other,
        &masks,
        None,
    )
    .unwrap();
    assert_eq!(
        other.get_array("values").unwrap(),
        &vec![Bson::from("Alice")]
    );
}

#[test]
fn catalog_cursors_are_untouched_and_hash_needs_a_key() {
    let masks = [mask("name", Strategy::Redact)];
    let masks: Vec<&Mask> = masks.iter().collect();
    let mut list = doc! {"cursor": {"firstBatch": [{"name": "customers"}]}};
    mask_reply("listCollections", &doc! {}, &mut list, &masks, None).unwrap();
    assert_eq!(
        list.get_document("cursor")
            .unwrap()
            .get_array("firstBatch")
            .unwrap()[0]
            .as_document()
            .unwrap()
            .get_str("name")
            .unwrap(),
        "customers"
    );

    let hashed = [mask("name", Strategy::Hash)];
    let hashed: Vec<&Mask> = hashed.iter().collect();
    let mut reply = doc! {"cursor": {"firstBatch": [{"name": "a", "n": {"name": 5}}]}};
    assert!(mask_reply("find", &doc! {}, &mut reply.clone(), &hashed, None).is_err());
    let key = MaskingKey::new(b"k".to_vec()).unwrap();
    mask_reply("find", &doc! {}, &mut reply, &hashed, Some(&key)).unwrap();
    let first = reply
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()[0]
        .as_document()
        .unwrap()
        .clone();
    assert_eq!(first.get_str("name").unwrap().len(), 64);
}

#[test]
fn the_guard_refuses_what_can_move_masked_fields() {
    let masks = [mask("email", Strategy::Redact)];
    let masks: Vec<&Mask> = masks.iter().collect();
    let refused = |op: &str, body: bson::Document| guard(op, &body, &masks);
    assert!(
        refused(
            "find",
            doc! {"find": "c", "projection": {"email": 1, "_id": 0}}
        )
        .is_none()
    );
    assert!(refused("find", doc! {"find": "c", "projection": {"x": "$email"}}).is_some());
    assert!(refused("aggregate", doc! {"aggregate": "c", "pipeline": [{"$match": {}}, {"$unwind": "$a"}, {"$project": {"email": 1}}]}).is_none());
    for stage in [
        doc! {"$project": {"x": "$email"}},
        doc! {"$addFields": {"x": "$email"}},
        doc! {"$set": {"x": "$email"}},
        doc! {"$group": {"_id": "$email"}},
        doc! {"$replaceRoot": {"newRoot": {"x": "$email"}}},
        doc! {"$lookup": {"from": "c", "as": "x"}},
        doc! {"$out": "copy"},
        doc! {"$merge": {"into": "copy"}},
        doc! {"$facet": {"a": [{"$project": {"x": "$$ROOT"}}]}},
        doc! {"$project": {"x": {"$map": {"input": "$contact", "in": "$$this.email"}}}},
        doc! {"$group": {"_id": null, "all": {"$push": "$$ROOT"}}},
        doc! {"$set": {"x": {"$function": {"body": "f", "args": [], "lang": "js"}}}},
    ] {
        let reason = refused(
            "aggregate",
            doc! {"aggregate": "c", "pipeline": [stage.clone()]},
        );
        assert!(
            reason.is_some_and(|r| r.contains("refused while masks apply")),
            "{stage}"
        );
    }
    assert!(refused("mapReduce", doc! {"mapReduce": "c"}).is_some());
    // Stages that read no masked field are fine: count_documents' $group.
    let count = doc! {"aggregate": "c", "pipeline": [{"$match": {}}, {"$group": {"_id": 1, "n": {"$sum": 1}}}]};
    assert!(refused("aggregate", count).is_none());
    let renamed = doc! {"aggregate": "c", "pipeline": [{"$project": {"who": "$name"}}]};
    assert!(refused("aggregate", renamed).is_none());
    // A dotted mask: its parents move it too.
    let card = [mask("card.number", Strategy::Redact)];
    let card: Vec<&Mask> = card.iter().collect();
    let moved = doc! {"pipeline": [{"$project": {"x": "$card"}}]};
    assert!(guard("aggregate", &moved, &card).is_some());
    let other = doc! {"pipeline": [{"$project": {"x": "$number"}}]};
    assert!(guard("aggregate", &other, &card).is_none());
    // Without masks, anything goes.
    assert!(
        guard(
            "aggregate",
            &doc! {"pipeline": [{"$group": {"_id": 1}}]},
            &[]
        )
        .is_none()
    );
}
