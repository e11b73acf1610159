//! The decision a stage rule returns, parsed strictly from its Rego value.
//!
//! ```text
//! {"action": "allow" | "block" | "rewrite" | "mask" | "filter",
//!  "reason": "...", "query": "...", "on_derived": "mask" | "block",
//!  "masks":   [{"column": "email", "strategy": "partial", "table": "users"}],
//!  "filters": [{"field": "org_id", "op": "eq", "value": 7}]}
//! ```

use std::fmt;

use regorus::Value;
use serde::Serialize;

use crate::error::PolicyError;
use crate::input::Stage;

/// What a decision asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Allow,
    Filter,
    Mask,
    Rewrite,
    Block,
}

impl Action {
    /// The lower-case name used in policies and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Block => "block",
            Action::Rewrite => "rewrite",
            Action::Mask => "mask",
            Action::Filter => "filter",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "allow" => Action::Allow,
            "block" => Action::Block,
            "rewrite" => Action::Rewrite,
            "mask" => Action::Mask,
            "filter" => Action::Filter,
            _ => return None,
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A masking strategy, ordered from weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Keep the last 4 characters, `*` for the rest.
    Partial,
    /// `a***@example.com`.
    Email,
    /// Lower-case hex HMAC-SHA256 under the deployment's masking key.
    Hash,
    /// `***`.
    Redact,
    /// SQL NULL / JSON null.
    Null,
}

impl Strategy {
    /// The name used in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Partial => "partial",
            Strategy::Email => "email",
            Strategy::Hash => "hash",
            Strategy::Redact => "redact",
            Strategy::Null => "null",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "partial" => Strategy::Partial,
            "email" => Strategy::Email,
            "hash" => Strategy::Hash,
            "redact" => Strategy::Redact,
            "null" => Strategy::Null,
            _ => return None,
        })
    }
}

/// Mask one column (SQL), field name (JSON, any depth) or dotted path (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Mask {
    pub column: String,
    pub strategy: Strategy,
    /// Restrict to columns of this source table (SQL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
}

/// A filter comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterOp {
    Eq,
    Neq,
    In,
    NotIn,
}

/// Keep only array elements whose `field` satisfies `op` against the value(s).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Filter {
    pub field: String,
    pub op: FilterOp,
    /// `value` for `eq`/`neq`; `values` for `in`/`not_in`.
    #[serde(flatten)]
    pub operand: FilterOperand,
    /// Where the array to filter lives in the document (`data.items`); the
    /// document itself, or the protocol's configured path, when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The right-hand side of a filter.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterOperand {
    Value(serde_json::Value),
    Values(Vec<serde_json::Value>),
}

/// What to do with an output column computed from a masked column
/// (`lower(email)`, `email || ''`, `row_to_json(u)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDerived {
    /// Refuse the statement (the default).
    #[default]
    Block,
    /// Mask the derived column with the strongest strategy of its sources.
    Mask,
}

/// One policy's decision for one stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub masks: Vec<Mask>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_derived: Option<OnDerived>,
}

impl Decision {
    /// A bare decision with only an action.
    pub fn new(action: Action) -> Self {
        Self {
            action,
            reason: None,
            query: None,
            masks: Vec::new(),
            filters: Vec::new(),
            on_derived: None,
        }
    }

    /// Parse and validate a rule value. `Undefined` means no opinion (`Ok(None)`).
    pub fn from_value(
        policy: &str,
        stage: Stage,
        value: &Value,
    ) -> Result<Option<Self>, PolicyError> {
        if matches!(value, Value::Undefined) {
            return Ok(None);
        }
        let err = |field: &str, message: String| PolicyError::Decision {
            policy: policy.to_owned(),
            stage: stage.as_str().to_owned(),
            field: field.to_owned(),
            message,
        };
        let Ok(object) = value.as_object() else {
            return Err(err(
                "decision",
                format!("expected an object, got {}", describe(value)),
            ));
        };
        let mut decision = Decision::new(Action::Allow);
        let mut action = None;
        for (key, field_value) in object.iter() {
            let key = match key {
                Value::String(s) => s.as_ref(),
                other => {
                    return Err(err(
                        "decision",
                        format!("unexpected key {}", describe(other)),
                    ));
                }
            };
            match key {
                "action" => {
                    let s = string(field_value).ok_or_else(|| {
                        err(
                            "action",
                            format!("expected a string, got {}", describe(field_value)),
                        )
                    })?;
                    action = Some(Action::parse(s).ok_or_else(|| {
                        err(
                            "action",
                            format!(
                                "unknown action {s:?} (expected allow, block, rewrite, mask or filter)"
                            ),
                        )
                    })?);
                }
                "reason" => decision.reason = Some(required_string(field_value, "reason", &err)?),
                "query" => decision.query = Some(required_string(field_value, "query", &err)?),
                "on_derived" => {
                    decision.on_derived = Some(match string(field_value) {
                        Some("mask") => OnDerived::Mask,
                        Some("block") => OnDerived::Block,
                        _ => {
                            return Err(err(
                                "on_derived",
                                format!(
                                    "expected \"mask\" or \"block\", got {}",
                                    describe(field_value)
                                ),
                            ));
                        }
                    })
                }
                "masks" => decision.masks = parse_masks(field_value, &err)?,
                "filters" => decision.filters = parse_filters(field_value, &err)?,
                other => {
                    return Err(err(
                        other,
                        "unknown field (expected action, reason, query, masks, filters, on_derived)"
                            .to_owned(),
                    ));
                }
            }
        }
        decision.action = action.ok_or_else(|| err("action", "missing".to_owned()))?;
        decision.validate(&err)?;
        Ok(Some(decision))
    }

