//! Combining several policies' decisions for one resource and stage into one verdict.
//!
//! Any enforced `block` wins; an enforced policy error blocks (fail closed);
//! at most one `rewrite` (two different rewrites block); masks are unioned
//! with the strongest strategy per column; filters are ANDed. `dry_run`
//! policies are reported as `would_*`, never enforced. When no enforced
//! policy has an opinion, the default action decides.

use serde::Serialize;

use crate::decision::{Action, Decision, Filter, Mask, OnDerived};
use crate::error::PolicyError;

/// A managed policy's rollout state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rollout {
    /// Compiled and validated, never evaluated.
    Draft,
    /// Evaluated and audited as `would_*`, never enforced.
    DryRun,
    /// Enforced.
    Active,
}

/// What happens when no policy has an opinion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultAction {
    Allow,
    #[default]
    Block,
}

/// One policy's result for one stage.
#[derive(Debug, Clone)]
pub struct PolicyOutcome {
    pub policy: String,
    pub rollout: Rollout,
    /// `Ok(None)`: the rule is undefined for this input (no opinion).
    pub result: Result<Option<Decision>, PolicyError>,
}

/// A dry-run policy's decision, reported but not enforced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DryRunFinding {
    pub policy: String,
    /// `would_allow`, `would_block`, `would_rewrite`, `would_mask`, `would_filter`.
    pub would: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The combined decision for one request at one stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The replacement statement or body (`rewrite`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub masks: Vec<Mask>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
    pub on_derived: OnDerived,
    /// The enforced policies whose decisions made this verdict.
    pub policies: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRunFinding>,
    /// Policy errors (enforced ones blocked this request).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// True when no enforced policy had an opinion and the default action decided.
    pub defaulted: bool,
}

impl Verdict {
    /// Whether the request must be refused.
    pub fn is_blocked(&self) -> bool {
        self.action == Action::Block
    }

    /// A block with no reason yet, decided by no policy (the caller fills the reason).
    pub fn refusal() -> Self {
        Self::new(Action::Block)
    }

    fn new(action: Action) -> Self {
        Self {
            action,
            reason: None,
            query: None,
            masks: Vec::new(),
            filters: Vec::new(),
            on_derived: OnDerived::Block,
            policies: Vec::new(),
            dry_run: Vec::new(),
            errors: Vec::new(),
            defaulted: false,
        }
    }
}

