//! Logging in: the login name's identity and resource, the checks of a public key, a user
//! certificate and a token, and, once one passes, admission and the upstream login.

use std::sync::Arc;

use gate_config::connector::{Protocol, ResourceConfig};
use russh::keys::{Certificate, PublicKey};
use russh::server::{Auth, Response, Session};
use tokio::sync::{mpsc, oneshot};

use super::back::Back;
use super::channel::Conn;
use super::error::SshError;
use super::handler::Client;
use super::policy::{self, Ask, Login};
use super::upstream;

/// The identity and resource a login name selects: `alice@bastion-web1`, or `alice` on a
/// resource's own port (`dedicated`, an index of `resources`) or when only one SSH resource
/// exists.
pub fn route(
    resources: &[ResourceConfig],
    dedicated: Option<usize>,
    user: &str,
) -> Option<(usize, String)> {
    let (identity, named) = match user.split_once('@') {
        Some((identity, resource)) => (identity, Some(resource)),
        None => (user, None),
    };
    if identity.is_empty() {
        return None;
    }
    let ssh = || {
        resources
            .iter()
            .enumerate()
            .filter(|(_, r)| r.protocol == Protocol::Ssh)
    };
    let index = match (dedicated, named) {
        (Some(index), None) => index,
        (Some(index), Some(name)) => (resources.get(index)?.name == name).then_some(index)?,
        (None, Some(name)) => ssh().find(|(_, r)| r.name == name)?.0,
        (None, None) => {
            let mut all = ssh();
            match (all.next(), all.next()) {
                (Some((only, _)), None) => only,
                _ => return None,
            }
        }
    };
    Some((index, identity.to_owned()))
}

impl Client {
    fn route(&self, user: &str) -> Option<(usize, String)> {
        route(&self.gate.config.resources, self.dedicated, user)
    }

    fn holds(&self, user: &str, key: &PublicKey) -> Option<(usize, String)> {
        let (resource, identity) = self.route(user)?;
        let keys = self.gate.protocols.ssh.identity_keys()?;
        let managed = self.gate.live.managed();
        let registered = keys.holds(&identity, key)
            || managed
                .ssh_keys
                .get(&identity)
                .is_some_and(|lines| super::keys::any_matches(lines, key));
        registered.then_some((resource, identity))
    }

    /// A key offered before its signature: with user CAs configured any key may carry a
    /// certificate (checked once the signature is verified), so every key passes.
    pub(super) fn offered(&self, user: &str, key: &PublicKey) -> Auth {
        let cas = self.gate.protocols.ssh.user_cas().is_some_and(|c| c.any());
        if cas || self.holds(user, key).is_some() {
            Auth::Accept
        } else {
            Auth::reject()
        }
    }

    /// A key whose signature is verified: registered to the login name's identity?
    pub(super) fn publickey(&mut self, user: &str, key: &PublicKey) -> Auth {
        match self.holds(user, key) {
            Some((resource, identity)) => {
                self.login = Some((resource, identity, user.to_owned()));
                Auth::Accept
            }
            None => {
                tracing::info!(protocol = "ssh", peer = %self.peer, user, "public key not registered to this login");
                Auth::reject()
            }
        }
    }

    /// A certificate whose key's signature is verified (see `certs.rs`).
    pub(super) fn certificate(&mut self, user: &str, certificate: &Certificate) -> Auth {
        let (Some((resource, identity)), Some(cas)) =
            (self.route(user), self.gate.protocols.ssh.user_cas())
        else {
            return Auth::reject();
        };
        match cas.admit(certificate, &identity) {
            Ok(groups) => {
                self.login = Some((resource, identity, user.to_owned()));
                self.cert_groups = groups;
                Auth::Accept
            }
            Err(reason) => {
                tracing::info!(protocol = "ssh", peer = %self.peer, user, %reason, "certificate refused");
                Auth::reject()
            }
        }
    }

    /// Keyboard-interactive: the same token prompt for every login name, then the token must
    /// name the login name's identity.
    pub(super) fn token(&mut self, user: &str, response: Option<Response<'_>>) -> Auth {
        let Some(mut response) = response else {
            return Auth::Partial {
                name: "Gate".into(),
                instructions: "Paste an identity token (JWT) for this login.".into(),
                prompts: vec![("Token: ".into(), false)].into(),
            };
        };
        let token = response
            .next()
            .map(|t| String::from_utf8_lossy(&t).trim().to_owned());
        let (Some(token), Some((resource, identity))) = (token, self.route(user)) else {
            return Auth::reject();
        };
        match crate::auth::token_user_expiring(&self.gate, &token) {
            Ok((named, exp)) if named.name.as_deref() == Some(identity.as_str()) => {
                self.login = Some((resource, identity, user.to_owned()));
                self.token_user = Some((named, exp));
                Auth::Accept
            }
            Ok((named, _)) => {
                tracing::info!(protocol = "ssh", peer = %self.peer, user, token_user = named.name.as_deref().unwrap_or(""), "token names another user");
                Auth::reject()
            }
            Err(reason) => {
                tracing::info!(protocol = "ssh", peer = %self.peer, user, %reason, "token refused");
                Auth::reject()
            }
        }
    }

    /// Authenticated: admit the session, log in upstream; the reason to disconnect with if
    /// either refuses.
    pub(super) async fn connected(&mut self, session: &mut Session) -> Result<(), String> {
        let Some((resource, identity, login_name)) = self.login.clone() else {
            return Err("not logged in".into());
        };
        let (asks, rx) = mpsc::channel(64);
        let (admitted, answer) = oneshot::channel();
        let (mut user, token_expires) = self
            .token_user
            .take()
            .unwrap_or_else(|| (crate::auth::static_user(&self.gate, &identity), None));
        for group in std::mem::take(&mut self.cert_groups) {
            if !user.groups.contains(&group) {
                user.groups.push(group);
            }
        }
        let login = Login {
            resource,
            user,
            peer: self.peer,
            login_name,
            token_expires,
        };
        tokio::spawn(policy::run(
            self.gate.clone(),
            login,
            admitted,
            rx,
            session.handle(),
        ));
        answer.await.map_err(|_| "session ended".to_owned())??;
        let config = self
            .gate
            .config
            .resources
            .get(resource)
            .ok_or("resource gone")?;
        let back = Arc::new(Back::new(session.handle()));
        let upstream = match upstream::connect(config, back.clone()).await {
            Ok(upstream) => upstream,
            Err(error) => {
                tracing::warn!(protocol = "ssh", resource = %config.name, identity, %error, "upstream refused");
                let _ = asks
                    .send(Ask::Refused {
                        reason: error.to_string(),
                    })
                    .await;
                return Err(match error {
                    SshError::UpstreamHostKey { .. } => format!(
                        "gate: the host key of {} does not match its pinned key; refusing to connect",
                        config.name
                    ),
                    _ => format!("gate: cannot reach {}", config.name),
                });
            }
        };
        let _ = asks.send(Ask::Established).await;
        self.conn = Some(Arc::new(Conn {
            gate: self.gate.clone(),
            resource,
            identity,
            session_id: gate_proto::wire::new_id_at(crate::audit::AuditEvent::now_ms()),
            asks,
            upstream,
            client: session.handle(),
            back,
        }));
        Ok(())
    }
}
