//! Transaction pooling: which statements leave state on the server connection past their transaction (`SET`, `LISTEN`, session advisory locks, temporary objects, `WITH HOLD` cursors, SQL `PREPARE`, `DISCARD`), found from the classifier's statement kind and the statement's words.

use gate_policy::QueryInfo;

/// Session advisory lock functions (the `_xact_` ones end with their transaction).
const SESSION_LOCKS: &[&str] = &[
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
];

/// What in the first statement of `queries` that leaves session state does so, as a user would
/// name it (`SET`, `LISTEN`, `pg_advisory_lock()`, …), or `None`.
pub(super) fn find(queries: &[QueryInfo]) -> Option<String> {
    queries.iter().find_map(|q| {
        let text = q.statement.as_deref().unwrap_or(&q.raw);
        statement_state(&words(text))
    })
}

/// A token of SQL text: a lower-case word, one punctuation character, or a literal.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Punct(char),
    Literal,
}

fn is_word(tokens: &[Token], at: usize, word: &str) -> bool {
    matches!(tokens.get(at), Some(Token::Word(w)) if w == word)
}

/// The session state one statement (or several, split at top-level `;`) creates.
fn statement_state(tokens: &[Token]) -> Option<String> {
    for statement in tokens.split(|t| *t == Token::Punct(';')) {
        if let Some(found) = leading(statement).or_else(|| functions(statement)) {
            return Some(found);
        }
    }
    None
}

/// Statements that create session state by their leading words.
fn leading(t: &[Token]) -> Option<String> {
    let Some(Token::Word(first)) = t.first() else {
        return None;
    };
    let found = match first.as_str() {
        "set" if is_word(t, 1, "local") || is_word(t, 1, "transaction") => return None,
        "set" if is_word(t, 1, "session") && is_word(t, 2, "characteristics") => {
            "SET SESSION CHARACTERISTICS"
        }
        "set" => "SET",
        "listen" => "LISTEN",
        "prepare" if is_word(t, 1, "transaction") => return None,
        "prepare" => "PREPARE",
        "deallocate" => "DEALLOCATE",
        "discard" => "DISCARD",
        "load" => "LOAD",
        "declare" => {
            let hold = t
                .windows(2)
                .take_while(|w| w[0] != Token::Word("for".into()))
                .any(|w| w[0] == Token::Word("with".into()) && w[1] == Token::Word("hold".into()));
            if !hold {
                return None;
            }
            "DECLARE ... WITH HOLD"
        }
        "create" => {
            let mut at = 1;
            while is_word(t, at, "or") || is_word(t, at, "replace") {
                at += 1;
            }
            if is_word(t, at, "global") || is_word(t, at, "local") {
                at += 1;
            }
            if !(is_word(t, at, "temp") || is_word(t, at, "temporary")) {
                return None;
            }
            "CREATE TEMPORARY"
        }
        _ => return None,
    };
    Some(found.to_owned())
}

/// Calls of session advisory lock functions, and `set_config(…, false)`.
fn functions(t: &[Token]) -> Option<String> {
    for (i, token) in t.iter().enumerate() {
        let Token::Word(name) = token else { continue };
        if t.get(i + 1) != Some(&Token::Punct('(')) {
            continue;
        }
        if let Some(lock) = SESSION_LOCKS.iter().find(|l| **l == name) {
            return Some(format!("{lock}()"));
        }
        if name == "set_config" && !third_argument_is_true(&t[i + 2..]) {
            return Some("set_config(..., false)".to_owned());
        }
    }
    None
}

/// Whether the third top-level argument of the call whose arguments start `args` is `true`
/// (transaction-local); anything else could be `false`.
fn third_argument_is_true(args: &[Token]) -> bool {
    let (mut depth, mut commas) = (0usize, 0usize);
    for (i, token) in args.iter().enumerate() {
        match token {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') if depth == 0 => return false,
            Token::Punct(')') => depth -= 1,
            Token::Punct(',') if depth == 0 => {
                commas += 1;
                if commas == 2 {
                    let local = is_word(args, i + 1, "true")
                        && matches!(args.get(i + 2), Some(Token::Punct(')')));
                    return local;
                }
            }
            _ => {}
        }
    }
    false
}

