//! Enforcement on JSON documents (HTTP bodies, MongoDB replies, MCP results):
//! masks by field name at any depth or by dotted path, and `filters` that drop
//! non-matching objects from arrays. Filters run first, then masks.

use std::borrow::Cow;

use serde_json::Value as Json;

pub use crate::json_doc::Doc;

use crate::decision::{Filter, FilterOp, FilterOperand, Mask, Strategy};
use crate::mask::{MaskingKey, MissingHashKey, hash, mask_text};

/// A JSON value enforcement works on: `serde_json::Value`, or a [`Doc`]
/// that borrows from the body it was parsed from.
pub trait Node: Sized {
    /// An object's entries (`None`: not an object).
    fn entries_mut(&mut self) -> Option<impl Iterator<Item = (&str, &mut Self)>>;
    /// An array's items (`None`: not an array).
    fn items_mut(&mut self) -> Option<&mut Vec<Self>>;
    fn is_object(&self) -> bool;
    /// An object's field.
    fn field(&self, key: &str) -> Option<&Self>;
    fn field_mut(&mut self, key: &str) -> Option<&mut Self>;
    /// What a mask works on.
    fn leaf(&self) -> Leaf<'_>;
    /// Replace the value with a string, or null.
    fn set_text(&mut self, text: Option<String>);
    /// The compact JSON text of the value, keys sorted (what `hash` hashes).
    fn canonical_text(&self) -> String;
    /// Equality with a filter operand (numbers by value).
    fn equals(&self, operand: &Json) -> bool;
    /// The compact JSON text.
    fn encode(&self) -> Vec<u8>;
}

/// A value as a mask sees it.
pub enum Leaf<'a> {
    Null,
    Text(Cow<'a, str>),
    /// An object or array.
    Container,
}

