//! The fail-closed guard: what can move masked fields is refused, what keeps them in place is not.

use bson::{Document, doc};
use gate_policy::{Mask, Strategy};

use super::guard;

fn masks(columns: &[&str]) -> Vec<Mask> {
    columns
        .iter()
        .map(|c| Mask {
            column: (*c).into(),
            strategy: Strategy::Redact,
            table: None,
        })
        .collect()
}

fn refused(columns: &[&str], operation: &str, body: Document) -> Option<String> {
    let masks = masks(columns);
    let masks: Vec<&Mask> = masks.iter().collect();
    guard(operation, &body, &masks)
}

fn aggregate(stages: Vec<Document>) -> Document {
    doc! {"aggregate": "c", "pipeline": stages, "cursor": {}}
}

#[test]
fn stages_that_move_masked_fields_are_refused() {
    for stage in [
        doc! {"$project": {"x": "$email"}},
        doc! {"$addFields": {"x": "$email"}},
        doc! {"$set": {"x": {"$concat": ["$email", ""]}}},
        doc! {"$group": {"_id": "$email"}},
        doc! {"$group": {"_id": null, "all": {"$push": "$$ROOT"}}},
        doc! {"$replaceRoot": {"newRoot": {"x": "$email"}}},
        doc! {"$replaceWith": "$$CURRENT"},
        doc! {"$project": {"x": {"$map": {"input": "$contact", "in": "$$this.email"}}}},
        doc! {"$project": {"x": {"$objectToArray": "$contact"}}},
        doc! {"$project": {"x": {"$getField": "email"}}},
        doc! {"$set": {"x": {"$function": {"body": "f", "args": [], "lang": "js"}}}},
        doc! {"$lookup": {"from": "c", "as": "x"}},
        doc! {"$unionWith": "other"},
        doc! {"$out": "copy"},
        doc! {"$merge": {"into": "copy"}},
        doc! {"$facet": {"a": [{"$lookup": {"from": "c", "as": "x"}}]}},
        doc! {"$sortByCount": "$email"},
    ] {
        let reason = refused(&["email"], "aggregate", aggregate(vec![stage.clone()]));
        assert!(
            reason.is_some_and(|r| r.contains("refused while masks apply")),
            "{stage}"
        );
    }
}

#[test]
fn stages_that_keep_fields_in_place_or_read_none_are_allowed() {
    let count = aggregate(vec![
        doc! {"$match": {"email": {"$regex": "^a"}}},
        doc! {"$unwind": "$contact"},
        doc! {"$sort": {"email": 1}},
        doc! {"$group": {"_id": 1, "n": {"$sum": 1}}},
    ]);
    assert_eq!(refused(&["email"], "aggregate", count), None);
    let renamed = aggregate(vec![doc! {"$project": {"who": "$name", "email": 1}}]);
    assert_eq!(refused(&["email"], "aggregate", renamed), None);
    // Without masks anything goes.
    let group = aggregate(vec![doc! {"$group": {"_id": "$email"}}]);
    assert_eq!(refused(&[], "aggregate", group), None);
}

#[test]
fn dotted_masks_cover_their_parents() {
    let moved = aggregate(vec![doc! {"$project": {"x": "$card"}}]);
    assert!(refused(&["card.number"], "aggregate", moved).is_some());
    let inside = aggregate(vec![doc! {"$project": {"x": "$card.number.last4"}}]);
    assert!(refused(&["card.number"], "aggregate", inside).is_some());
    let other = aggregate(vec![doc! {"$project": {"x": "$number"}}]);
    assert_eq!(refused(&["card.number"], "aggregate", other), None);
    // A name mask still masks a moved subdocument by name: allowed.
    let sub = aggregate(vec![doc! {"$project": {"x": "$contact"}}]);
    assert_eq!(refused(&["email"], "aggregate", sub), None);
}

