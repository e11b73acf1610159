//! MySQL statements for policy and masking, pure: classification
//! (`sqlparser`, MySQL dialect), the refusal of LOAD DATA LOCAL, the
//! masking guard (statements that would copy masked data where Gate cannot
//! mask it: CREATE … SELECT, INSERT/REPLACE … SELECT, SELECT … INTO
//! OUTFILE/DUMPFILE/@var, `:=` assignments, views, stored programs, CALL,
//! SQL-level PREPARE/EXECUTE, SHOW WARNINGS), how strongly a computed
//! column may derive from masked data, and the redaction of values quoted
//! in server errors. Fail closed: what cannot be traced is refused or masked.

use gate_policy::{QueryInfo, Strategy, Verdict};

use crate::session::masking;

/// Functions known not to hide reads of other data (the result of a
/// computed column that calls anything else is masked with every mask).
const BUILTIN: &[&str] = &[
    "abs",
    "avg",
    "cast",
    "ceil",
    "ceiling",
    "char_length",
    "character_length",
    "coalesce",
    "concat",
    "concat_ws",
    "convert",
    "count",
    "curdate",
    "current_date",
    "current_time",
    "current_timestamp",
    "current_user",
    "curtime",
    "database",
    "date",
    "date_add",
    "date_format",
    "date_sub",
    "datediff",
    "day",
    "floor",
    "format",
    "greatest",
    "group_concat",
    "hex",
    "hour",
    "if",
    "ifnull",
    "instr",
    "isnull",
    "json_extract",
    "json_object",
    "json_arrayagg",
    "json_objectagg",
    "last_insert_id",
    "lcase",
    "least",
    "left",
    "length",
    "locate",
    "lower",
    "lpad",
    "ltrim",
    "max",
    "md5",
    "mid",
    "min",
    "minute",
    "mod",
    "month",
    "now",
    "nullif",
    "position",
    "power",
    "rand",
    "replace",
    "reverse",
    "right",
    "round",
    "row_count",
    "rpad",
    "rtrim",
    "second",
    "sha1",
    "sha2",
    "sign",
    "sqrt",
    "std",
    "stddev",
    "str_to_date",
    "substr",
    "substring",
    "substring_index",
    "sum",
    "sysdate",
    "time",
    "timestamp",
    "timestampdiff",
    "trim",
    "truncate",
    "ucase",
    "unhex",
    "upper",
    "user",
    "utc_timestamp",
    "uuid",
    "variance",
    "version",
    "week",
    "year",
    "in",
    "and",
    "or",
    "not",
    "exists",
    "values",
    "interval",
    "char",
    "binary",
    "case",
    "when",
    "from",
    "select",
    "where",
    "on",
    "as",
    "using",
    "over",
    "partition",
    "by",
    "into",
    "like",
    "regexp",
    "rlike",
    "is",
    "between",
    "then",
    "else",
    "distinct",
    "all",
    "any",
    "some",
    "join",
    "limit",
    "set",
];

/// Statement kinds that may move data or run code; others pass without a look.
const CHECKED_KINDS: &[&str] = &[
    "create", "insert", "replace", "update", "select", "set", "call", "prepare", "execute", "do",
    "show", "unknown", "load", "handler",
];

/// Classify every statement of `sql`.
pub(super) fn classify(sql: &str) -> Vec<QueryInfo> {
    crate::sql::classify_mysql(sql)
}

/// Lower-case identifier-like words of `text` (outside nothing: quotes
/// included, so a quoted word still counts, which only ever refuses more).
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    raw_words(text).map(str::to_ascii_lowercase)
}

/// The words of `text` as they are (no allocation: for the checks every statement takes).
fn raw_words(text: &str) -> impl Iterator<Item = &str> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '@'))
        .filter(|w| !w.is_empty())
}

/// Whether `text` has the (lowercase) `word`, in any case.
fn has_word(text: &str, word: &str) -> bool {
    raw_words(text).any(|w| w.eq_ignore_ascii_case(word))
}

/// `LOAD DATA LOCAL INFILE` / `LOAD XML LOCAL INFILE`: the server would ask the client for a file.
pub(super) fn is_local_infile(text: &str) -> bool {
    raw_words(text)
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("load"))
        && has_word(text, "local")
        && has_word(text, "infile")
}

/// Whether a statement could move data, run code, or quote values at all.
pub(super) fn needs_guard(query: &QueryInfo, text: &str) -> bool {
    CHECKED_KINDS.contains(&query.kind.as_str())
        && (query.kind != "select" || has_word(text, "into") || text.contains(":="))
}