impl Node for Json {
    fn entries_mut(&mut self) -> Option<impl Iterator<Item = (&str, &mut Self)>> {
        match self {
            Json::Object(map) => Some(map.iter_mut().map(|(k, v)| (k.as_str(), v))),
            _ => None,
        }
    }
    fn items_mut(&mut self) -> Option<&mut Vec<Self>> {
        self.as_array_mut()
    }
    fn is_object(&self) -> bool {
        self.is_object()
    }
    fn field(&self, key: &str) -> Option<&Self> {
        self.as_object().and_then(|map| map.get(key))
    }
    fn field_mut(&mut self, key: &str) -> Option<&mut Self> {
        self.as_object_mut().and_then(|map| map.get_mut(key))
    }
    fn leaf(&self) -> Leaf<'_> {
        match self {
            Json::Null => Leaf::Null,
            Json::String(s) => Leaf::Text(Cow::Borrowed(s)),
            Json::Number(n) => Leaf::Text(Cow::Owned(n.to_string())),
            Json::Bool(b) => Leaf::Text(Cow::Owned(b.to_string())),
            Json::Array(_) | Json::Object(_) => Leaf::Container,
        }
    }
    fn set_text(&mut self, text: Option<String>) {
        *self = text.map_or(Json::Null, Json::String);
    }
    fn canonical_text(&self) -> String {
        self.to_string()
    }
    fn equals(&self, operand: &Json) -> bool {
        json_eq(self, operand)
    }
    fn encode(&self) -> Vec<u8> {
        // Serializing a Value cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl Node for Doc<'_> {
    fn entries_mut(&mut self) -> Option<impl Iterator<Item = (&str, &mut Self)>> {
        match self {
            Doc::Object(entries) => Some(entries.iter_mut().map(|(k, v)| (&**k, v))),
            _ => None,
        }
    }
    fn items_mut(&mut self) -> Option<&mut Vec<Self>> {
        match self {
            Doc::Array(items) => Some(items),
            _ => None,
        }
    }
    fn is_object(&self) -> bool {
        matches!(self, Doc::Object(_))
    }
    fn field(&self, key: &str) -> Option<&Self> {
        match self {
            Doc::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    fn field_mut(&mut self, key: &str) -> Option<&mut Self> {
        match self {
            Doc::Object(entries) => entries.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    fn leaf(&self) -> Leaf<'_> {
        match self {
            Doc::Null => Leaf::Null,
            Doc::String(s) => Leaf::Text(Cow::Borrowed(s)),
            Doc::Number(n) => Leaf::Text(Cow::Owned(n.to_string())),
            Doc::Bool(b) => Leaf::Text(Cow::Owned(b.to_string())),
            Doc::Array(_) | Doc::Object(_) => Leaf::Container,
        }
    }
    fn set_text(&mut self, text: Option<String>) {
        *self = text.map_or(Doc::Null, |t| Doc::String(Cow::Owned(t)));
    }
    fn canonical_text(&self) -> String {
        self.to_json().to_string()
    }
    fn equals(&self, operand: &Json) -> bool {
        match (self, operand) {
            (Doc::Number(x), Json::Number(y)) => numbers_eq(x, y),
            (Doc::String(a), Json::String(b)) => a == b,
            (Doc::Bool(a), Json::Bool(b)) => a == b,
            (Doc::Null, Json::Null) => true,
            (Doc::Array(_) | Doc::Object(_), _) => json_eq(&self.to_json(), operand),
            _ => false,
        }
    }
    fn encode(&self) -> Vec<u8> {
        self.to_vec()
    }
}

/// Apply every mask to `doc`.
///
/// A mask whose `column` contains a `.` is a path from the root (arrays on
/// the way are entered element by element); otherwise it matches the field
/// name at any depth. Strings are masked as text; numbers and booleans are
/// masked as their text (`123456789` → `"*****6789"`); objects and arrays
/// under a masked field become `"***"` (`hash`: the hash of their compact
/// JSON; `null`: null). JSON null stays null. Where several masks hit one
/// field, the strongest strategy wins.
pub fn mask_json<T: Node>(
    doc: &mut T,
    masks: &[Mask],
    key: Option<&MaskingKey>,
) -> Result<(), MissingHashKey> {
    let (paths, names): (Vec<&Mask>, Vec<&Mask>) =
        masks.iter().partition(|m| m.column.contains('.'));
    if !names.is_empty() {
        mask_by_name(doc, &names, key)?;
    }
    for mask in paths {
        let segments: Vec<&str> = mask.column.split('.').collect();
        mask_by_path(doc, &segments, mask.strategy, key)?;
    }
    Ok(())
}

fn strongest<'a>(masks: impl Iterator<Item = &'a Mask>) -> Option<Strategy> {
    masks.map(|m| m.strategy).max()
}

fn mask_by_name<T: Node>(
    doc: &mut T,
    masks: &[&Mask],
    key: Option<&MaskingKey>,
) -> Result<(), MissingHashKey> {
    if let Some(entries) = doc.entries_mut() {
        for (field, value) in entries {
            match strongest(masks.iter().copied().filter(|m| m.column == field)) {
                Some(strategy) => mask_leaf(value, strategy, key)?,
                None => mask_by_name(value, masks, key)?,
            }
        }
    } else if let Some(items) = doc.items_mut() {
        for item in items {
            mask_by_name(item, masks, key)?;
        }
    }
    Ok(())
}

fn mask_by_path<T: Node>(
    doc: &mut T,
    segments: &[&str],
    strategy: Strategy,
    key: Option<&MaskingKey>,
) -> Result<(), MissingHashKey> {
    if let Some(items) = doc.items_mut() {
        for item in items {
            mask_by_path(item, segments, strategy, key)?;
        }
    } else if let Some((first, rest)) = segments.split_first()
        && let Some(value) = doc.field_mut(first)
    {
        if rest.is_empty() {
            mask_leaf(value, strategy, key)?;
        } else {
            mask_by_path(value, rest, strategy, key)?;
        }
    }
    Ok(())
}

/// Replace one value with its masked form.
fn mask_leaf<T: Node>(
    value: &mut T,
    strategy: Strategy,
    key: Option<&MaskingKey>,
) -> Result<(), MissingHashKey> {
    let masked = match value.leaf() {
        Leaf::Null => return Ok(()),
        Leaf::Text(text) => mask_text(strategy, &text, key)?,
        Leaf::Container => match strategy {
            Strategy::Null => None,
            Strategy::Hash => {
                let key = key.ok_or(MissingHashKey)?;
                Some(hash(value.canonical_text().as_bytes(), key))
            }
            Strategy::Redact | Strategy::Partial | Strategy::Email => Some("***".to_owned()),
        },
    };
    value.set_text(masked);
    Ok(())
}

/// The outcome of filtering a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterOutcome {
    /// The document was an array; this many elements were dropped.
    Dropped(usize),
    /// The document is a single object that matches every filter.
    Kept,
    /// The document is a single object that fails a filter: refuse the response.
    Rejected,
    /// The document is neither an array nor an object: refuse the response.
    NotFilterable,
}

/// Keep only the array elements that satisfy every filter (filters are ANDed).
///
/// A top-level object is treated as one element: it is kept or rejected
/// whole. A missing field never equals anything: `eq`/`in` fail, `neq`/`not_in`
/// pass. Numbers compare by value (`1` equals `1.0`).
pub fn filter_json<T: Node>(doc: &mut T, filters: &[Filter]) -> FilterOutcome {
    if filters.is_empty() {
        return FilterOutcome::Dropped(0);
    }
    if let Some(items) = doc.items_mut() {
        let before = items.len();
        items.retain(|item| matches_all(item, filters));
        return FilterOutcome::Dropped(before - items.len());
    }
    if !doc.is_object() {
        return FilterOutcome::NotFilterable;
    }
    if matches_all(doc, filters) {
        FilterOutcome::Kept
    } else {
        FilterOutcome::Rejected
    }
}

/// [`filter_json`] with each filter applied to the array at its own `path`,
/// else at `default_path`, else the document itself (paths are dotted
/// object keys from the root). A path that leads nowhere, or to neither an
/// array nor an object, is [`FilterOutcome::NotFilterable`]; a rejected
/// object at a path is [`FilterOutcome::Rejected`]. Dropped counts add up.
pub fn filter_json_at<T: Node>(
    doc: &mut T,
    filters: &[Filter],
    default_path: Option<&str>,
) -> FilterOutcome {
    let mut groups: Vec<(Option<&str>, Vec<Filter>)> = Vec::new();
    for filter in filters {
        let at = filter
            .path
            .as_deref()
            .or(default_path)
            .filter(|p| !p.is_empty());
        match groups.iter_mut().find(|(p, _)| *p == at) {
            Some((_, group)) => group.push(filter.clone()),
            None => groups.push((at, vec![filter.clone()])),
        }
    }
    let mut dropped = 0;
    for (at, group) in groups {
        let target = match at {
            None => Some(&mut *doc),
            Some(path) => path
                .split('.')
                .try_fold(&mut *doc, |value, segment| value.field_mut(segment)),
        };
        let Some(target) = target else {
            return FilterOutcome::NotFilterable;
        };
        match filter_json(target, &group) {
            FilterOutcome::Dropped(n) => dropped += n,
            FilterOutcome::Kept => {}
            refused => return refused,
        }
    }
    FilterOutcome::Dropped(dropped)
}

fn matches_all<T: Node>(item: &T, filters: &[Filter]) -> bool {
    filters.iter().all(|f| matches(item, f))
}

fn matches<T: Node>(item: &T, filter: &Filter) -> bool {
    let field = lookup(item, &filter.field);
    let found = |candidates: &[Json]| field.is_some_and(|v| candidates.iter().any(|c| v.equals(c)));
    match (&filter.op, &filter.operand) {
        (FilterOp::Eq, FilterOperand::Value(v)) => found(std::slice::from_ref(v)),
        (FilterOp::Neq, FilterOperand::Value(v)) => !found(std::slice::from_ref(v)),
        (FilterOp::In, FilterOperand::Values(vs)) => found(vs),
        (FilterOp::NotIn, FilterOperand::Values(vs)) => !found(vs),
        // Decision parsing never builds these; treat them as non-matching.
        _ => false,
    }
}

/// A field of an object by name or dotted path.
fn lookup<'a, T: Node>(item: &'a T, field: &str) -> Option<&'a T> {
    if let Some(direct) = item.field(field) {
        return Some(direct);
    }
    field
        .split('.')
        .try_fold(item, |value, segment| value.field(segment))
}

