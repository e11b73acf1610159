//! Client login to Gate through `saslStart` / `saslContinue` (and
//! `hello`'s `speculativeAuthenticate`): SCRAM-SHA-256 (password
//! SASLprep'd) and SCRAM-SHA-1 (older drivers; MongoDB's password digest)
//! for static identities (unknown users get a decoy verifier: the same
//! exchange and the same code 18), PLAIN for JWTs (and static passwords)
//! over TLS or loopback only.

use std::net::SocketAddr;

use bson::spec::BinarySubtype;
use bson::{Binary, Bson, Document, doc};
use gate_policy::UserInfo;

use super::error::MongoError;
use crate::auth::scram::{Hash, ServerExchange, Verifier, constant_time_eq};
use crate::server::Gate;

/// The one conversation id Gate uses (one conversation per connection at a time).
const CONVERSATION: i32 = 1;

/// Where a login stands.
#[derive(Debug, Default)]
pub(super) struct Login {
    scram: Option<Scram>,
    /// The database the client authenticates against (`authSource`).
    pub(super) auth_db: Option<String>,
}

#[derive(Debug)]
struct Scram {
    user: String,
    exchange: ServerExchange,
    verifier: Verifier,
    known: bool,
    skip_empty: bool,
    /// The proof checked out; waiting for the client's empty last step.
    proven: bool,
}

/// A SASL reply, and the user once the login is complete.
pub(super) type Step = (Document, Option<UserInfo>);

fn payload(body: &Document) -> Result<Vec<u8>, MongoError> {
    match body.get("payload") {
        Some(Bson::Binary(b)) => Ok(b.bytes.clone()),
        Some(Bson::String(s)) => Ok(s.as_bytes().to_vec()),
        _ => Err(MongoError::ClientUnexpected(
            "saslStart/saslContinue without a payload".into(),
        )),
    }
}

fn sasl_reply(done: bool, payload: &[u8]) -> Document {
    doc! {
        "conversationId": CONVERSATION,
        "done": done,
        "payload": Binary { subtype: BinarySubtype::Generic, bytes: payload.to_vec() },
        "ok": 1.0,
    }
}

/// The user named in a SCRAM client-first message (`n=`), unescaped.
fn scram_user(client_first: &str) -> Option<String> {
    let bare = client_first.splitn(3, ',').nth(2)?;
    let name = bare.split(',').find_map(|part| part.strip_prefix("n="))?;
    Some(name.replace("=2C", ",").replace("=3D", "="))
}

impl Login {
    /// `saslStart` (or `speculativeAuthenticate`'s document).
    pub(super) fn start(
        &mut self,
        gate: &Gate,
        body: &Document,
        tls: bool,
        peer: SocketAddr,
    ) -> Result<Step, MongoError> {
        self.scram = None;
        self.auth_db = body
            .get_str("$db")
            .ok()
            .map(str::to_owned)
            .or(self.auth_db.take());
        let mechanism = body.get_str("mechanism").unwrap_or_default();
        let data = payload(body)?;
        match mechanism {
            "SCRAM-SHA-256" => self.start_scram(gate, Hash::Sha256, body, data),
            "SCRAM-SHA-1" => self.start_scram(gate, Hash::Sha1, body, data),
            "PLAIN" => {
                if !tls && !peer.ip().is_loopback() {
                    return Err(MongoError::TlsRequired);
                }
                let user = plain(gate, &data)?;
                Ok((sasl_reply(true, b""), Some(user)))
            }
            other => Err(MongoError::Mechanism(other.to_owned())),
        }
    }

