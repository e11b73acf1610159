//! Static identities from the config: each holds its secret (the configured
//! password, protocol-neutral) and the verifiers protocols derive from it
//! once at start (SCRAM-SHA-256 of the SASLprep'd password for PostgreSQL
//! and MongoDB, MongoDB's SCRAM-SHA-1 of its password digest).

use std::borrow::Cow;
use std::collections::HashMap;

use md5::{Digest, Md5};

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
    /// SCRAM-SHA-256 verifier (PostgreSQL, MongoDB) of the SASLprep'd `secret`, derived at start.
    pub scram_sha256: Verifier,
    /// MongoDB's SCRAM-SHA-1 verifier: of `hex(MD5("<name>:mongo:<secret>"))`, as mongod stores it.
    pub mongo_scram_sha1: Verifier,
}

/// SASLprep (RFC 4013) of `text`, or `text` itself when it has no prepared
/// form (prohibited characters), as PostgreSQL does with SCRAM passwords.
pub fn saslprep(text: &str) -> Cow<'_, str> {
    stringprep::saslprep(text).unwrap_or(Cow::Borrowed(text))
}

/// The password MongoDB's SCRAM-SHA-1 runs on: `hex(MD5("<user>:mongo:<password>"))`.
pub fn mongo_sha1_password(user: &str, password: &str) -> String {
    Md5::digest(format!("{user}:mongo:{password}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// All static identities, plus a secret for answering unknown names convincingly.
#[derive(Debug)]
pub struct Identities {
    by_name: HashMap<String, Identity>,
    /// SASLprep'd names that differ from the configured ones, to the configured name.
    by_prepared_name: HashMap<String, String>,
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
                    scram_sha256: Verifier::new(
                        &saslprep(&password),
                        random::bytes::<16>().to_vec(),
                    ),
                    mongo_scram_sha1: Verifier::derive(
                        scram::Hash::Sha1,
                        mongo_sha1_password(&i.name, &password).as_bytes(),
                        random::bytes::<16>().to_vec(),
                    ),
                    secret: Secret(password),
                };
                (i.name.clone(), identity)
            })
            .collect();
        let mut by_prepared_name = HashMap::new();
        for name in configured.iter().map(|i| &i.name) {
            let prepared = saslprep(name);
            if prepared != name.as_str() {
                by_prepared_name.insert(prepared.into_owned(), name.clone());
            }
        }
        Self {
            by_name,
            by_prepared_name,
            decoy_secret: random::bytes::<32>(),
        }
    }

    /// The identity called `name`.
    pub fn get(&self, name: &str) -> Option<&Identity> {
        self.by_name.get(name)
    }

    /// The identity a SCRAM login names: `name` exactly, else the one whose
    /// SASLprep'd name is `name`'s (drivers send names unprepared), unless
    /// that prepared form is itself a configured name.
    pub fn find_login(&self, name: &str) -> Option<&Identity> {
        self.by_name.get(name).or_else(|| {
            let prepared = saslprep(name);
            if self.by_name.contains_key(prepared.as_ref()) {
                return self.by_name.get(prepared.as_ref());
            }
            self.by_name
                .get(self.by_prepared_name.get(prepared.as_ref())?)
        })
    }

    /// A SCRAM-SHA-256 verifier that no password matches, with a salt
    /// stable per name, so an unknown user sees the same exchange as a
    /// known one with a wrong password. It costs no key derivation, like a
    /// known user's precomputed verifier.
    pub fn decoy(&self, name: &str) -> Verifier {
        self.decoy_with(scram::Hash::Sha256, name)
    }

    /// [`Identities::decoy`] for the SCRAM variant of `hash`.
    pub fn decoy_with(&self, hash: scram::Hash, name: &str) -> Verifier {
        let salt = scram::salted_password(name, &self.decoy_secret, 1);
        Verifier {
            hash,
            salt: salt.get(..16).unwrap_or_default().to_vec(),
            iterations: scram::ITERATIONS,
            stored_key: self.decoy_secret.to_vec(),
            server_key: self.decoy_secret.to_vec(),
        }
    }
}