/// Why `query` (`text`) is refused while `verdict`'s masks apply, if it is.
pub(super) fn masking_guard(verdict: &Verdict, query: &QueryInfo, text: &str) -> Option<String> {
    let lowered = text.to_ascii_lowercase();
    let masked: Vec<String> = verdict
        .masks
        .iter()
        .map(|m| m.column.to_ascii_lowercase())
        .collect();
    let refuse = |how: &str| {
        Some(format!(
            "{how} is refused while masks apply to this session"
        ))
    };
    let kind = query.kind.as_str();
    let first = words(text).next().unwrap_or_default();
    // Code Gate cannot see into, and text it cannot see (SQL-level PREPARE).
    if kind == "call" || first == "call" {
        return refuse("CALL (Gate cannot see what stored procedures read)");
    }
    if matches!(kind, "prepare" | "execute") || matches!(first.as_str(), "prepare" | "execute") {
        return refuse("SQL-level PREPARE/EXECUTE (Gate cannot see the statement text)");
    }
    if kind == "create" {
        for code in ["view", "function", "procedure", "trigger", "event"] {
            if has_word(&lowered, code) {
                return refuse(&format!(
                    "CREATE {} (it could read masked columns later)",
                    code.to_ascii_uppercase()
                ));
            }
        }
    }
    if kind == "show" && (has_word(&lowered, "warnings") || has_word(&lowered, "errors")) {
        return refuse("SHOW WARNINGS/ERRORS (messages quote values)");
    }
    if lowered.contains(":=") {
        return refuse("assigning to a user variable (:=)");
    }
    let moves = match kind {
        "create" | "insert" | "replace" | "unknown" if has_word(&lowered, "select") => {
            Some("copying query results into a table")
        }
        "select" | "unknown" if has_word(&lowered, "into") => {
            Some("SELECT ... INTO (OUTFILE, DUMPFILE or variables)")
        }
        "set" if has_word(&lowered, "select") || masked.iter().any(|c| has_word(&lowered, c)) => {
            Some("SET from a query")
        }
        "update" => update_copies(&lowered, &masked).then_some("UPDATE copying a masked column"),
        _ => None,
    }?;
    if let Some(column) = masked.iter().find(|c| masking::mentions_word(&lowered, c)) {
        return Some(format!(
            "statement copies masked column {column} ({moves} is refused while masks apply to this session)"
        ));
    }
    if lowered.contains('*') || calls_unknown_function(&lowered) || kind == "unknown" {
        return Some(format!(
            "statement may copy masked columns ({moves} with *, a stored function, or text Gate cannot parse is refused while masks apply to this session)"
        ));
    }
    None
}

/// An UPDATE that reads a masked column anywhere but as an assignment target.
fn update_copies(lowered: &str, masked: &[String]) -> bool {
    masked.iter().any(|column| {
        lowered.match_indices(column.as_str()).any(|(at, _)| {
            if !masking::mentions_word(&lowered[at..at + column.len()], column) {
                return false;
            }
            let before = lowered[..at].chars().next_back();
            let after = lowered[at + column.len()..].chars().next();
            let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            if ident(before) || ident(after) {
                return false;
            }
            let rest = lowered[at + column.len()..].trim_start();
            !rest.starts_with('=') || rest.starts_with("==")
        })
    }) || has_word(lowered, "select")
}

/// Whether the statement calls a function not in [`BUILTIN`] (possibly a stored function).
fn calls_unknown_function(lowered: &str) -> bool {
    lowered.match_indices('(').any(|(at, _)| {
        let name: String = lowered[..at]
            .trim_end()
            .chars()
            .rev()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.' || *c == '`')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let name = name
            .trim_matches('`')
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        !name.is_empty() && !BUILTIN.contains(&name.as_str())
    })
}

/// The strongest mask a computed column of a result of `text` may carry:
/// every mask when the statement reads user variables or calls a function
/// Gate does not know, else those of the masked columns it names.
pub(super) fn computed_derived(verdict: &Verdict, text: &str) -> Option<Strategy> {
    let lowered = text.to_ascii_lowercase();
    if lowered.contains('@') && !lowered.contains("@@") || calls_unknown_function(&lowered) {
        return masking::strongest(verdict);
    }
    masking::sql_derived(verdict, text)
}

/// `message` with every single- or double-quoted part replaced by `'***'`.
pub(super) fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quote = None;
    for c in message.chars() {
        match quote {
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
                out.push_str("***");
            }
            None => out.push(c),
            Some(q) if c == q => {
                quote = None;
                out.push(c);
            }
            Some(_) => {}
        }
    }
    out
}

#[cfg(test)]
#[path = "statements_tests.rs"]
mod tests;