    /// The first SCRAM step, on `hash`'s verifier of the named identity (a
    /// decoy for unknown names).
    fn start_scram(
        &mut self,
        gate: &Gate,
        hash: Hash,
        body: &Document,
        data: Vec<u8>,
    ) -> Result<Step, MongoError> {
        let first = String::from_utf8(data).map_err(|_| MongoError::AuthFailed)?;
        let sent = scram_user(&first).ok_or(MongoError::AuthFailed)?;
        // SCRAM-SHA-1's password digest includes the name as sent: no SASLprep'd match.
        let identity = match hash {
            Hash::Sha256 => gate.identities.find_login(&sent),
            Hash::Sha1 => gate.identities.get(&sent),
        };
        let verifier = match identity {
            Some(i) if hash == Hash::Sha256 => i.scram_sha256.clone(),
            Some(i) => i.mongo_scram_sha1.clone(),
            None => gate.identities.decoy_with(hash, &sent),
        };
        let (exchange, server_first) =
            ServerExchange::start(&first, &verifier, &crate::random::nonce())
                .map_err(|_| MongoError::AuthFailed)?;
        let skip_empty = body
            .get_document("options")
            .ok()
            .and_then(|o| o.get_bool("skipEmptyExchange").ok())
            .unwrap_or(false);
        self.scram = Some(Scram {
            user: identity.map_or(sent, |i| i.name.clone()),
            exchange,
            verifier,
            known: identity.is_some(),
            skip_empty,
            proven: false,
        });
        Ok((sasl_reply(false, server_first.as_bytes()), None))
    }

    /// `saslContinue`.
    pub(super) fn next(&mut self, gate: &Gate, body: &Document) -> Result<Step, MongoError> {
        let scram = self.scram.as_mut().ok_or(MongoError::AuthFailed)?;
        if body.get_i32("conversationId").ok() != Some(CONVERSATION) {
            self.scram = None;
            return Err(MongoError::AuthFailed);
        }
        if scram.proven {
            let user = crate::auth::static_user(gate, &scram.user);
            self.scram = None;
            return Ok((sasl_reply(true, b""), Some(user)));
        }
        let data = payload(body)?;
        let last = String::from_utf8(data).map_err(|_| MongoError::AuthFailed)?;
        let finished = scram.exchange.finish(&last, &scram.verifier);
        let server_final = match finished {
            Ok(server_final) if scram.known => server_final,
            _ => {
                self.scram = None;
                return Err(MongoError::AuthFailed);
            }
        };
        if scram.skip_empty {
            let user = crate::auth::static_user(gate, &scram.user);
            self.scram = None;
            return Ok((sasl_reply(true, server_final.as_bytes()), Some(user)));
        }
        scram.proven = true;
        Ok((sasl_reply(false, server_final.as_bytes()), None))
    }
}

/// PLAIN: `authzid NUL authcid NUL password`; a token for users that are
/// not static identities when issuers are configured, else the identity's password.
fn plain(gate: &Gate, data: &[u8]) -> Result<UserInfo, MongoError> {
    let mut parts = data.split(|&b| b == 0);
    let (_authzid, Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(MongoError::AuthFailed);
    };
    let user = std::str::from_utf8(user).map_err(|_| MongoError::AuthFailed)?;
    let password = std::str::from_utf8(password).map_err(|_| MongoError::AuthFailed)?;
    if crate::auth::uses_token(gate, user) {
        return crate::auth::token_user(gate, password).map_err(|reason| {
            tracing::info!(protocol = "mongodb", user, %reason, "token login refused");
            MongoError::AuthFailed
        });
    }
    match gate.identities.get(user) {
        Some(identity)
            if constant_time_eq(identity.secret.expose().as_bytes(), password.as_bytes()) =>
        {
            Ok(crate::auth::static_user(gate, &identity.name))
        }
        _ => Err(MongoError::AuthFailed),
    }
}

#[cfg(test)]
mod tests {
    use super::scram_user;

    #[test]
    fn the_scram_user_is_read_and_unescaped() {
        assert_eq!(scram_user("n,,n=app,r=abc").as_deref(), Some("app"));
        assert_eq!(scram_user("n,,n=a=2Cb=3Dc,r=x").as_deref(), Some("a,b=c"));
        assert_eq!(scram_user("n,,r=x"), None);
        assert_eq!(scram_user("garbage"), None);
    }
}
