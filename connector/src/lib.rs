//! The Gate data plane: listeners, protocol codecs, policy stages, upstream pools, masking and audit (built by the PostgreSQL connector issue).
