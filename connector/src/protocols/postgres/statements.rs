//! A classification cache shared by every session: single statements keyed by their text with
//! literals replaced by `?`, so `... where aid = 1` and `... where aid = 2` are parsed once.
//! Only the statement's kind and tables are cached (they do not depend on literal values); the
//! text a policy sees is always the text the client sent.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use gate_policy::QueryInfo;

use crate::sql::classify;

/// Entries kept before the cache starts over.
const CAPACITY: usize = 4096;
/// Statements longer than this are parsed every time (keys would cost more than they save).
const MAX_LEN: usize = 4096;

/// What a statement's shape determines.
#[derive(Debug, Clone)]
struct Shape {
    kind: String,
    tables: Vec<String>,
}

/// Shared across sessions (pgbench `-C` opens a session per transaction).
#[derive(Debug, Default)]
pub struct StatementCache {
    shapes: RwLock<HashMap<String, Shape>>,
}

impl StatementCache {
    /// Like [`classify`], from the cache when a statement of the same shape was seen.
    pub fn classify(&self, sql: &str) -> Arc<[QueryInfo]> {
        let key = normalize(sql);
        if let Some(key) = &key
            && let Ok(shapes) = self.shapes.read()
            && let Some(shape) = shapes.get(key)
        {
            return Arc::new([QueryInfo {
                raw: sql.to_owned(),
                kind: shape.kind.clone(),
                statement: Some(sql.trim().trim_end_matches(';').trim_end().to_owned()),
                tables: shape.tables.clone(),
                ..Default::default()
            }]);
        }
        let classified = classify(sql);
        if let (Some(key), [single]) = (key, classified.as_slice())
            && single.kind != "unknown"
            && let Ok(mut shapes) = self.shapes.write()
        {
            if shapes.len() >= CAPACITY {
                shapes.clear();
            }
            shapes.insert(
                key,
                Shape {
                    kind: single.kind.clone(),
                    tables: single.tables.clone(),
                },
            );
        }
        classified.into()
    }
}

/// `sql` with every string and number literal replaced by `?`, or `None` when the text has
/// anything this scanner does not understand exactly (comments, dollar quotes, backslashes,
/// escape strings, several statements): those are always parsed.
pub fn normalize(sql: &str) -> Option<String> {
    if sql.len() > MAX_LEN || sql.contains('\\') {
        return None;
    }
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut ended = false;
    while i < bytes.len() {
        let c = bytes[i];
        if ended && !c.is_ascii_whitespace() {
            return None; // text after the statement's `;`
        }
        match c {
            b'\'' => {
                // A string: '' inside is a quote. Letters right before it (E'', U&'', B'', X'')
                // were copied as an identifier; E and U& change the rules, so give up on them.
                if out.ends_with(['e', 'E', '&']) && !prev_is_separator(&out) {
                    return None;
                }
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return None,
                        Some(b'\'') if bytes.get(i + 1) == Some(&b'\'') => i += 2,
                        Some(b'\'') => break,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
                if bytes.get(i).is_some_and(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'\'' | b'"') || *b >= 0x80
                }) {
                    return None;
                }
                out.push('?');
            }
            b'"' => {
                let end = sql[i + 1..].find('"')? + i + 1;
                out.push_str(&sql[i..=end]);
                i = end + 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => return None,
            b'/' if bytes.get(i + 1) == Some(&b'*') => return None,
            b'$' => {
                // $1 parameters are kept; $tag$ quoting is not handled.
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if digits == 0 {
                    return None;
                }
                out.push_str(&sql[i..=i + digits]);
                i += 1 + digits;
            }
            b';' => {
                ended = true;
                out.push(';');
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let len = sql[i..]
                    .char_indices()
                    .find(|(_, ch)| !(ch.is_alphanumeric() || *ch == '_' || *ch == '$'))
                    .map_or(sql.len() - i, |(at, _)| at);
                if len == 0 {
                    return None; // a symbol outside ASCII
                }
                out.push_str(&sql[i..i + len]);
                i += len;
            }
            c if c.is_ascii_digit()
                || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                // A number: digits [. digits] [e [+-] digits]. Anything glued to it (`1from`,
                // `0x1F`, `1_000`) is left to the parser: the server would split it differently.
                let digits = |from: usize| {
                    bytes[from..]
                        .iter()
                        .take_while(|b| b.is_ascii_digit())
                        .count()
                };
                i += digits(i);
                if bytes.get(i) == Some(&b'.') {
                    i += 1 + digits(i + 1);
                }
                if matches!(bytes.get(i), Some(b'e' | b'E')) {
                    let sign = usize::from(matches!(bytes.get(i + 1), Some(b'+' | b'-')));
                    let exponent = digits(i + 1 + sign);
                    if exponent == 0 {
                        return None;
                    }
                    i += 1 + sign + exponent;
                }
                if bytes.get(i).is_some_and(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'_' | b'.' | b'$' | b'\'')
                        || *b >= 0x80
                }) {
                    return None;
                }
                out.push('?');
            }
            _ => {
                out.push(char::from(c));
                i += 1;
            }
        }
    }
    // `select 1` and `select 1;` are the same statement.
    Some(out.trim_end().trim_end_matches(';').trim_end().to_owned())
}

