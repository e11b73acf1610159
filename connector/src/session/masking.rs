//! From a `post_request` verdict to a per-column decision for one result:
//! which output columns are masked with which strategy, or why the whole
//! result is refused. Protocol-neutral: a protocol says where each output
//! column comes from (a source table and column, or computed) and how
//! strongly a computed column may derive from masked data.

use gate_policy::{OnDerived, Strategy, Verdict};

/// Functions that turn a whole SQL row (every column, masked ones included) into one value.
const SQL_WHOLE_ROW: &[&str] = &[
    "row_to_json",
    "to_json",
    "to_jsonb",
    "json_agg",
    "jsonb_agg",
    "array_agg",
    "hstore",
    "row(",
];

/// One output column, as far as Gate can trace it.
#[derive(Debug, Clone, Copy)]
pub struct OutputColumn<'a> {
    /// The name the client sees.
    pub name: &'a str,
    /// The table (or view) and column it reads, or `None` when it is computed.
    pub source: Option<(&'a str, &'a str)>,
    /// The strongest strategy of the masked data it may derive from
    /// (computed columns, view columns over masked columns; see [`sql_derived`]).
    pub derived: Option<Strategy>,
}

/// What to do with one result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnPlan {
    /// Nothing to mask.
    Pass,
    /// Mask these columns (one entry per output column).
    Mask(Vec<Option<Strategy>>),
    /// Refuse the result with this reason.
    Refuse(String),
}

/// Decide `columns` under `verdict`; `hash_key` says whether the `hash`
/// strategy can be applied.
pub fn plan_columns(verdict: &Verdict, columns: &[OutputColumn<'_>], hash_key: bool) -> ColumnPlan {
    if verdict.is_blocked() {
        let reason = verdict
            .reason
            .clone()
            .unwrap_or_else(|| "result refused by policy".into());
        return ColumnPlan::Refuse(reason);
    }
    if verdict.masks.is_empty() {
        return ColumnPlan::Pass;
    }
    let mut strategies = Vec::with_capacity(columns.len());
    for column in columns {
        let direct = column.source.and_then(|(table, name)| {
            verdict
                .masks
                .iter()
                .filter(|m| m.column == name && m.table.as_ref().is_none_or(|t| t == table))
                .map(|m| m.strategy)
                .max()
        });
        // Derived outputs: masked if they may derive from a masked column.
        let derived = match (column.derived, verdict.on_derived) {
            (None, _) => None,
            (Some(_), OnDerived::Block) if direct.is_none() => {
                return ColumnPlan::Refuse(format!(
                    "column \"{}\" is computed from a masked column (on_derived: block)",
                    column.name
                ));
            }
            (Some(s), _) => Some(s),
        };
        strategies.push(direct.max(derived));
    }
    if strategies.contains(&Some(Strategy::Hash)) && !hash_key {
        return ColumnPlan::Refuse(
            "the hash masking strategy needs masking.hash_key to be configured".to_owned(),
        );
    }
    if strategies.iter().all(Option::is_none) {
        return ColumnPlan::Pass;
    }
    ColumnPlan::Mask(strategies)
}

/// The strongest strategy among all of `verdict`'s masks (for outputs that
/// may carry any masked column: whole rows, user-defined functions).
pub fn strongest(verdict: &Verdict) -> Option<Strategy> {
    verdict.masks.iter().map(|m| m.strategy).max()
}

/// For SQL protocols: the strongest strategy a computed column of a result
/// of `sql` may derive: that of every masked column when the statement turns
/// whole rows into values, else that of the masked columns it names.
pub fn sql_derived(verdict: &Verdict, sql: &str) -> Option<Strategy> {
    let lowered = sql.to_ascii_lowercase();
    if SQL_WHOLE_ROW.iter().any(|f| lowered.contains(f)) {
        return strongest(verdict);
    }
    verdict
        .masks
        .iter()
        .filter(|m| mentions_word(&lowered, &m.column.to_ascii_lowercase()))
        .map(|m| m.strategy)
        .max()
}

/// Whether `word` occurs in `text` as a whole identifier.
pub fn mentions_word(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

#[cfg(test)]
mod tests {
    use super::mentions_word;

    #[test]
    fn whole_identifier_mentions() {
        assert!(mentions_word("select lower(email) from t", "email"));
        assert!(mentions_word("select email||'' from t", "email"));
        assert!(!mentions_word("select email_verified from t", "email"));
        assert!(!mentions_word("select myemail from t", "email"));
    }
}
