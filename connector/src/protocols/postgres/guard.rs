//! Statements refused at `pre_request` while masks apply to the session,
//! because what they do with masked data cannot be masked afterwards: copying
//! it into another object (CREATE … AS, SELECT INTO, INSERT … SELECT, UPDATE
//! … SET, views, functions, triggers, rules), running procedural code Gate
//! cannot see into (DO, CALL), or reading planner statistics (sample values).
//! Users whose policies apply no masks are never refused here.

use gate_policy::QueryInfo;

use super::state::Context;
use super::taint::{self, Taint};
use crate::session::masking;

/// Statement kinds that may move data or run code; others pass without a look.
const CHECKED_KINDS: &[&str] = &[
    "create", "insert", "update", "merge", "do", "call", "copy", "unknown",
];

/// Why a COPY … TO is refused.
const COPY_REFUSED: &str =
    "COPY ... TO is refused while masking applies to this session (COPY output is not masked)";

/// Constructs whose body is code Gate cannot parse (checked by name).
const CODE: &[&str] = &[
    "CREATE FUNCTION",
    "CREATE PROCEDURE",
    "CREATE TRIGGER",
    "CREATE RULE",
];

impl Context<'_> {
    /// Why `query` (one statement, `text`) is refused while masks apply, if it is.
    pub(super) async fn masking_guard(&self, query: &QueryInfo, text: &str) -> Option<String> {
        if !needs_guard(query, text) {
            return None;
        }
        let verdict = self.session.expected_masks(query);
        let copy_out = query.kind == "copy" && text.to_ascii_uppercase().contains(" TO ");
        // Results refused outright: COPY output would bypass the refusal.
        if verdict.is_blocked() && copy_out {
            return Some(COPY_REFUSED.into());
        }
        if verdict.masks.is_empty() {
            return None;
        }
        let masked: Vec<String> = verdict
            .masks
            .iter()
            .map(|m| m.column.to_ascii_lowercase())
            .collect();
        let statement = taint::analyze(text);
        if statement.reads_statistics() {
            return Some(
                "planner statistics (pg_stats, pg_statistic, …) are refused while masks apply to this session: they hold sample values of masked columns".into(),
            );
        }
        if copy_out {
            return self.copy_out(&statement, &masked).await;
        }
        // (A statement that cannot be parsed and is no DO or CALL goes on:
        // its results are still traced column by column.)
        let how = statement.moves_data?;
        if how == "DO" || how == "CALL" {
            return Some(format!(
                "{how} is refused while masks apply to this session (Gate cannot see what procedural code reads)"
            ));
        }
        // An UPDATE that assigns into a masked column keeps the value masked:
        // only what goes into other columns is a move.
        let update_read = statement.update_tables.as_ref().map(|tables| {
            let values: Vec<&str> = statement
                .assignments
                .iter()
                .filter(|(target, _)| !masked.contains(target))
                .map(|(_, value)| value.as_str())
                .collect();
            if values.is_empty() {
                String::new()
            } else {
                format!("SELECT {} FROM {tables}", values.join(", "))
            }
        });
        let read = match &update_read {
            Some(read) if read.is_empty() => return None,
            Some(read) => read.as_str(),
            None => statement.read.as_deref().unwrap_or(text),
        };
        let lowered = read.to_ascii_lowercase();
        if let Some(column) = masked.iter().find(|c| masking::mentions_word(&lowered, c)) {
            return Some(format!(
                "statement copies masked column {column} ({how} while masks apply to this session)"
            ));
        }
        let holders = match self.holders(&masked).await {
            Ok(holders) => holders,
            Err(reason) => return Some(reason),
        };
        if CODE.contains(&how) {
            let table = holders
                .iter()
                .find(|t| masking::mentions_word(&lowered, t))?;
            return Some(format!(
                "{how} reads table {table}, which has masked columns (refused while masks apply to this session)"
            ));
        }
        self.moves_whole_rows(&taint::analyze(read), &holders, how)
            .await
    }

    /// COPY … TO (a file, a program, or the client): its output is not
    /// masked, so it is refused when it reads a table with masked columns.
    async fn copy_out(&self, statement: &Taint, masked: &[String]) -> Option<String> {
        if statement.unparsed {
            return Some(COPY_REFUSED.into());
        }
        let holders = match self.holders(masked).await {
            Ok(holders) => holders,
            Err(reason) => return Some(reason),
        };
        let reads_masked = statement.relations.iter().any(|r| {
            let name = r.rsplit('.').next().unwrap_or(r).trim_matches('"');
            holders.iter().any(|h| h == name)
        });
        (reads_masked || !statement.functions.is_empty()).then(|| COPY_REFUSED.into())
    }

    /// Tables holding masked columns, or the refusal when the catalog cannot be read.
    async fn holders(&self, masked: &[String]) -> Result<std::sync::Arc<Vec<String>>, String> {
        self.catalog
            .tables_with_columns(
                self.session.resource,
                self.upstream_user,
                self.upstream_db,
                masked,
            )
            .await
            .map_err(|e| {
                format!("Gate could not read the catalog to check for masked columns: {e}")
            })
    }

    /// A data move reading a table with masked columns through `*`, a whole
    /// row, or a user-defined function.
    async fn moves_whole_rows(
        &self,
        read: &Taint,
        holders: &[String],
        how: &str,
    ) -> Option<String> {
        let table = read.relations.iter().find_map(|r| {
            let name = r.rsplit('.').next().unwrap_or(r).trim_matches('"');
            holders.iter().find(|h| *h == name)
        })?;
        if read.whole_row || read.wildcard || read.unparsed {
            return Some(format!(
                "statement copies whole rows of {table}, which has masked columns ({how} while masks apply to this session)"
            ));
        }
        if read.functions.is_empty() {
            return None;
        }
        let functions: Vec<&str> = read.functions.iter().map(String::as_str).collect();
        match self
            .catalog
            .user_functions(
                self.session.resource,
                self.upstream_user,
                self.upstream_db,
                &functions,
            )
            .await
        {
            Ok(user) if user.is_empty() => None,
            Ok(user) => Some(format!(
                "statement calls user-defined function {} on {table}, which has masked columns ({how} while masks apply to this session)",
                user.join(", ")
            )),
            Err(e) => Some(format!(
                "Gate could not read the catalog to check for user-defined functions: {e}"
            )),
        }
    }
}

