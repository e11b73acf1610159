//! Everything that can go wrong in an SSH session, and which side it came from.

/// An SSH session's failure.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// Gate's own host key cannot be loaded or generated.
    #[error("{0}")]
    HostKey(String),
    /// A setting cannot be used (a key file that does not load).
    #[error("{0}")]
    Config(String),
    /// The login name names no SSH resource (`identity@resource`).
    #[error("no ssh resource {0:?}")]
    UnknownResource(String),
    /// The upstream cannot be reached or refused Gate's login.
    #[error("upstream {resource}: {detail}")]
    Upstream { resource: String, detail: String },
    /// The upstream's host key is not the one pinned in `known_hosts_file`.
    #[error("upstream {resource}: host key {fingerprint} is not trusted by {known_hosts}{detail}")]
    UpstreamHostKey {
        resource: String,
        fingerprint: String,
        known_hosts: String,
        detail: String,
    },
    /// The SSH layer (russh) failed on either side.
    #[error("ssh: {0}")]
    Russh(#[from] russh::Error),
}
