//! The Gate data plane: listeners, protocol codecs, policy stages, upstream
//! pools, masking and audit. So far: loading and checking the configuration.

pub mod startup;
