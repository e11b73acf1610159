//! Gate's policy engine: Rego v1 policies compiled once and evaluated per
//! session and per request at three stages (`session`, `pre_request`,
//! `post_request`), decisions validated and combined across policies, and
//! the pure enforcement helpers (masking strategies, JSON masks and filters).
//!
//! ```
//! use gate_policy::{EngineOptions, PolicyEngine, PolicySpec, Stage, Action};
//!
//! let policy = PolicySpec::from_source("no-drop", "no-drop.rego", r#"
//!     package formal.v2
//!     import rego.v1
//!     default pre_request := {"action": "allow"}
//!     pre_request := {"action": "block", "reason": "no drops"} if input.query.type == "drop"
//! "#);
//! let engine = PolicyEngine::new(vec![policy], EngineOptions::default()).unwrap();
//! let input = regorus::Value::from_json_str(r#"{"query": {"type": "drop"}}"#).unwrap();
//! let verdict = engine.evaluate(Stage::PreRequest, "primary-db", &input);
//! assert_eq!(verdict.action, Action::Block);
//! assert_eq!(verdict.reason.as_deref(), Some("no drops"));
//! ```

mod ast_walk;
pub mod cases;
mod combine;
mod decision;
mod engine;
mod error;
mod glob;
mod input;
pub mod json;
mod json_doc;
pub mod mask;
mod reads;
mod rule_graph;
pub mod source_limits;

pub use combine::{DefaultAction, DryRunFinding, PolicyOutcome, Rollout, Verdict, combine};
pub use decision::{Action, Decision, Filter, FilterOp, FilterOperand, Mask, OnDerived, Strategy};
pub use engine::{EngineOptions, Limits, PolicyEngine, PolicyModule, PolicySpec};
pub use error::PolicyError;
pub use glob::glob_match;
pub use input::{
    ConnectionInfo, GrantInfo, HttpInfo, McpClient, McpInfo, PolicyInput, QueryInfo, ResourceInfo,
    ResponseColumn, ResponseInfo, SessionInput, SshForward, SshInfo, SshPty, Stage, TimeInfo,
    UserInfo,
};
pub use reads::{InputReads, Reuse};
pub use regorus::Value;
pub use rule_graph::MAX_RULE_CHAIN;