/// Combine `outcomes`; `resource` names the target in the default-action reason.
pub fn combine(outcomes: Vec<PolicyOutcome>, default: DefaultAction, resource: &str) -> Verdict {
    let mut verdict = Verdict::new(Action::Allow);
    let mut blocks: Vec<(String, Option<String>)> = Vec::new();
    let mut rewrites: Vec<(String, String)> = Vec::new();
    let mut any_opinion = false;
    let mut derived_mask = false;
    let mut derived_block = false;

    for outcome in outcomes {
        match (outcome.rollout, outcome.result) {
            (Rollout::Draft, _) => {}
            (Rollout::DryRun, Ok(None)) => {}
            (Rollout::DryRun, Ok(Some(d))) => verdict.dry_run.push(DryRunFinding {
                policy: outcome.policy,
                would: format!("would_{}", d.action),
                reason: d.reason,
            }),
            (Rollout::DryRun, Err(e)) => {
                verdict.errors.push(e.to_string());
                verdict.dry_run.push(DryRunFinding {
                    policy: outcome.policy,
                    would: "would_block".to_owned(),
                    reason: Some(e.to_string()),
                });
            }
            (Rollout::Active, Ok(None)) => {}
            (Rollout::Active, Err(e)) => {
                any_opinion = true;
                blocks.push((outcome.policy, Some(format!("policy error: {e}"))));
                verdict.errors.push(e.to_string());
            }
            (Rollout::Active, Ok(Some(d))) => {
                any_opinion = true;
                match d.on_derived {
                    Some(OnDerived::Mask) => derived_mask = true,
                    Some(OnDerived::Block) => derived_block = true,
                    None => {}
                }
                match d.action {
                    Action::Block => blocks.push((outcome.policy, d.reason)),
                    Action::Rewrite => {
                        if let Some(query) = d.query {
                            rewrites.push((outcome.policy.clone(), query));
                        }
                        verdict.policies.push(outcome.policy);
                    }
                    Action::Allow | Action::Mask | Action::Filter => {
                        for mask in d.masks {
                            merge_mask(&mut verdict.masks, mask);
                        }
                        verdict.filters.extend(d.filters);
                        if verdict.reason.is_none() {
                            verdict.reason = d.reason;
                        }
                        verdict.policies.push(outcome.policy);
                    }
                }
            }
        }
    }

    if derived_mask && !derived_block {
        verdict.on_derived = OnDerived::Mask;
    }
    if !blocks.is_empty() {
        verdict.action = Action::Block;
        verdict.reason = blocks.iter().find_map(|(_, r)| r.clone());
        verdict.policies = blocks.into_iter().map(|(p, _)| p).collect();
        verdict.masks.clear();
        verdict.filters.clear();
        return verdict;
    }
    let mut distinct = rewrites.iter().map(|(_, q)| q.as_str()).collect::<Vec<_>>();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() > 1 {
        verdict.action = Action::Block;
        verdict.reason = Some(format!(
            "conflicting rewrites from policies {}",
            rewrites
                .iter()
                .map(|(p, _)| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        verdict.policies = rewrites.into_iter().map(|(p, _)| p).collect();
        verdict.masks.clear();
        verdict.filters.clear();
        return verdict;
    }
    if !any_opinion {
        verdict.defaulted = true;
        verdict.action = match default {
            DefaultAction::Allow => Action::Allow,
            DefaultAction::Block => Action::Block,
        };
        if default == DefaultAction::Block {
            verdict.reason = Some(format!(
                "no policy allows access to {resource} (default_action: block)"
            ));
        }
        return verdict;
    }
    verdict.action = if let Some((_, query)) = rewrites.into_iter().next() {
        verdict.query = Some(query);
        Action::Rewrite
    } else if !verdict.masks.is_empty() {
        Action::Mask
    } else if !verdict.filters.is_empty() {
        Action::Filter
    } else {
        Action::Allow
    };
    verdict
}

/// Add `mask`, keeping the strongest strategy per (table, column).
fn merge_mask(masks: &mut Vec<Mask>, mask: Mask) {
    match masks
        .iter_mut()
        .find(|m| m.column == mask.column && m.table == mask.table)
    {
        Some(existing) if existing.strategy < mask.strategy => existing.strategy = mask.strategy,
        Some(_) => {}
        None => masks.push(mask),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{FilterOp, FilterOperand, Strategy};

    fn active(policy: &str, d: Option<Decision>) -> PolicyOutcome {
        PolicyOutcome {
            policy: policy.into(),
            rollout: Rollout::Active,
            result: Ok(d),
        }
    }

    fn decision(action: Action) -> Decision {
        Decision::new(action)
    }

    fn block(reason: &str) -> Decision {
        Decision {
            reason: Some(reason.into()),
            ..decision(Action::Block)
        }
    }

    fn masks(list: &[(&str, Strategy)]) -> Decision {
        Decision {
            masks: list
                .iter()
                .map(|(c, s)| Mask {
                    column: (*c).into(),
                    strategy: *s,
                    table: None,
                })
                .collect(),
            ..decision(Action::Mask)
        }
    }

    fn rewrite(q: &str) -> Decision {
        Decision {
            query: Some(q.into()),
            ..decision(Action::Rewrite)
        }
    }

    #[test]
    fn block_wins_over_allow_and_masks() {
        let v = combine(
            vec![
                active("a", Some(decision(Action::Allow))),
                active("b", Some(block("no drops"))),
                active("c", Some(masks(&[("email", Strategy::Partial)]))),
            ],
            DefaultAction::Allow,
            "db",
        );
        assert_eq!(v.action, Action::Block);
        assert_eq!(v.reason.as_deref(), Some("no drops"));
        assert_eq!(v.policies, vec!["b"]);
        assert!(v.masks.is_empty());
    }

    #[test]
    fn strongest_mask_per_column_wins_and_columns_are_unioned() {
        let v = combine(
            vec![
                active(
                    "a",
                    Some(masks(&[
                        ("email", Strategy::Partial),
                        ("ssn", Strategy::Hash),
                    ])),
                ),
                active(
                    "b",
                    Some(masks(&[
                        ("email", Strategy::Redact),
                        ("phone", Strategy::Email),
                    ])),
                ),
                active("c", Some(masks(&[("ssn", Strategy::Email)]))),
            ],
            DefaultAction::Block,
            "db",
        );
        assert_eq!(v.action, Action::Mask);
        let got: Vec<(&str, Strategy)> = v
            .masks
            .iter()
            .map(|m| (m.column.as_str(), m.strategy))
            .collect();
        assert_eq!(
            got,
            vec![
                ("email", Strategy::Redact),
                ("ssn", Strategy::Hash),
                ("phone", Strategy::Email)
            ]
        );
        assert_eq!(v.policies, vec!["a", "b", "c"]);
    }

    #[test]
    fn strategy_strength_order() {
        use Strategy::*;
        let mut ordered = vec![Redact, Null, Partial, Hash, Email];
        ordered.sort();
        assert_eq!(ordered, vec![Partial, Email, Hash, Redact, Null]);
    }

    #[test]
    fn one_rewrite_applies_two_different_rewrites_block() {
        let v = combine(
            vec![active("a", Some(rewrite("select 1")))],
            DefaultAction::Block,
            "db",
        );
        assert_eq!(
            (v.action, v.query.as_deref()),
            (Action::Rewrite, Some("select 1"))
        );
        let same = combine(
            vec![
                active("a", Some(rewrite("select 1"))),
                active("b", Some(rewrite("select 1"))),
            ],
            DefaultAction::Block,
            "db",
        );
        assert_eq!(same.action, Action::Rewrite);
        let v = combine(
            vec![
                active("a", Some(rewrite("select 1"))),
                active("b", Some(rewrite("select 2"))),
            ],
            DefaultAction::Allow,
            "db",
        );
        assert_eq!(v.action, Action::Block);
        assert_eq!(
            v.reason.as_deref(),
            Some("conflicting rewrites from policies a, b")
        );
    }

    #[test]
    fn filters_are_anded() {
        let f = |field: &str| Filter {
            field: field.into(),
            op: FilterOp::Eq,
            operand: FilterOperand::Value(serde_json::json!(1)),
            path: None,
        };
        let v = combine(
            vec![
                active(
                    "a",
                    Some(Decision {
                        filters: vec![f("x")],
                        ..decision(Action::Filter)
                    }),
                ),
                active(
                    "b",
                    Some(Decision {
                        filters: vec![f("y")],
                        ..decision(Action::Filter)
                    }),
                ),
            ],
            DefaultAction::Block,
            "db",
        );
        assert_eq!(v.action, Action::Filter);
        assert_eq!(v.filters, vec![f("x"), f("y")]);
    }

    #[test]
    fn no_opinion_falls_back_to_the_default_action() {
        let v = combine(vec![active("a", None)], DefaultAction::Block, "primary-db");
        assert!(v.defaulted);
        assert_eq!(v.action, Action::Block);
        assert_eq!(
            v.reason.as_deref(),
            Some("no policy allows access to primary-db (default_action: block)")
        );
        let v = combine(vec![], DefaultAction::Allow, "db");
        assert!(v.defaulted);
        assert_eq!(v.action, Action::Allow);
    }

    #[test]
    fn dry_run_is_reported_never_enforced() {
        let v = combine(
            vec![
                active("live", Some(decision(Action::Allow))),
                PolicyOutcome {
                    policy: "trial".into(),
                    rollout: Rollout::DryRun,
                    result: Ok(Some(block("too risky"))),
                },
                PolicyOutcome {
                    policy: "trial-mask".into(),
                    rollout: Rollout::DryRun,
                    result: Ok(Some(masks(&[("ssn", Strategy::Redact)]))),
                },
            ],
            DefaultAction::Block,
            "db",
        );
        assert_eq!(v.action, Action::Allow);
        assert!(v.masks.is_empty());
        assert_eq!(
            v.dry_run,
            vec![
                DryRunFinding {
                    policy: "trial".into(),
                    would: "would_block".into(),
                    reason: Some("too risky".into())
                },
                DryRunFinding {
                    policy: "trial-mask".into(),
                    would: "would_mask".into(),
                    reason: None
                },
            ]
        );
        // Only dry-run opinions: the default action decides.
        let v = combine(
            vec![PolicyOutcome {
                policy: "t".into(),
                rollout: Rollout::DryRun,
                result: Ok(Some(decision(Action::Allow))),
            }],
            DefaultAction::Block,
            "db",
        );
        assert_eq!((v.action, v.defaulted), (Action::Block, true));
    }

    #[test]
    fn an_enforced_policy_error_blocks_and_a_dry_run_error_does_not() {
        let error = PolicyError::Evaluation {
            policy: "p".into(),
            rule: "data.p.pre_request".into(),
            message: "boom".into(),
        };
        let v = combine(
            vec![
                active("a", Some(decision(Action::Allow))),
                PolicyOutcome {
                    policy: "p".into(),
                    rollout: Rollout::Active,
                    result: Err(error.clone()),
                },
            ],
            DefaultAction::Allow,
            "db",
        );
        assert_eq!(v.action, Action::Block);
        assert_eq!(v.policies, vec!["p"]);
        assert!(v.reason.as_deref().is_some_and(|r| r.contains("boom")));
        let v = combine(
            vec![
                active("a", Some(decision(Action::Allow))),
                PolicyOutcome {
                    policy: "p".into(),
                    rollout: Rollout::DryRun,
                    result: Err(error),
                },
            ],
            DefaultAction::Block,
            "db",
        );
        assert_eq!(v.action, Action::Allow);
        assert_eq!(v.dry_run[0].would, "would_block");
    }

    #[test]
    fn on_derived_block_wins_over_mask() {
        let with = |o| Decision {
            on_derived: Some(o),
            ..masks(&[("email", Strategy::Partial)])
        };
        let v = combine(
            vec![active("a", Some(with(OnDerived::Mask)))],
            DefaultAction::Block,
            "db",
        );
        assert_eq!(v.on_derived, OnDerived::Mask);
        let v = combine(
            vec![
                active("a", Some(with(OnDerived::Mask))),
                active("b", Some(with(OnDerived::Block))),
            ],
            DefaultAction::Block,
            "db",
        );
        assert_eq!(v.on_derived, OnDerived::Block);
    }
}
