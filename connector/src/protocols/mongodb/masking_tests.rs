//! Masking of reply documents.

use bson::{Bson, doc};
use gate_policy::mask::MaskingKey;
use gate_policy::{Mask, Strategy};

use super::{mask_reply, mask_value, redact_errors};

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
fn duplicate_key_errors_lose_the_values_they_quote() {
    let mut reply = doc! {
        "n": 0, "ok": 1.0,
        "writeErrors": [{"index": 0, "code": 11000,
            "errmsg": "E11000 duplicate key error collection: shop.customers index: email_1 dup key: { email: \"alice@example.com\" }",
            "keyPattern": {"email": 1}, "keyValue": {"email": "alice@example.com"}}],
    };
    assert_eq!(redact_errors(&mut reply), 1);
    let error = reply.get_array("writeErrors").unwrap()[0]
        .as_document()
        .unwrap();
    let errmsg = error.get_str("errmsg").unwrap();
    assert!(!errmsg.contains("alice"), "{errmsg}");
    assert!(
        errmsg.ends_with("dup key: { <redacted by Gate> }"),
        "{errmsg}"
    );
    assert_eq!(error.get_str("keyValue").unwrap(), "***");
}

#[test]
fn stored_keys_with_dots_are_masked_by_their_segments() {
    // MongoDB 5.0+ stores keys holding dots (`$setField`), and change events
    // name changed fields so: each segment counts as a name and a path step.
    let by_name = mask("email", Strategy::Redact);
    let by_path = mask("card.number", Strategy::Redact);
    let mut value = Bson::Document(doc! {
        "_id": 1, "contact.email": "a@b.c", "card.number": "4111", "card": {"number.x": "5500"},
        "card.number.last4": "1111", "card.kind": "visa",
    });
    mask_value(&mut value, &[&by_name, &by_path], None).unwrap();
    let doc = value.as_document().unwrap();
    assert_eq!(doc.get_str("contact.email").unwrap(), "***");
    assert_eq!(doc.get_str("card.number").unwrap(), "***");
    assert_eq!(doc.get_str("card.number.last4").unwrap(), "***");
    let card = doc.get_document("card").unwrap();
    assert_eq!(card.get_str("number.x").unwrap(), "***");
    assert_eq!(doc.get_str("card.kind").unwrap(), "visa");
}