fn json_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => numbers_eq(x, y),
        _ => a == b,
    }
}

fn numbers_eq(x: &serde_json::Number, y: &serde_json::Number) -> bool {
    match (x.as_i64(), y.as_i64()) {
        (Some(x), Some(y)) => x == y,
        _ => x.as_f64() == y.as_f64(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mask(column: &str, strategy: Strategy) -> Mask {
        Mask {
            column: column.into(),
            strategy,
            table: None,
        }
    }

    fn filter(field: &str, op: FilterOp, operand: FilterOperand) -> Filter {
        Filter {
            field: field.into(),
            op,
            operand,
            path: None,
        }
    }

    #[test]
    fn filters_apply_at_their_path_or_the_default_one() {
        let mut doc = json!({"data": {"items": [{"org": 1}, {"org": 2}, {"org": 1}]}, "total": 3});
        let mut f = filter("org", FilterOp::Eq, FilterOperand::Value(json!(1)));
        assert_eq!(
            filter_json_at(&mut doc.clone(), std::slice::from_ref(&f), None),
            FilterOutcome::Rejected,
            "without a path the object itself is filtered"
        );
        assert_eq!(
            filter_json_at(&mut doc, std::slice::from_ref(&f), Some("data.items")),
            FilterOutcome::Dropped(1)
        );
        assert_eq!(doc["data"]["items"], json!([{"org": 1}, {"org": 1}]));
        f.path = Some("data.missing".into());
        assert_eq!(
            filter_json_at(&mut doc, std::slice::from_ref(&f), Some("data.items")),
            FilterOutcome::NotFilterable,
            "a policy path that leads nowhere refuses"
        );
    }

    /// Filter and mask `text` both as a `serde_json::Value` and as a borrowed
    /// [`Doc`]; the two must agree on the outcome and the resulting JSON.
    fn both_ways(text: &str, filters: &[Filter], at: Option<&str>, masks: &[Mask]) -> Json {
        let mut value: Json = serde_json::from_str(text).unwrap();
        let mut doc = Doc::parse(text.as_bytes()).unwrap();
        let a = filter_json_at(&mut value, filters, at);
        let b = filter_json_at(&mut doc, filters, at);
        assert_eq!(a, b, "filter outcomes differ for {text}");
        mask_json(&mut value, masks, None).unwrap();
        mask_json(&mut doc, masks, None).unwrap();
        let doc: Json = serde_json::from_slice(&doc.to_vec()).unwrap();
        assert_eq!(value, doc, "enforcement differs for {text}");
        value
    }

    #[test]
    fn a_borrowed_doc_is_enforced_exactly_like_a_value() {
        let masks = [
            mask("email", Strategy::Email),
            mask("profile.ssn", Strategy::Redact),
            mask("card", Strategy::Partial),
        ];
        let org = filter(
            "org",
            FilterOp::In,
            FilterOperand::Values(vec![json!(1), json!("acme")]),
        );
        let cases = [
            r#"[{"org": 1.0, "email": "a@b.co"}, {"org": 2, "email": "c@d.co"}, {"org": "acme", "card": 4111111111111111}]"#,
            r#"{"data": {"items": [{"org": "acme", "profile": {"ssn": "123", "email": "x@y.z"}}, {"org": "x"}]}}"#,
            r#"[{"org": "acme", "email": "first@x.io", "email": "last@x.io"}, {"org": "evil", "org": "acme", "card": [1, 2]}]"#,
            r#"[{"org": "acme", "profile": [{"ssn": 1}, {"ssn": null}], "card": {"n": 1}}, "loose", 3, null]"#,
            r#"{"org": "acme", "email": "solo@x.io"}"#,
            r#"{"org": "other", "email": "solo@x.io"}"#,
            r#""just a string""#,
        ];
        for case in cases {
            both_ways(case, std::slice::from_ref(&org), None, &masks);
            both_ways(case, &[], None, &masks);
            both_ways(case, std::slice::from_ref(&org), Some("data.items"), &masks);
        }
        let dup = both_ways(cases[2], std::slice::from_ref(&org), None, &masks);
        assert_eq!(
            dup,
            json!([{"org": "acme", "email": "l***@x.io"}, {"org": "acme", "card": "***"}]),
            "duplicate keys: the last counts, for filters and masks alike"
        );
    }

    #[test]
    fn masks_a_field_name_at_any_depth() {
        let mut doc = json!({
            "email": "alice@example.com",
            "profile": {"email": "bob@example.org", "name": "Bob"},
            "contacts": [{"email": "carol@example.net"}, {"phone": "555"}]
        });
        mask_json(&mut doc, &[mask("email", Strategy::Email)], None).unwrap();
        assert_eq!(
            doc,
            json!({
                "email": "a***@example.com",
                "profile": {"email": "b***@example.org", "name": "Bob"},
                "contacts": [{"email": "c***@example.net"}, {"phone": "555"}]
            })
        );
    }

    #[test]
    fn dotted_path_masks_only_that_path() {
        let mut doc = json!({
            "ssn": "keep-top-level",
            "customer": {"ssn": "123-45-6789"},
            "items": [{"customer": {"ssn": "987-65-4321"}}]
        });
        mask_json(&mut doc, &[mask("customer.ssn", Strategy::Partial)], None).unwrap();
        assert_eq!(doc["ssn"], json!("keep-top-level"));
        assert_eq!(doc["customer"]["ssn"], json!("*******6789"));
        assert_eq!(
            doc["items"][0]["customer"]["ssn"],
            json!("987-65-4321"),
            "path is rooted"
        );
        let mut list = json!([{"customer": {"ssn": "111-22-3333"}}]);
        mask_json(&mut list, &[mask("customer.ssn", Strategy::Redact)], None).unwrap();
        assert_eq!(
            list,
            json!([{"customer": {"ssn": "***"}}]),
            "root arrays are entered"
        );
    }

    #[test]
    fn non_string_values_are_masked_as_text_and_containers_wholesale() {
        let mut doc =
            json!({"ssn": 123456789, "vip": true, "card": {"number": "4111"}, "gone": null});
        let masks = [
            mask("ssn", Strategy::Partial),
            mask("vip", Strategy::Redact),
            mask("card", Strategy::Partial),
            mask("gone", Strategy::Redact),
        ];
        mask_json(&mut doc, &masks, None).unwrap();
        assert_eq!(
            doc,
            json!({"ssn": "*****6789", "vip": "***", "card": "***", "gone": null})
        );
    }

    #[test]
    fn strongest_strategy_wins_per_field() {
        let mut doc = json!({"email": "alice@example.com"});
        mask_json(
            &mut doc,
            &[
                mask("email", Strategy::Partial),
                mask("email", Strategy::Redact),
            ],
            None,
        )
        .unwrap();
        assert_eq!(doc, json!({"email": "***"}));
    }

    #[test]
    fn null_and_hash_strategies() {
        let key = MaskingKey::new("k").unwrap();
        let mut doc = json!({"a": "x", "b": "x", "c": {"d": 1}});
        let masks = [
            mask("a", Strategy::Null),
            mask("b", Strategy::Hash),
            mask("c", Strategy::Hash),
        ];
        mask_json(&mut doc, &masks, Some(&key)).unwrap();
        assert_eq!(doc["a"], Json::Null);
        assert_eq!(doc["b"], json!(hash(b"x", &key)));
        assert_eq!(doc["c"], json!(hash(br#"{"d":1}"#, &key)));
        let mut doc = json!({"b": "x"});
        assert_eq!(
            mask_json(&mut doc, &[mask("b", Strategy::Hash)], None),
            Err(MissingHashKey)
        );
    }

    #[test]
    fn filters_drop_non_matching_array_elements() {
        let mut doc = json!([
            {"id": 1, "org_id": 7, "region": "eu"},
            {"id": 2, "org_id": 8, "region": "us"},
            {"id": 3, "org_id": 7.0, "region": "us"},
            {"id": 4, "region": "eu"},
            "not an object"
        ]);
        let outcome = filter_json(
            &mut doc,
            &[filter(
                "org_id",
                FilterOp::Eq,
                FilterOperand::Value(json!(7)),
            )],
        );
        assert_eq!(outcome, FilterOutcome::Dropped(3));
        assert_eq!(
            doc,
            json!([{"id": 1, "org_id": 7, "region": "eu"}, {"id": 3, "org_id": 7.0, "region": "us"}])
        );
    }

    #[test]
    fn filter_operators() {
        let rows = json!([{"r": "eu"}, {"r": "us"}, {"r": "ap"}, {}]);
        let run = |f: Filter| {
            let mut doc = rows.clone();
            filter_json(&mut doc, &[f]);
            doc
        };
        assert_eq!(
            run(filter(
                "r",
                FilterOp::Neq,
                FilterOperand::Value(json!("us"))
            )),
            json!([{"r": "eu"}, {"r": "ap"}, {}])
        );
        assert_eq!(
            run(filter(
                "r",
                FilterOp::In,
                FilterOperand::Values(vec![json!("eu"), json!("ap")])
            )),
            json!([{"r": "eu"}, {"r": "ap"}])
        );
        assert_eq!(
            run(filter(
                "r",
                FilterOp::NotIn,
                FilterOperand::Values(vec![json!("eu"), json!("ap")])
            )),
            json!([{"r": "us"}, {}])
        );
    }

    #[test]
    fn filters_are_anded_and_support_dotted_fields() {
        let mut doc = json!([
            {"owner": {"team": "a"}, "public": true},
            {"owner": {"team": "a"}, "public": false},
            {"owner": {"team": "b"}, "public": true}
        ]);
        let filters = [
            filter("owner.team", FilterOp::Eq, FilterOperand::Value(json!("a"))),
            filter("public", FilterOp::Eq, FilterOperand::Value(json!(true))),
        ];
        assert_eq!(filter_json(&mut doc, &filters), FilterOutcome::Dropped(2));
        assert_eq!(doc, json!([{"owner": {"team": "a"}, "public": true}]));
    }

    #[test]
    fn single_objects_are_kept_or_rejected_whole() {
        let f = [filter(
            "org_id",
            FilterOp::Eq,
            FilterOperand::Value(json!(7)),
        )];
        assert_eq!(
            filter_json(&mut json!({"org_id": 7}), &f),
            FilterOutcome::Kept
        );
        assert_eq!(
            filter_json(&mut json!({"org_id": 8}), &f),
            FilterOutcome::Rejected
        );
        assert_eq!(
            filter_json(&mut json!("text"), &f),
            FilterOutcome::NotFilterable
        );
    }
}
