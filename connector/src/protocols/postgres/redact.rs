//! Server messages while masks apply: an ErrorResponse or NoticeResponse can
//! quote a value it failed on (`invalid input syntax for type integer:
//! "bob@example.org"`, `Key (email)=(…) already exists`), and procedural
//! code can `RAISE` anything it read. Gate keeps every field that names
//! things (SQLSTATE, severity, schema, table, column, constraint, position)
//! and the message's shape, and replaces the values: quoted values become
//! `"***"`, parenthesised key values `(***)`, row contents `(***)`, and the
//! text of a `RAISE` (SQLSTATE class 00, 01 and P0) `***`. Pure.

/// Fields that can carry data: message, detail, hint, where (context), internal query.
const DATA_FIELDS: &[u8] = b"MDHWq";
/// The SQLSTATE field.
const CODE: u8 = b'C';
/// The where (context) field: names code locations, and may quote statements.
const WHERE: u8 = b'W';
/// What replaces a value.
const HIDDEN: &str = "***";

/// Words after which a quoted name is an identifier, kept as is.
const NAMED: &[&str] = &[
    "relation",
    "table",
    "column",
    "type",
    "function",
    "schema",
    "database",
    "role",
    "index",
    "constraint",
    "sequence",
    "view",
    "operator",
    "parameter",
    "trigger",
    "extension",
    "cursor",
    "statement",
    "portal",
    "savepoint",
    "user",
    "collation",
    "domain",
    "language",
    "policy",
    "rule",
    "publication",
    "subscription",
    "tablespace",
    "server",
    "at or near",
];

/// The fields of one message with values replaced (see the module doc).
pub fn redact(fields: &[(u8, String)]) -> Vec<(u8, String)> {
    let code = fields
        .iter()
        .find(|(k, _)| *k == CODE)
        .map(|(_, c)| c.as_str())
        .unwrap_or("");
    let raised = code.starts_with("00") || code.starts_with("01") || code.starts_with("P0");
    fields
        .iter()
        .map(|(kind, value)| {
            let value = if !DATA_FIELDS.contains(kind) {
                value.clone()
            } else if raised && *kind != WHERE {
                HIDDEN.to_owned()
            } else {
                redact_text(value)
            };
            (*kind, value)
        })
        .collect()
}

/// Replace quoted values, `=(…)` key values and `contains (…)` row contents.
pub fn redact_text(text: &str) -> String {
    let quoted = redact_quoted(text);
    let keys = redact_after(&quoted, ")=(");
    redact_after(&keys, "contains (")
}

fn redact_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('"') {
        let (before, after) = rest.split_at(open);
        out.push_str(before);
        let Some(close) = after[1..].find('"') else {
            out.push_str(after);
            return out;
        };
        let inner = &after[1..=close];
        let lowered = out.to_ascii_lowercase();
        let named = NAMED.iter().any(|w| lowered.trim_end().ends_with(w));
        out.push('"');
        out.push_str(if named { inner } else { HIDDEN });
        out.push('"');
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// Replace what follows `marker` up to its closing parenthesis.
fn redact_after(text: &str, marker: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let (before, after) = rest.split_at(at + marker.len());
        out.push_str(before);
        out.push_str(HIDDEN);
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = i;
                    break;
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_hidden_and_names_kept() {
        assert_eq!(
            redact_text("invalid input syntax for type integer: \"bob@example.org\""),
            "invalid input syntax for type integer: \"***\""
        );
        assert_eq!(
            redact_text("relation \"customers\" does not exist"),
            "relation \"customers\" does not exist"
        );
        assert_eq!(
            redact_text("column \"emal\" does not exist"),
            "column \"emal\" does not exist"
        );
        assert_eq!(
            redact_text("Key (email)=(bob@example.org) already exists."),
            "Key (email)=(***) already exists."
        );
        assert_eq!(
            redact_text("Failing row contains (1, bob@example.org, null)."),
            "Failing row contains (***)."
        );
        assert_eq!(
            redact_text("value too long for type character varying(3)"),
            "value too long for type character varying(3)"
        );
    }

    #[test]
    fn raised_messages_are_hidden_whole() {
        let fields = vec![
            (b'S', "NOTICE".to_owned()),
            (b'C', "00000".to_owned()),
            (b'M', "bob@example.org".to_owned()),
            (
                b'W',
                "PL/pgSQL function inline_code_block line 1 at RAISE".to_owned(),
            ),
        ];
        let redacted = redact(&fields);
        assert_eq!(redacted[0], (b'S', "NOTICE".to_owned()));
        assert_eq!(redacted[2], (b'M', "***".to_owned()));
        assert_eq!(redacted[3], fields[3], "where names code, not data");
        let error = vec![
            (b'C', "22P02".to_owned()),
            (
                b'M',
                "invalid input syntax for type integer: \"123-45-6789\"".to_owned(),
            ),
        ];
        assert_eq!(
            redact(&error)[1].1,
            "invalid input syntax for type integer: \"***\""
        );
    }

    /// Many texts made of the pieces redaction looks for: no panic, and a
    /// second redaction changes nothing.
    #[test]
    fn redaction_is_idempotent_on_tricky_texts() {
        const PIECES: &[&str] = &[
            "\"",
            "(",
            ")",
            ")=(",
            "contains (",
            "relation ",
            "type integer: ",
            "a",
            "é",
            " ",
            "***",
            "=",
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..(state % 12) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(PIECES[(state % PIECES.len() as u64) as usize]);
            }
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let once = redact_text(&text);
            assert_eq!(redact_text(&once), once, "{text:?}");
        }
    }
}
