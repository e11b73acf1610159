//! SSH settings: Gate's own host key (`ssh:`), the upstream login and host-key pinning of a
//! `protocol: ssh` resource, and the shape of identities' `ssh_keys` lines.

use serde::Deserialize;

use crate::connector::{Protocol, ResourceConfig};
use crate::error::Problems;

/// Top-level `ssh:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshConfig {
    /// Gate's host key (OpenSSH private key format); generated (ed25519, mode 0600) on the first
    /// start that serves an SSH resource when the file does not exist.
    #[serde(default = "default_host_key_file")]
    pub host_key_file: String,
    /// CAs (OpenSSH public key lines) whose user certificates log in: a principal names the
    /// identity, the `groups@gate.dev` extension its groups.
    #[serde(default)]
    pub user_ca_keys: Vec<String>,
}

impl Default for SshConfig {
    fn default() -> Self {
        Self {
            host_key_file: default_host_key_file(),
            user_ca_keys: Vec::new(),
        }
    }
}

fn default_host_key_file() -> String {
    ".data/connector/ssh_host_ed25519".to_owned()
}

/// Key types Gate accepts in `ssh_keys` lines.
pub const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-rsa",
];

impl SshConfig {
    /// Report an empty `ssh.host_key_file`.
    pub fn validate(&self, p: &mut Problems) {
        if self.host_key_file.is_empty() {
            p.push("ssh.host_key_file", "must not be empty");
        }
        validate_keys(&self.user_ca_keys, "ssh.user_ca_keys", p);
    }
}

/// Report `ssh_keys` lines that are not `TYPE BASE64 [comment]` with a supported type (the key
/// itself is decoded at start, where a bad one is reported under the same path).
pub fn validate_keys(keys: &[String], at: &str, p: &mut Problems) {
    for (j, line) in keys.iter().enumerate() {
        let mut fields = line.split_whitespace();
        let kind = fields.next().unwrap_or_default();
        let blob = fields.next().unwrap_or_default();
        if !KEY_TYPES.contains(&kind) {
            p.push(
                format!("{at}[{j}]"),
                format!(
                    "expected an OpenSSH public key line starting with one of {}, got {:?}",
                    KEY_TYPES.join(", "),
                    truncate(line)
                ),
            );
        } else if blob.is_empty()
            || !blob
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            p.push(
                format!("{at}[{j}]"),
                format!("expected base64 key data after {kind:?}"),
            );
        }
    }
}

/// Check the SSH fields of resource `r` (`at` names a field of it).
pub fn validate_resource(r: &ResourceConfig, at: &dyn Fn(&str) -> String, p: &mut Problems) {
    if r.protocol != Protocol::Ssh {
        for (set, field) in [
            (r.private_key_file.is_some(), "private_key_file"),
            (r.known_hosts_file.is_some(), "known_hosts_file"),
            (r.insecure_skip_host_key, "insecure_skip_host_key"),
            (r.record_input, "record_input"),
        ] {
            if set {
                p.push(
                    at(field),
                    format!(
                        "only for ssh resources (this one is {})",
                        r.protocol.as_str()
                    ),
                );
            }
        }
        if r.record && r.protocol != Protocol::Mcp {
            p.push(
                at("record"),
                format!(
                    "only for ssh and mcp resources (this one is {})",
                    r.protocol.as_str()
                ),
            );
        }
        return;
    }
    if r.username.as_deref().unwrap_or_default().is_empty() {
        p.push(
            at("username"),
            "required for ssh resources (the upstream account)",
        );
    }
    match (&r.private_key_file, &r.password) {
        (None, None) => p.push(
            at("private_key_file"),
            "required for ssh resources unless password is set",
        ),
        (Some(file), _) if file.is_empty() => p.push(at("private_key_file"), "must not be empty"),
        _ => {}
    }
    match (&r.known_hosts_file, r.insecure_skip_host_key) {
        (None, false) => p.push(
            at("known_hosts_file"),
            "required for ssh resources (or insecure_skip_host_key: true to trust any host key)",
        ),
        (Some(_), true) => p.push(
            at("insecure_skip_host_key"),
            "contradicts known_hosts_file: set one of them",
        ),
        (Some(file), false) if file.is_empty() => {
            p.push(at("known_hosts_file"), "must not be empty")
        }
        _ => {}
    }
    if r.record_input && !r.record {
        p.push(at("record_input"), "needs record: true");
    }
    if r.database.is_some() {
        p.push(at("database"), "not used by ssh resources");
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

#[cfg(test)]
#[path = "ssh_tests.rs"]
mod tests;
