//! The Gate policy engine (built by the policy issue).
