//! OpenSSH user certificates: signed by one of `ssh.user_ca_keys`, valid now, of the user type,
//! naming the identity among its principals and carrying no critical option (Gate enforces
//! none, so a certificate restricted by one is refused); groups come from the
//! `groups@gate.dev` extension (comma-separated).

use russh::keys::ssh_key::Fingerprint;
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::{Certificate, HashAlg, PublicKey};

use super::error::SshError;

/// The extension whose value lists the certificate holder's groups.
pub(super) const GROUPS_EXTENSION: &str = "groups@gate.dev";

/// The trusted user CAs.
#[derive(Debug, Default)]
pub(super) struct UserCas {
    fingerprints: Vec<Fingerprint>,
}

impl UserCas {
    /// Decode `ssh.user_ca_keys`; a line that does not decode is an error naming it.
    pub(super) fn new(lines: &[String]) -> Result<Self, SshError> {
        let mut fingerprints = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let key = PublicKey::from_openssh(line.trim()).map_err(|e| {
                SshError::Config(format!(
                    "ssh.user_ca_keys[{i}]: not an OpenSSH public key line: {e}"
                ))
            })?;
            fingerprints.push(key.fingerprint(HashAlg::Sha256));
        }
        Ok(Self { fingerprints })
    }

    /// Whether any CA is trusted.
    pub(super) fn any(&self) -> bool {
        !self.fingerprints.is_empty()
    }

    /// The groups of `identity` when `cert` admits it; why not otherwise (for Gate's log only).
    pub(super) fn admit(&self, cert: &Certificate, identity: &str) -> Result<Vec<String>, String> {
        if !self.any() {
            return Err("no ssh.user_ca_keys configured".into());
        }
        cert.validate(&self.fingerprints)
            .map_err(|e| format!("certificate {:?} not valid: {e}", cert.key_id()))?;
        if cert.cert_type() != CertType::User {
            return Err(format!(
                "certificate {:?} is a host certificate",
                cert.key_id()
            ));
        }
        if !cert.valid_principals().iter().any(|p| p == identity) {
            return Err(format!(
                "certificate {:?} does not name {identity:?} among its principals",
                cert.key_id()
            ));
        }
        if let Some(option) = cert.critical_options().keys().next() {
            return Err(format!(
                "certificate {:?} carries critical option {option:?}, which Gate does not enforce",
                cert.key_id()
            ));
        }
        Ok(cert
            .extensions()
            .get(GROUPS_EXTENSION)
            .map(|groups| {
                groups
                    .split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
    }
}