    fn validate(&self, err: &impl Fn(&str, String) -> PolicyError) -> Result<(), PolicyError> {
        match self.action {
            Action::Rewrite if self.query.as_deref().is_none_or(str::is_empty) => {
                return Err(err(
                    "query",
                    "action rewrite needs a non-empty query".to_owned(),
                ));
            }
            Action::Mask if self.masks.is_empty() => {
                return Err(err(
                    "masks",
                    "action mask needs at least one mask".to_owned(),
                ));
            }
            Action::Filter if self.filters.is_empty() => {
                return Err(err(
                    "filters",
                    "action filter needs at least one filter".to_owned(),
                ));
            }
            _ => {}
        }
        if self.query.is_some() && self.action != Action::Rewrite {
            return Err(err(
                "query",
                format!(
                    "query is only valid with action rewrite, not {}",
                    self.action
                ),
            ));
        }
        let transforms = matches!(self.action, Action::Mask | Action::Filter);
        if !transforms && !self.masks.is_empty() {
            return Err(err(
                "masks",
                format!(
                    "masks are only valid with action mask or filter, not {}",
                    self.action
                ),
            ));
        }
        if !transforms && !self.filters.is_empty() {
            return Err(err(
                "filters",
                format!(
                    "filters are only valid with action filter or mask, not {}",
                    self.action
                ),
            ));
        }
        Ok(())
    }
}

fn parse_masks(
    value: &Value,
    err: &impl Fn(&str, String) -> PolicyError,
) -> Result<Vec<Mask>, PolicyError> {
    let items = list(value).ok_or_else(|| {
        err(
            "masks",
            format!("expected an array, got {}", describe(value)),
        )
    })?;
    let mut masks = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = |f: &str| format!("masks[{i}].{f}");
        let object = item.as_object().map_err(|_| {
            err(
                &format!("masks[{i}]"),
                format!("expected an object, got {}", describe(item)),
            )
        })?;
        let mut column = None;
        let mut strategy = None;
        let mut table = None;
        for (key, v) in object.iter() {
            match string(key) {
                Some("column") | Some("field") => {
                    column = Some(required_string(v, &path("column"), err)?)
                }
                Some("table") => table = Some(required_string(v, &path("table"), err)?),
                Some("strategy") => {
                    let s = string(v).ok_or_else(|| {
                        err(
                            &path("strategy"),
                            format!("expected a string, got {}", describe(v)),
                        )
                    })?;
                    strategy = Some(Strategy::parse(s).ok_or_else(|| {
                        err(
                            &path("strategy"),
                            format!("unknown strategy {s:?} (expected redact, partial, email, hash or null)"),
                        )
                    })?);
                }
                _ => {
                    return Err(err(
                        &format!("masks[{i}]"),
                        format!(
                            "unknown field {} (expected column, strategy, table)",
                            describe(key)
                        ),
                    ));
                }
            }
        }
        let column = column
            .filter(|c| !c.is_empty())
            .ok_or_else(|| err(&path("column"), "missing".to_owned()))?;
        let strategy = strategy.ok_or_else(|| err(&path("strategy"), "missing".to_owned()))?;
        masks.push(Mask {
            column,
            strategy,
            table,
        });
    }
    Ok(masks)
}

