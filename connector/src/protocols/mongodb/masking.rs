//! Masks on MongoDB replies: the documents of `cursor.firstBatch` /
//! `cursor.nextBatch`, `findAndModify`'s `value` and `distinct`'s `values`,
//! by field name at any depth or by dotted path (arrays entered element by
//! element), as `gate_policy::json::mask_json` does for JSON. Strings stay
//! strings; the `null` strategy gives BSON null; any other value becomes the
//! string `***` (`hash`: the hash of its extended JSON). Duplicate-key
//! errors lose the values they quote. What Gate cannot trace is refused
//! before it runs (`super::guard`).

use bson::{Bson, Document};
use gate_policy::mask::{MaskingKey, MissingHashKey, hash, mask_text};
use gate_policy::{Mask, Strategy};

/// Commands whose cursors list catalog entries, not user documents.
const CATALOG: &[&str] = &["listCollections", "listIndexes", "listDatabases"];

/// The masks of `masks` that apply to `collection`: those naming no table,
/// or this one; every mask when the command names no collection
/// (`aggregate: 1`), since Gate cannot tell where its documents come from.
pub fn for_collection<'m>(masks: &'m [Mask], collection: Option<&str>) -> Vec<&'m Mask> {
    masks
        .iter()
        .filter(|m| match (m.table.as_deref(), collection) {
            (Some(table), Some(collection)) => table == collection,
            _ => true,
        })
        .collect()
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

/// Errors that quote stored values (a duplicate key's `keyValue` and the
/// `dup key: {…}` of its message) lose them; for replies while masks apply.
/// Returns how many errors were redacted.
pub fn redact_errors(reply: &mut Document) -> u64 {
    fn one(error: &mut Document) -> u64 {
        let mut changed = 0;
        if let Some(value) = error.get_mut("keyValue") {
            *value = Bson::String("***".to_owned());
            changed = 1;
        }
        if let Ok(message) = error.get_str("errmsg")
            && let Some((before, _)) = message.split_once("dup key:")
        {
            let redacted = format!("{before}dup key: {{ <redacted by Gate> }}");
            error.insert("errmsg", redacted);
            changed = 1;
        }
        changed
    }
    let mut changed = one(reply);
    // bulkWrite reports each operation's error in its cursor (`{ok: 0, idx, code, errmsg, keyValue}`).
    if let Ok(cursor) = reply.get_document_mut("cursor") {
        for batch in ["firstBatch", "nextBatch"] {
            for entry in cursor.get_array_mut(batch).into_iter().flatten() {
                if let Bson::Document(entry) = entry
                    && entry.contains_key("idx")
                    && entry.contains_key("code")
                {
                    changed += one(entry);
                }
            }
        }
    }
    for field in ["writeErrors", "writeConcernError"] {
        match reply.get_mut(field) {
            Some(Bson::Array(errors)) => {
                for error in errors.iter_mut() {
                    if let Bson::Document(error) = error {
                        changed += one(error);
                    }
                }
            }
            Some(Bson::Document(error)) => changed += one(error),
            _ => {}
        }
    }
    changed
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
                // A stored key may hold dots (`{"contact.email": …}`): each segment is a name.
                let hit = masks
                    .iter()
                    .filter(|m| m.column == *field || field.split('.').any(|s| s == m.column))
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
            // A key holding dots (`{"contact.email": …}`) stands for its segments.
            for (field, inner) in doc.iter_mut() {
                let parts: Vec<&str> = field.split('.').collect();
                if !parts.iter().zip(segments).all(|(a, b)| a == b) {
                    continue;
                }
                match segments.get(parts.len()..) {
                    Some(rest) if !rest.is_empty() => by_path(inner, rest, strategy, key)?,
                    _ => mask_leaf(inner, strategy, key)?,
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
