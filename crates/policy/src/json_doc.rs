//! A JSON document that borrows from the bytes it was parsed from, for
//! enforcement on response bodies: keys and unescaped strings are not
//! copied, objects keep their keys in order (and any duplicates), so parsing,
//! masking and re-encoding a body costs a fraction of `serde_json::Value`'s
//! (a `BTreeMap` and a `String` per key). Parsed by serde_json (its grammar,
//! depth limit and errors); written back with serde_json's escaping.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value as Json};

/// One JSON value borrowing from its source text.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Doc<'a>>),
    /// Entries in document order, duplicates kept.
    Object(Vec<(Cow<'a, str>, Doc<'a>)>),
}

impl<'a> Doc<'a> {
    /// Parse `bytes` (strict JSON, serde_json's recursion limit).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The compact JSON text (what serde_json writes for the same value).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Doc::Null => out.extend_from_slice(b"null"),
            Doc::Bool(true) => out.extend_from_slice(b"true"),
            Doc::Bool(false) => out.extend_from_slice(b"false"),
            Doc::Number(n) => {
                // Writing a number into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *out, n);
            }
            Doc::String(s) => write_str(out, s),
            Doc::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
            Doc::Object(entries) => {
                out.push(b'{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(out, key);
                    out.push(b':');
                    value.write(out);
                }
                out.push(b'}');
            }
        }
    }

    /// The same value as a `serde_json::Value` (duplicate keys: the last wins).
    pub fn to_json(&self) -> Json {
        match self {
            Doc::Null => Json::Null,
            Doc::Bool(b) => Json::Bool(*b),
            Doc::Number(n) => Json::Number(n.clone()),
            Doc::String(s) => Json::String(s.to_string()),
            Doc::Array(items) => Json::Array(items.iter().map(Doc::to_json).collect()),
            Doc::Object(entries) => Json::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// A JSON string: verbatim when nothing in it needs escaping (the common
/// case), else with serde_json's escaping.
fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

impl<'de> Deserialize<'de> for Doc<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DocVisitor)
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Doc<'de>, E> {
        Ok(Doc::Null)
    }
    fn visit_none<E>(self) -> Result<Doc<'de>, E> {
        Ok(Doc::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Doc<'de>, E> {
        Ok(Doc::Bool(b))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Doc<'de>, E> {
        Ok(Doc::Number(n.into()))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Doc<'de>, E> {
        Ok(Doc::Number(n.into()))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Doc<'de>, E> {
        Number::from_f64(n)
            .map(Doc::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Doc<'de>, E> {
        Ok(Doc::String(Cow::Owned(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Doc::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<'de>, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(4));
        while let Some(Key(key)) = map.next_key()? {
            entries.push((key, map.next_value()?));
        }
        keep_last_duplicates(&mut entries);
        Ok(Doc::Object(entries))
    }
}

/// Drop all but the last entry of each key, as `serde_json::Value` does: a
/// filtered or masked object must not keep an earlier duplicate a client
/// might read instead.
fn keep_last_duplicates(entries: &mut Vec<(Cow<'_, str>, Doc<'_>)>) {
    let duplicated = if entries.len() <= 16 {
        (1..entries.len()).any(|i| entries[..i].iter().any(|(k, _)| *k == entries[i].0))
    } else {
        let mut seen = HashSet::with_capacity(entries.len());
        !entries.iter().all(|(k, _)| seen.insert(&**k))
    };
    if !duplicated {
        return;
    }
    let mut seen = HashSet::with_capacity(entries.len());
    let mut kept: Vec<_> = entries
        .drain(..)
        .rev()
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect();
    kept.reverse();
    *entries = kept;
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_back_in_document_order() {
        let text = r#"{"b":1,"a":[true,null,-2,1.5e3,"x\"y"],"b":"dup","é":{}}"#;
        let doc = Doc::parse(text.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(doc.to_vec()).unwrap(),
            r#"{"a":[true,null,-2,1500.0,"x\"y"],"b":"dup","é":{}}"#,
            "the last of duplicate keys is kept, as serde_json::Value keeps it"
        );
        let Doc::Object(entries) = &doc else {
            panic!("an object")
        };
        assert!(
            matches!(entries[0].0, Cow::Borrowed("a")),
            "keys are borrowed"
        );
        assert_eq!(
            doc.to_json()["b"],
            "dup",
            "the last duplicate wins as a Value"
        );
    }

    #[test]
    fn duplicates_in_large_objects_are_dropped_too() {
        let mut text = String::from("{");
        for i in 0..40 {
            text.push_str(&format!("\"k{i}\": {i}, "));
        }
        text.push_str("\"k3\": \"last\"}");
        let doc = Doc::parse(text.as_bytes()).unwrap();
        let Doc::Object(entries) = &doc else {
            panic!("an object")
        };
        assert_eq!(entries.len(), 40);
        assert_eq!(doc.to_json()["k3"], "last");
        assert_eq!(entries.iter().filter(|(k, _)| k == "k3").count(), 1);
    }

    #[test]
    fn malformed_and_too_deep_documents_are_errors() {
        assert!(Doc::parse(b"{\"a\": 1,}").is_err());
        assert!(Doc::parse(b"[1] 2").is_err());
        let tricky = Doc::String(Cow::Borrowed("a\"b\\c\u{1}\u{7f}é"));
        assert_eq!(
            tricky.to_vec(),
            serde_json::to_vec(&tricky.to_json()).unwrap(),
            "written like serde_json, escapes included"
        );
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(Doc::parse(deep.as_bytes()).is_err(), "recursion is limited");
    }
}
