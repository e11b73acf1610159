//! Masks on MongoDB replies: the documents of `cursor.firstBatch` /
//! `cursor.nextBatch`, `findAndModify`'s `value` and `distinct`'s `values`,
//! by field name at any depth or by dotted path (arrays entered element by
//! element), as `gate_policy::json::mask_json` does for JSON. Strings stay
//! strings; the `null` strategy gives BSON null; any other value becomes the
//! string `***` (`hash`: the hash of its extended JSON). And the guard that
//! refuses commands whose output Gate cannot trace while masks apply.

use bson::{Bson, Document};
use gate_policy::mask::{MaskingKey, MissingHashKey, hash, mask_text};
use gate_policy::{Mask, Strategy};

/// Commands whose cursors list catalog entries, not user documents.
const CATALOG: &[&str] = &["listCollections", "listIndexes", "listDatabases"];

/// Aggregate stages refused whenever masks apply: they read other
/// collections, copy documents elsewhere, or run JavaScript.
const REFUSED_STAGES: &[&str] = &[
    "$lookup",
    "$graphLookup",
    "$unionWith",
    "$out",
    "$merge",
    "$function",
    "$accumulator",
];

/// The masks of `masks` that apply to `collection` (those naming no table, or this one).
pub fn for_collection<'m>(masks: &'m [Mask], collection: Option<&str>) -> Vec<&'m Mask> {
    masks
        .iter()
        .filter(|m| m.table.as_deref().is_none_or(|t| Some(t) == collection))
        .collect()
}

/// Why the command `body` (`operation`) is refused while `masks` apply, if it is:
/// projections and pipeline stages that read a masked field into another
/// (or the whole document: `$$ROOT`), stages that reach other collections or
/// copy documents elsewhere, and server-side JavaScript.
pub fn guard(operation: &str, body: &Document, masks: &[&Mask]) -> Option<String> {
    if masks.is_empty() {
        return None;
    }
    match operation {
        "find" => {
            let projection = body.get("projection")?;
            let path = reference(projection, masks)?;
            Some(format!(
                "a find projection that reads {path} into another field is refused while masks apply"
            ))
        }
        "aggregate" => {
            let stages = super::command::pipeline(body)?;
            for stage in stages {
                let Some(name) = super::command::stage_name(stage) else {
                    return Some("an aggregate stage that is not a document".into());
                };
                if REFUSED_STAGES.contains(&name) {
                    return Some(format!(
                        "aggregate stage {name} can move masked fields out of Gate's sight; refused while masks apply"
                    ));
                }
                if let Some(path) = reference(stage, masks) {
                    return Some(format!(
                        "aggregate stage {name} can move or compute masked fields ({path}); refused while masks apply"
                    ));
                }
            }
            None
        }
        "mapReduce" | "mapreduce" | "group" | "$eval" | "eval" => Some(format!(
            "{operation} runs server-side JavaScript over documents; refused while masks apply"
        )),
        _ => None,
    }
}

