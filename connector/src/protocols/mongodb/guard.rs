//! The fail-closed guard: while masks apply to a command, Gate refuses what
//! would move a masked field where masking by name and path no longer finds
//! it, before it runs. That is any pipeline (`aggregate`, views made by
//! `create`/`collMod`, pipeline updates) or projection that reads a masked
//! field or the whole document into another field; `$rename` of a masked
//! field; stages that reach other collections or copy documents elsewhere
//! (`$lookup`, `$unionWith`, `$out`, `$merge`, …; a command reaching other
//! collections gets every mask, whatever collection a mask names); operators
//! that turn field names into data (`$objectToArray`, `$getField`, …);
//! change streams; `$geoNear`'s `includeLocs`; and server-side JavaScript. Reading a masked field in a filter (`$match`, `$expr`) is
//! allowed: it reveals only what a predicate can (see docs/mongodb.md).

use bson::{Bson, Document};
use gate_policy::Mask;

/// Operators refused anywhere in a command while masks apply.
const REFUSED: &[&str] = &[
    "$lookup",
    "$graphLookup",
    "$unionWith",
    "$out",
    "$merge",
    "$function",
    "$accumulator",
    "$where",
    "$objectToArray",
    "$getField",
    "$setField",
    "$unsetField",
    // Change events carry documents under `fullDocument` and changed fields
    // as dotted keys: out of reach of masks by path.
    "$changeStream",
];

/// Stages that read other collections: a command using one is guarded and
/// masked with every mask, whatever collection the masks name.
const OTHER_COLLECTIONS: &[&str] = &["$lookup", "$graphLookup", "$unionWith"];

/// Whether `body` reads collections besides the one it names (a `$lookup`,
/// `$graphLookup` or `$unionWith` anywhere in it).
pub fn reaches_other_collections(body: &Document) -> bool {
    body.iter().any(|(key, value)| {
        OTHER_COLLECTIONS.contains(&key.as_str()) || first_of(value, OTHER_COLLECTIONS).is_some()
    })
}

/// Stages that keep every field where it is (their references are filters or sort keys).
const IN_PLACE: &[&str] = &[
    "$match", "$sort", "$limit", "$skip", "$sample", "$unwind", "$unset", "$count",
];

/// Why `body` (the command `operation`) is refused while `masks` apply, if it is.
pub fn guard(operation: &str, body: &Document, masks: &[&Mask]) -> Option<String> {
    if masks.is_empty() {
        return None;
    }
    // `explain` can run what it explains (executionStats): guarded as that command.
    if let Some(inner) = super::command::explained(body) {
        return guard(super::command::name(inner), inner, masks);
    }
    if matches!(
        operation,
        "mapReduce" | "mapreduce" | "group" | "$eval" | "eval"
    ) {
        return Some(format!(
            "{operation} runs server-side JavaScript over documents; refused while masks apply"
        ));
    }
    if let Some(stages) = super::command::pipeline(body)
        && let Some(reason) = pipeline(stages, masks)
    {
        return Some(reason);
    }
    for field in ["projection", "fields"] {
        if let Some(projection) = body.get(field)
            && let Some(path) = reference(projection, masks)
        {
            return Some(format!(
                "a projection that reads {path} into another field is refused while masks apply"
            ));
        }
    }
    let updates: Vec<&Bson> = match operation {
        "update" => body
            .get_array("updates")
            .map(|u| u.iter().filter_map(|s| s.as_document()?.get("u")).collect())
            .unwrap_or_default(),
        "findAndModify" | "findandmodify" => body.get("update").into_iter().collect(),
        "bulkWrite" => body
            .get_array("ops")
            .map(|o| {
                o.iter()
                    .filter_map(|op| op.as_document()?.get("updateMods"))
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    updates
        .into_iter()
        .find_map(|update| self::update(update, masks))
}

/// A pipeline's first stage that can move masked fields.
fn pipeline(stages: &[Bson], masks: &[&Mask]) -> Option<String> {
    for stage in stages {
        let Some(name) = super::command::stage_name(stage) else {
            return Some("a pipeline stage that is not a document".into());
        };
        if let Some(operator) = refused_operator(stage) {
            return Some(format!(
                "{operator} can move masked fields out of Gate's sight; refused while masks apply"
            ));
        }
        if IN_PLACE.contains(&name) {
            continue;
        }
        if let Some(path) = reference(stage, masks) {
            return Some(format!(
                "aggregate stage {name} can move or compute masked fields ({path}); refused while masks apply"
            ));
        }
    }
    None
}

/// An update's way of moving a masked field: a pipeline update that reads
/// one, or `$rename` of one.
fn update(update: &Bson, masks: &[&Mask]) -> Option<String> {
    match update {
        Bson::Array(stages) => pipeline(stages, masks),
        Bson::Document(doc) => {
            let renames = doc.get_document("$rename").ok()?;
            renames.keys().find_map(|from| {
                masks.iter().any(|m| reads(from, &m.column)).then(|| {
                    format!("$rename of the masked field {from} is refused while masks apply")
                })
            })
        }
        _ => None,
    }
}

/// The first refused operator anywhere in `value`, or a `$geoNear` that
/// copies the location it matched into another field (`includeLocs`).
fn refused_operator(value: &Bson) -> Option<&str> {
    if let Some(found) = first_of(value, REFUSED) {
        return Some(found);
    }
    first_of(value, &["$geoNear"]).filter(|_| first_of(value, &["includeLocs"]).is_some())
}

/// The first key of `names` anywhere in `value`.
fn first_of<'v>(value: &'v Bson, names: &[&str]) -> Option<&'v str> {
    match value {
        Bson::Document(doc) => doc.iter().find_map(|(key, inner)| {
            if names.contains(&key.as_str()) {
                Some(key.as_str())
            } else {
                first_of(inner, names)
            }
        }),
        Bson::Array(items) => items.iter().find_map(|item| first_of(item, names)),
        _ => None,
    }
}

/// The first field path in `value` (an expression, projection or stage)
/// that reads a masked field or the whole document (`$email`,
/// `$contact.email`, `$$this.email`, `$$ROOT`), or a refused operator.
fn reference(value: &Bson, masks: &[&Mask]) -> Option<String> {
    match value {
        Bson::String(text) if text.starts_with('$') => {
            let path = text.trim_start_matches('$');
            let variable = text.starts_with("$$");
            let (head, rest) = path.split_once('.').unwrap_or((path, ""));
            if variable && rest.is_empty() && matches!(head, "ROOT" | "CURRENT") {
                return Some(text.clone());
            }
            // `$$var.a.b` reads the variable's fields `a.b`.
            let field = if variable { rest } else { path };
            masks
                .iter()
                .any(|m| reads(field, &m.column))
                .then(|| text.clone())
        }
        Bson::Document(doc) => doc.iter().find_map(|(key, inner)| {
            if REFUSED.contains(&key.as_str()) {
                return Some(key.clone());
            }
            reference(inner, masks)
        }),
        Bson::Array(items) => items.iter().find_map(|item| reference(item, masks)),
        _ => None,
    }
}

/// Whether reading the dotted `field` reads masked `column` (a name at any
/// depth, or a dotted path: the path itself, inside it, or a parent of it).
fn reads(field: &str, column: &str) -> bool {
    if field.is_empty() {
        return false;
    }
    if column.contains('.') {
        let under = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}."));
        under(field, column) || under(column, field)
    } else {
        field.split('.').any(|segment| segment == column)
    }
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