/// Whether a statement can move data, run code or read statistics at all
/// (cheap, no allocation: no parse for the statements most sessions send).
fn needs_guard(query: &QueryInfo, text: &str) -> bool {
    if CHECKED_KINDS.contains(&query.kind.as_str()) {
        return true;
    }
    if query.kind != "select" {
        return false;
    }
    let statistics = query.tables.iter().any(|t| {
        let name = t.rsplit('.').next().unwrap_or(t);
        taint::STATISTICS
            .iter()
            .any(|s| s.eq_ignore_ascii_case(name.trim_matches('"')))
    });
    statistics || has_word_ignoring_case(text, "into")
}

/// Whether `word` (lower case ASCII) occurs in `text` as a whole identifier, in any case.
fn has_word_ignoring_case(text: &str, word: &str) -> bool {
    let bytes = text.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80;
    bytes.windows(word.len()).enumerate().any(|(at, window)| {
        window.eq_ignore_ascii_case(word.as_bytes())
            && (at == 0 || !is_ident(bytes[at - 1]))
            && bytes.get(at + word.len()).is_none_or(|b| !is_ident(*b))
    })
}

#[cfg(test)]
mod tests {
    use super::has_word_ignoring_case;

    #[test]
    fn into_is_found_as_a_word_in_any_case() {
        assert!(has_word_ignoring_case(
            "SELECT email INTO stash FROM t",
            "into"
        ));
        assert!(has_word_ignoring_case("select * into\nx from t", "into"));
        assert!(!has_word_ignoring_case("select intox from t", "into"));
        assert!(!has_word_ignoring_case("select x_into from t", "into"));
    }
}