/// The first field path in `value` (an expression, projection or stage)
/// that reads a masked field or the whole document: `$email`,
/// `$contact.email`, `$$this.email`, `$$ROOT`; or JavaScript (`$function`,
/// `$accumulator`, `$where`).
fn reference(value: &Bson, masks: &[&Mask]) -> Option<String> {
    match value {
        Bson::String(text) if text.starts_with('$') => {
            let path = text.trim_start_matches('$');
            let mut segments = path.split('.');
            let first = segments.next().unwrap_or_default();
            let whole = text.starts_with("$$") && matches!(first, "ROOT" | "CURRENT");
            if whole && path == first {
                return Some(text.clone());
            }
            let field = if text.starts_with("$$") {
                // `$$var.a.b`: the variable's fields `a.b`.
                path.split_once('.').map_or("", |(_, rest)| rest)
            } else {
                path
            };
            masks
                .iter()
                .any(|m| reads(field, &m.column))
                .then(|| text.clone())
        }
        Bson::Document(doc) => doc.iter().find_map(|(key, inner)| {
            if matches!(key.as_str(), "$function" | "$accumulator" | "$where") {
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

/// Mask the documents `reply` (the answer to `operation`) carries. Returns
/// how many documents were masked.
pub fn mask_reply(
    operation: &str,
    body: &Document,
    reply: &mut Document,
    masks: &[&Mask],
    key: Option<&MaskingKey>,
) -> Result<u64, MissingHashKey> {
    if masks.is_empty() || CATALOG.contains(&operation) {
        return Ok(0);
    }
    let mut count = 0;
    if let Ok(cursor) = reply.get_document_mut("cursor") {
        for field in ["firstBatch", "nextBatch"] {
            if let Ok(batch) = cursor.get_array_mut(field) {
                for doc in batch.iter_mut() {
                    mask_value(doc, masks, key)?;
                    count += 1;
                }
            }
        }
    }
    if matches!(operation, "findAndModify" | "findandmodify")
        && let Some(value) = reply.get_mut("value")
    {
        mask_value(value, masks, key)?;
        count += 1;
    }
    if operation == "distinct"
        && let Ok(field) = body.get_str("key")
        && let Some(strategy) = distinct_strategy(field, masks)
        && let Ok(values) = reply.get_array_mut("values")
    {
        for value in values.iter_mut() {
            mask_leaf(value, strategy, key)?;
            count += 1;
        }
    }
    Ok(count)
}

/// The strategy for `distinct`'s values of `field`: a mask naming its last
/// segment, or its whole dotted path (or a prefix of it).
fn distinct_strategy(field: &str, masks: &[&Mask]) -> Option<Strategy> {
    let last = field.rsplit('.').next().unwrap_or(field);
    masks
        .iter()
        .filter(|m| {
            if m.column.contains('.') {
                field == m.column || field.starts_with(&format!("{}.", m.column))
            } else {
                field.split('.').any(|segment| segment == m.column) || last == m.column
            }
        })
        .map(|m| m.strategy)
        .max()
}

/// Apply every mask to one value (a document, or an array of them).
pub fn mask_value(
    value: &mut Bson,
    masks: &[&Mask],
    key: Option<&MaskingKey>,
) -> Result<(), MissingHashKey> {
    let (paths, names): (Vec<&Mask>, Vec<&Mask>) =
        masks.iter().copied().partition(|m| m.column.contains('.'));
    if !names.is_empty() {
        by_name(value, &names, key)?;
    }
    for mask in paths {
        let segments: Vec<&str> = mask.column.split('.').collect();
        by_path(value, &segments, mask.strategy, key)?;
    }
    Ok(())
}

fn by_name(
    value: &mut Bson,
    masks: &[&Mask],
    key: Option<&MaskingKey>,
) -> Result<(), MissingHashKey> {
    match value {
        Bson::Document(doc) => {
            for (field, inner) in doc.iter_mut() {
                let hit = masks
                    .iter()
                    .filter(|m| m.column == *field)
                    .map(|m| m.strategy)
                    .max();
                match hit {
                    Some(strategy) => mask_leaf(inner, strategy, key)?,
                    None => by_name(inner, masks, key)?,
                }
            }
        }
        Bson::Array(items) => {
            for item in items {
                by_name(item, masks, key)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn by_path(
    value: &mut Bson,
    segments: &[&str],
    strategy: Strategy,
    key: Option<&MaskingKey>,
) -> Result<(), MissingHashKey> {
    match value {
        Bson::Array(items) => {
            for item in items {
                by_path(item, segments, strategy, key)?;
            }
        }
        Bson::Document(doc) => {
            if let Some((first, rest)) = segments.split_first()
                && let Some(inner) = doc.get_mut(*first)
            {
                if rest.is_empty() {
                    mask_leaf(inner, strategy, key)?;
                } else {
                    by_path(inner, rest, strategy, key)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Replace one value with its masked form.
fn mask_leaf(
    value: &mut Bson,
    strategy: Strategy,
    key: Option<&MaskingKey>,
) -> Result<(), MissingHashKey> {
    *value = match (strategy, &*value) {
        (_, Bson::Null) => return Ok(()),
        (Strategy::Null, _) => Bson::Null,
        (_, Bson::String(text)) => match mask_text(strategy, text, key)? {
            Some(masked) => Bson::String(masked),
            None => Bson::Null,
        },
        (Strategy::Hash, other) => {
            let key = key.ok_or(MissingHashKey)?;
            let text = other.clone().into_canonical_extjson().to_string();
            Bson::String(hash(text.as_bytes(), key))
        }
        _ => Bson::String("***".to_owned()),
    };
    Ok(())
}

#[cfg(test)]
#[path = "masking_tests.rs"]
mod tests;
