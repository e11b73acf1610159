//! The policy crate's error type: which policy, what went wrong, and where in the source.

/// A policy that could not be loaded, compiled or evaluated, or whose decision is malformed.
///
/// Every variant names the policy. Loading errors carry the engine's
/// `file:line:col` rendering. At evaluation time any of these blocks the
/// request (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The Rego source does not parse or compile.
    #[error("policy {policy}: {message}")]
    Compile { policy: String, message: String },
    /// A policy file could not be read.
    #[error("policy {policy}: cannot read {path}: {message}")]
    Read {
        policy: String,
        path: String,
        message: String,
    },
    /// Evaluation failed (a builtin error, a conflict between rule values…).
    #[error("policy {policy}: evaluation of {rule} failed: {message}")]
    Evaluation {
        policy: String,
        rule: String,
        message: String,
    },
    /// Evaluation exceeded its instruction or time budget.
    #[error("policy {policy}: evaluation of {rule} exceeded its budget: {message}")]
    Limit {
        policy: String,
        rule: String,
        message: String,
    },
    /// The rule's value is not a valid decision.
    #[error("policy {policy}: invalid {stage} decision: {field}: {message}")]
    Decision {
        policy: String,
        stage: String,
        field: String,
        message: String,
    },
}

impl PolicyError {
    /// The name of the policy at fault.
    pub fn policy(&self) -> &str {
        match self {
            PolicyError::Compile { policy, .. }
            | PolicyError::Read { policy, .. }
            | PolicyError::Evaluation { policy, .. }
            | PolicyError::Limit { policy, .. }
            | PolicyError::Decision { policy, .. } => policy,
        }
    }
}
