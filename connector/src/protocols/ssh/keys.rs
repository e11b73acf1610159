//! Keys Gate holds for SSH: its own host key (loaded, or generated ed25519 with mode 0600 on the
//! first start), and the identities' registered public keys: static ones decoded once, the
//! control plane's matched as they come in each snapshot.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;

use gate_config::connector::StaticIdentity;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PublicKey};

use super::error::SshError;

/// Load Gate's host key from `path`, generating an ed25519 key there (mode 0600) when the file
/// does not exist.
pub fn host_key(path: &str) -> Result<PrivateKey, SshError> {
    let file = Path::new(path);
    if file.exists() {
        let text = std::fs::read_to_string(file).map_err(|e| {
            SshError::HostKey(format!("ssh.host_key_file: cannot read {path}: {e}"))
        })?;
        return PrivateKey::from_openssh(text.as_bytes()).map_err(|e| {
            SshError::HostKey(format!(
                "ssh.host_key_file: {path} is not an unencrypted OpenSSH private key: {e}"
            ))
        });
    }
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&crate::random::bytes::<32>()));
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| SshError::HostKey(format!("ssh.host_key_file: cannot encode a key: {e}")))?;
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            SshError::HostKey(format!(
                "ssh.host_key_file: cannot create {}: {e}",
                dir.display()
            ))
        })?;
    }
    let written = write_private(file, text.as_bytes());
    written
        .map_err(|e| SshError::HostKey(format!("ssh.host_key_file: cannot write {path}: {e}")))?;
    tracing::info!(path, "generated Gate's SSH host key (ed25519)");
    Ok(key)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// The upstream login key of a resource (`private_key_file`).
pub fn client_key(path: &str, at: &str) -> Result<PrivateKey, SshError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SshError::Config(format!("{at}: cannot read {path}: {e}")))?;
    PrivateKey::from_openssh(text.as_bytes()).map_err(|e| {
        SshError::Config(format!(
            "{at}: {path} is not an unencrypted OpenSSH private key: {e}"
        ))
    })
}

/// Every identity's registered public keys.
#[derive(Debug, Default)]
pub struct IdentityKeys {
    by_identity: HashMap<String, Vec<PublicKey>>,
}

impl IdentityKeys {
    /// Decode the `ssh_keys` of every identity; a line that does not decode is an error naming
    /// it (`identities[0].ssh_keys[1]: …`).
    pub fn new(identities: &[StaticIdentity]) -> Result<Self, SshError> {
        let mut by_identity = HashMap::new();
        for (i, identity) in identities.iter().enumerate() {
            let mut keys = Vec::new();
            for (j, line) in identity.ssh_keys.iter().enumerate() {
                let key = PublicKey::from_openssh(line.trim()).map_err(|e| {
                    SshError::Config(format!(
                        "identities[{i}].ssh_keys[{j}]: not an OpenSSH public key line: {e}"
                    ))
                })?;
                keys.push(key);
            }
            if !keys.is_empty() {
                by_identity.insert(identity.name.clone(), keys);
            }
        }
        Ok(Self { by_identity })
    }

    /// Whether `key` is registered to `identity` (comments are not compared).
    pub fn holds(&self, identity: &str, key: &PublicKey) -> bool {
        self.by_identity
            .get(identity)
            .is_some_and(|keys| keys.iter().any(|k| k.key_data() == key.key_data()))
    }
}

/// Whether one of `lines` (OpenSSH public key lines from the control plane) is `key`; a line
/// that does not decode matches nothing (the control plane checks their form, not their data).
pub fn any_matches(lines: &[String], key: &PublicKey) -> bool {
    lines.iter().any(|line| {
        PublicKey::from_openssh(line.trim()).is_ok_and(|k| k.key_data() == key.key_data())
    })
}