/// Whether the identifier just copied is a whole word (so `E` in `WHERE` is not a prefix).
fn prev_is_separator(out: &str) -> bool {
    let word: String = out
        .chars()
        .rev()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '&')
        .collect();
    !(word.eq_ignore_ascii_case("e") || word.eq_ignore_ascii_case("&u"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn literals_become_placeholders_and_nothing_else_changes() {
        let cases = [
            (
                "SELECT abalance FROM pgbench_accounts WHERE aid = 4711;",
                "SELECT abalance FROM pgbench_accounts WHERE aid = ?",
            ),
            (
                "select * from t where a = 'it''s' and b = 1.5e-3",
                "select * from t where a = ? and b = ?",
            ),
            (
                "select \"we'ird\" from t1 where x=$1",
                "select \"we'ird\" from t1 where x=$1",
            ),
            (
                "update t set v = .5 where id = 10",
                "update t set v = ? where id = ?",
            ),
            ("select B'0101', X'ff'", "select B?, X?"),
            ("select 'é' from tëst", "select ? from tëst"),
        ];
        for (sql, want) in cases {
            assert_eq!(normalize(sql).as_deref(), Some(want), "{sql}");
        }
    }

    #[test]
    fn anything_unusual_is_not_cached() {
        for sql in [
            "select 1; drop table t",
            "select 'a' -- comment",
            "select /* c */ 1",
            "select $$x$$",
            "select E'\\''",
            "select e'x'",
            "select U&'d\\0061t'",
            "select 'unterminated",
            "select \"unterminated",
            "select € from t",
        ] {
            assert_eq!(normalize(sql), None, "{sql}");
        }
        // Numbers glued to words would let `select 1 secret` (an alias) and
        // `select 1from secret` (a table) share a key: never cached.
        for sql in [
            "select 1from secret",
            "select 1e",
            "select 0x1F",
            "select 1_000",
            "select 'a'b",
        ] {
            assert_eq!(normalize(sql), None, "{sql}");
        }
        // A keyword ending in e before a string is fine.
        assert_eq!(
            normalize("select 1 where 'a' like 'b'").as_deref(),
            Some("select ? where ? like ?")
        );
    }

    #[test]
    fn cached_classification_equals_a_fresh_parse() {
        let cache = StatementCache::default();
        for sql in [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 1",
            "SELECT abalance FROM pgbench_accounts WHERE aid = 2",
            "insert into audit_log values (1, 'x')",
            "insert into audit_log values (2, 'y');",
            "drop table customers",
        ] {
            let cached = cache.classify(sql);
            let fresh = classify(sql);
            assert_eq!(cached.len(), fresh.len());
            for (a, b) in cached.iter().zip(&fresh) {
                assert_eq!(
                    (&a.raw, &a.kind, &a.statement, &a.tables),
                    (&b.raw, &b.kind, &b.statement, &b.tables),
                    "{sql}"
                );
            }
        }
        assert_eq!(cache.shapes.read().unwrap().len(), 3);
        // Different structure, same literals: different keys.
        assert_ne!(
            normalize("select a from t where x = 1"),
            normalize("select a from u where x = 1")
        );
    }
}
