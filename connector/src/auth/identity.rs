//! Static identities from the config: each holds its secret (the configured
//! password, protocol-neutral) and the verifiers protocols derive from it
//! once at start (SCRAM-SHA-256 for PostgreSQL).

use std::collections::HashMap;

use gate_config::connector::StaticIdentity;

use super::scram::{self, Verifier};
use crate::random;

/// The secret an identity proves it knows. Protocols derive their own
/// verifiers from it; it is never logged or sent anywhere.
pub struct Secret(String);

impl Secret {
    /// The secret's text, for deriving a protocol's verifier.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// A known user.
#[derive(Debug)]
pub struct Identity {
    pub name: String,
    pub groups: Vec<String>,
    pub secret: Secret,
    /// SCRAM-SHA-256 verifier (PostgreSQL), derived from `secret` at start.
    pub scram_sha256: Verifier,
}

/// All static identities, plus a secret for answering unknown names convincingly.
#[derive(Debug)]
pub struct Identities {
    by_name: HashMap<String, Identity>,
    decoy_secret: [u8; 32],
}

impl Identities {
    /// Derive verifiers for the configured identities.
    pub fn new(configured: &[StaticIdentity]) -> Self {
        let by_name = configured
            .iter()
            .map(|i| {
                // An SSH-only identity has no password: no password logs it in.
                let password = if i.password.is_empty() {
                    crate::random::nonce()
                } else {
                    i.password.clone()
                };
                let identity = Identity {
                    name: i.name.clone(),
                    groups: i.groups.clone(),
                    scram_sha256: Verifier::new(&password, random::bytes::<16>().to_vec()),
                    secret: Secret(password),
                };
                (i.name.clone(), identity)
            })
            .collect();
        Self {
            by_name,
            decoy_secret: random::bytes::<32>(),
        }
    }

    /// The identity called `name`.
    pub fn get(&self, name: &str) -> Option<&Identity> {
        self.by_name.get(name)
    }

    /// A SCRAM verifier that no password matches, with a salt stable per
    /// name, so an unknown user sees the same exchange as a known one with a
    /// wrong password. It costs no key derivation, like a known user's
    /// precomputed verifier.
    pub fn decoy(&self, name: &str) -> Verifier {
        let salt = scram::salted_password(name, &self.decoy_secret, 1);
        Verifier {
            salt: salt.get(..16).unwrap_or_default().to_vec(),
            iterations: scram::ITERATIONS,
            stored_key: self.decoy_secret,
            server_key: self.decoy_secret,
        }
    }
}