#[test]
fn projections_views_updates_and_javascript() {
    let find = |projection: Document| doc! {"find": "c", "projection": projection};
    assert_eq!(
        refused(&["email"], "find", find(doc! {"email": 1, "_id": 0})),
        None
    );
    assert_eq!(
        refused(&["email"], "find", find(doc! {"n": {"$literal": 1}})),
        None
    );
    assert!(refused(&["email"], "find", find(doc! {"x": "$email"})).is_some());
    // A view over masked fields, made to be read later.
    let view = doc! {"create": "v", "viewOn": "c", "pipeline": [{"$project": {"x": "$email"}}]};
    assert!(refused(&["email"], "create", view).is_some());
    // Pipeline updates and renames copy masked values where masks do not reach.
    let pipeline_update =
        doc! {"update": "c", "updates": [{"q": {}, "u": [{"$set": {"x": "$email"}}]}]};
    assert!(refused(&["email"], "update", pipeline_update).is_some());
    let rename = doc! {"update": "c", "updates": [{"q": {}, "u": {"$rename": {"email": "x"}}}]};
    assert!(refused(&["email"], "update", rename).is_some());
    let plain = doc! {"update": "c", "updates": [{"q": {}, "u": {"$set": {"email": "new@x.y"}}}]};
    assert_eq!(refused(&["email"], "update", plain), None);
    let fam = doc! {"findAndModify": "c", "query": {}, "update": {"$rename": {"email": "e"}}};
    assert!(refused(&["email"], "findAndModify", fam).is_some());
    let fam_fields = doc! {"findAndModify": "c", "query": {}, "fields": {"x": "$email"}};
    assert!(refused(&["email"], "findAndModify", fam_fields).is_some());
    assert!(refused(&["email"], "mapReduce", doc! {"mapReduce": "c"}).is_some());
}

#[test]
fn bulk_write_pipelines_explain_and_other_collections_are_guarded() {
    let copy = doc! {"bulkWrite": 1, "ops": [{"update": 0, "filter": {}, "updateMods": [{"$set": {"name": "$email"}}]}],
    "nsInfo": [{"ns": "shop.customers"}]};
    assert!(refused(&["email"], "bulkWrite", copy).is_some());
    let rename = doc! {"bulkWrite": 1, "ops": [{"update": 0, "filter": {}, "updateMods": {"$rename": {"email": "x"}}}],
    "nsInfo": [{"ns": "shop.customers"}]};
    assert!(refused(&["email"], "bulkWrite", rename).is_some());
    let plain = doc! {"bulkWrite": 1, "ops": [{"update": 0, "filter": {"email": "a"}, "updateMods": {"$set": {"n": 1}}}],
    "nsInfo": [{"ns": "shop.customers"}]};
    assert_eq!(refused(&["email"], "bulkWrite", plain), None);
    let explain = doc! {"explain": aggregate(vec![doc! {"$project": {"x": "$email"}}]), "verbosity": "executionStats"};
    assert!(refused(&["email"], "explain", explain).is_some());
    let explain_find = doc! {"explain": {"find": "c", "filter": {"email": "a"}}};
    assert_eq!(refused(&["email"], "explain", explain_find), None);
    assert!(super::reaches_other_collections(&aggregate(vec![
        doc! {"$facet": {"a": [{"$unionWith": "other"}]}}
    ])));
    assert!(!super::reaches_other_collections(&aggregate(vec![
        doc! {"$match": {"from": "other"}}
    ])));
    let geo = aggregate(vec![
        doc! {"$geoNear": {"near": [0, 0], "distanceField": "d", "includeLocs": "x"}},
    ]);
    assert!(refused(&["ssn"], "aggregate", geo).is_some());
    let near = aggregate(vec![
        doc! {"$geoNear": {"near": [0, 0], "distanceField": "d"}},
    ]);
    assert_eq!(refused(&["ssn"], "aggregate", near), None);
    let watch = aggregate(vec![doc! {"$changeStream": {}}]);
    assert!(refused(&["ssn"], "aggregate", watch).is_some());
}