fn parse_filters(
    value: &Value,
    err: &impl Fn(&str, String) -> PolicyError,
) -> Result<Vec<Filter>, PolicyError> {
    let items = list(value).ok_or_else(|| {
        err(
            "filters",
            format!("expected an array, got {}", describe(value)),
        )
    })?;
    let mut filters = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = |f: &str| format!("filters[{i}].{f}");
        let object = item.as_object().map_err(|_| {
            err(
                &format!("filters[{i}]"),
                format!("expected an object, got {}", describe(item)),
            )
        })?;
        let (mut field, mut op, mut single, mut many, mut at) = (None, None, None, None, None);
        for (key, v) in object.iter() {
            match string(key) {
                Some("field") => field = Some(required_string(v, &path("field"), err)?),
                Some("path") => at = Some(required_string(v, &path("path"), err)?),
                Some("op") => {
                    op = Some(match string(v) {
                        Some("eq") => FilterOp::Eq,
                        Some("neq") => FilterOp::Neq,
                        Some("in") => FilterOp::In,
                        Some("not_in") => FilterOp::NotIn,
                        _ => {
                            return Err(err(
                                &path("op"),
                                format!(
                                    "unknown operator {} (expected eq, neq, in or not_in)",
                                    describe(v)
                                ),
                            ));
                        }
                    })
                }
                Some("value") => single = Some(to_json(v)),
                Some("values") => {
                    let vs = list(v).ok_or_else(|| {
                        err(
                            &path("values"),
                            format!("expected an array, got {}", describe(v)),
                        )
                    })?;
                    many = Some(vs.iter().map(to_json).collect::<Vec<_>>());
                }
                _ => {
                    return Err(err(
                        &format!("filters[{i}]"),
                        format!(
                            "unknown field {} (expected field, op, value, values, path)",
                            describe(key)
                        ),
                    ));
                }
            }
        }
        let field = field
            .filter(|f| !f.is_empty())
            .ok_or_else(|| err(&path("field"), "missing".to_owned()))?;
        let op = op.ok_or_else(|| err(&path("op"), "missing".to_owned()))?;
        let operand = match (op, single, many) {
            (FilterOp::Eq | FilterOp::Neq, Some(v), None) => FilterOperand::Value(v),
            (FilterOp::In | FilterOp::NotIn, None, Some(vs)) => FilterOperand::Values(vs),
            // `in` with a single array `value` is accepted as the list.
            (FilterOp::In | FilterOp::NotIn, Some(serde_json::Value::Array(vs)), None) => {
                FilterOperand::Values(vs)
            }
            (FilterOp::Eq | FilterOp::Neq, None, _) => {
                return Err(err(
                    &path("value"),
                    format!("operator {} needs a value", op_name(op)),
                ));
            }
            (FilterOp::In | FilterOp::NotIn, None, None)
            | (FilterOp::In | FilterOp::NotIn, Some(_), None) => {
                return Err(err(
                    &path("values"),
                    format!("operator {} needs a list of values", op_name(op)),
                ));
            }
            (_, Some(_), Some(_)) => {
                return Err(err(
                    &format!("filters[{i}]"),
                    "give either value or values, not both".to_owned(),
                ));
            }
        };
        filters.push(Filter {
            field,
            op,
            operand,
            path: at.filter(|p| !p.is_empty()),
        });
    }
    Ok(filters)
}

fn op_name(op: FilterOp) -> &'static str {
    match op {
        FilterOp::Eq => "eq",
        FilterOp::Neq => "neq",
        FilterOp::In => "in",
        FilterOp::NotIn => "not_in",
    }
}

fn string(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) => Some(s.as_ref()),
        _ => None,
    }
}

fn required_string(
    value: &Value,
    field: &str,
    err: &impl Fn(&str, String) -> PolicyError,
) -> Result<String, PolicyError> {
    string(value)
        .map(str::to_owned)
        .ok_or_else(|| err(field, format!("expected a string, got {}", describe(value))))
}

/// Arrays and sets both count as lists (a Rego set comprehension is natural for masks).
fn list(value: &Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(a) => Some(a.iter().cloned().collect()),
        Value::Set(s) => Some(s.iter().cloned().collect()),
        _ => None,
    }
}

/// A Rego value as JSON (sets become arrays).
pub(crate) fn to_json(value: &Value) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// A short description of a value for error messages.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Undefined => "undefined".to_owned(),
        other => {
            let text = other
                .to_json_str()
                .unwrap_or_default()
                .replace(['\n', ' '], "");
            if text.chars().count() > 60 {
                format!("{}…", text.chars().take(60).collect::<String>())
            } else {
                text
            }
        }
    }
}