/// `sql` as tokens: words lower-cased, strings, quoted identifiers and numbers as literals,
/// comments skipped.
fn words(sql: &str) -> Vec<Token> {
    let bytes = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..].find("*/").map_or(bytes.len(), |n| i + n + 4);
            }
            b'\'' | b'"' => {
                let quote = c;
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == quote {
                        if bytes.get(i + 1) == Some(&quote) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                tokens.push(Token::Literal);
            }
            b'$' => {
                // $1 parameter, or a $tag$ … $tag$ string.
                let tag_len = sql[i + 1..]
                    .find(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                    .unwrap_or(sql.len() - i - 1);
                if bytes.get(i + 1 + tag_len) == Some(&b'$') {
                    let tag = &sql[i..i + tag_len + 2];
                    let body = i + tag.len();
                    i = sql[body..]
                        .find(tag)
                        .map_or(bytes.len(), |n| body + n + tag.len());
                } else {
                    i += 1 + tag_len;
                }
                tokens.push(Token::Literal);
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let len = sql[i..]
                    .find(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == '$'))
                    .unwrap_or(sql.len() - i);
                let len = len.max(1);
                let end = (i + len).min(sql.len());
                let word = sql.get(i..end).unwrap_or_default();
                tokens.push(Token::Word(word.to_ascii_lowercase()));
                i = end.max(i + 1);
                // Keep `i` on a character boundary after a multi-byte start.
                while i < sql.len() && !sql.is_char_boundary(i) {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                    i += 1;
                }
                tokens.push(Token::Literal);
            }
            b'(' | b')' | b',' | b';' | b'.' => {
                tokens.push(Token::Punct(char::from(c)));
                i += 1;
            }
            _ => i += 1,
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(sql: &str) -> Option<String> {
        statement_state(&words(sql))
    }

    #[test]
    fn statements_that_leave_session_state_are_named() {
        for (sql, want) in [
            ("SET search_path = x", "SET"),
            ("set session work_mem = '1MB'", "SET"),
            (
                "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
                "SET SESSION CHARACTERISTICS",
            ),
            ("listen jobs", "LISTEN"),
            ("PREPARE q AS select 1", "PREPARE"),
            ("deallocate all", "DEALLOCATE"),
            ("DISCARD ALL", "DISCARD"),
            (
                "declare c cursor with hold for select 1",
                "DECLARE ... WITH HOLD",
            ),
            ("create temp table t (a int)", "CREATE TEMPORARY"),
            (
                "CREATE GLOBAL TEMPORARY TABLE t (a int)",
                "CREATE TEMPORARY",
            ),
            (
                "create or replace temp view v as select 1",
                "CREATE TEMPORARY",
            ),
            ("select pg_advisory_lock(1)", "pg_advisory_lock()"),
            (
                "SELECT PG_TRY_ADVISORY_LOCK_SHARED(1, 2)",
                "pg_try_advisory_lock_shared()",
            ),
            (
                "select set_config('a.b', 'c', false)",
                "set_config(..., false)",
            ),
            (
                "select set_config('a.b', f(1, 2), $1)",
                "set_config(..., false)",
            ),
            ("select 1; set x = 1", "SET"),
        ] {
            assert_eq!(state(sql).as_deref(), Some(want), "{sql}");
        }
    }

    #[test]
    fn transaction_scoped_and_ordinary_statements_are_not() {
        for sql in [
            "SET LOCAL search_path = x",
            "set transaction isolation level serializable",
            "select pg_advisory_xact_lock(1)",
            "select set_config('a.b', 'c', true)",
            "select set_config('a.b', lower('X'), TRUE)",
            "declare c cursor for select 1",
            "create table t (a int)",
            "select 'set x = 1', \"listen\" from t",
            "select $$ pg_advisory_lock(1) $$",
            "-- set x = 1\nselect 1",
            "prepare transaction 'x'",
            "update t set a = 1",
            "select 'é' || pg_backend_pid()",
        ] {
            assert_eq!(state(sql), None, "{sql}");
        }
    }

    #[test]
    fn classified_statements_are_checked_each() {
        let queries = crate::sql::classify("select 1; listen x");
        assert_eq!(find(&queries).as_deref(), Some("LISTEN"));
        assert_eq!(find(&crate::sql::classify("select 1")), None);
    }
}
