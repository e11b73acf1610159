//! The client side of one SSH connection (russh's server callbacks): public-key login against
//! the identities' `ssh_keys`, admission and the upstream login once it succeeds, and the
//! channels the client opens (sessions, `direct-tcpip`), plus the requests that are not a
//! channel's (`tcpip-forward`, agent forwarding), each decided by policy.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use gate_config::connector::{Protocol, ResourceConfig};
use gate_policy::{SshForward, SshInfo, SshPty, UserInfo};
use russh::server::{
    self, Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Response, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, ChannelOpenFailure, Disconnect, Pty};
use tokio::sync::{mpsc, oneshot};

use super::channel::{self, Conn, Pending, Start, Started};
use super::error::SshError;
use super::policy::{self, Ask, Login};
use super::upstream;
use crate::server::Gate;
use crate::session::Decision;

/// One client connection's state.
pub(super) struct Client {
    gate: Arc<Gate>,
    peer: SocketAddr,
    /// The resource of the dedicated port the client dialled.
    dedicated: Option<usize>,
    /// Who proved their key: resource index, identity, login name.
    login: Option<(usize, String, String)>,
    /// Groups a certificate gave the identity (`groups@gate.dev`).
    cert_groups: Vec<String>,
    /// The user a verified token named (keyboard-interactive logins).
    token_user: Option<UserInfo>,
    conn: Option<Arc<Conn>>,
    /// Session channels whose exec, shell or subsystem has not started yet.
    pending: HashMap<ChannelId, Pending>,
}

impl Client {
    pub(super) fn new(gate: Arc<Gate>, peer: SocketAddr, dedicated: Option<usize>) -> Self {
        Self {
            gate,
            peer,
            dedicated,
            login: None,
            cert_groups: Vec::new(),
            token_user: None,
            conn: None,
            pending: HashMap::new(),
        }
    }

    /// The identity and resource a login name selects: `alice@bastion-web1`, or `alice` on a
    /// resource's own port (or when only one SSH resource exists).
    fn route(&self, user: &str) -> Option<(usize, String)> {
        route(&self.gate.config.resources, self.dedicated, user)
    }

    fn holds(&self, user: &str, key: &russh::keys::PublicKey) -> Option<(usize, String)> {
        let (resource, identity) = self.route(user)?;
        let keys = self.gate.protocols.ssh.identity_keys()?;
        keys.holds(&identity, key).then_some((resource, identity))
    }

    async fn connected(&mut self, session: &mut Session) -> Result<(), String> {
        let Some((resource, identity, login_name)) = self.login.clone() else {
            return Err("not logged in".into());
        };
        let (asks, rx) = mpsc::channel(64);
        let (admitted, answer) = oneshot::channel();
        let mut user = self
            .token_user
            .take()
            .unwrap_or_else(|| crate::auth::static_user(&self.gate, &identity));
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
        let upstream = match upstream::connect(config).await {
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
        self.conn = Some(Arc::new(Conn {
            gate: self.gate.clone(),
            resource,
            identity,
            session_id: gate_proto::wire::new_id_at(crate::audit::AuditEvent::now_ms()),
            asks,
            upstream,
            client: session.handle(),
        }));
        Ok(())
    }

    /// Start pending channel `id` as `started` and answer the client: success and the relay
    /// task; success, the refusal on stderr, exit status 1 and close; or failure.
    async fn start(
        &mut self,
        id: ChannelId,
        started: Started,
        session: &mut Session,
    ) -> Result<(), SshError> {
        let (Some(conn), Some(mut pending)) = (self.conn.clone(), self.pending.remove(&id)) else {
            session.channel_failure(id)?;
            return Ok(());
        };
        match pending.start(&conn, &started).await {
            Start::Running(running) => {
                session.channel_success(id)?;
                tokio::spawn(channel::run(pending, conn, started, running));
            }
            Start::Refused(message) => {
                session.channel_success(id)?;
                session.extended_data(id, 1, message.into_bytes())?;
                session.exit_status_request(id, 1)?;
                session.eof(id)?;
                session.close(id)?;
            }
            Start::Failed => {
                session.channel_failure(id)?;
                self.pending.insert(id, pending);
            }
        }
        Ok(())
    }

    /// The policy's decision on a request outside a session channel.
    async fn allowed(&self, info: SshInfo) -> Result<(), String> {
        let Some(conn) = &self.conn else {
            return Err("not connected".into());
        };
        match conn.decide(info).await.map(|r| r.decision) {
            Some(Decision::Forward | Decision::Rewrite(_)) => Ok(()),
            Some(Decision::Block(reason)) => Err(reason),
            None => Err("session ended".into()),
        }
    }
}

/// See [`Client::route`].
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

impl server::Handler for Client {
    type Error = SshError;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, SshError> {
        // With user CAs configured, any key may carry a certificate: its check comes once the
        // signature is verified (auth_openssh_certificate), so every key is let through here.
        let cas = self.gate.protocols.ssh.user_cas().is_some_and(|c| c.any());
        Ok(if cas || self.holds(user, offer.public_key).is_some() {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &russh::keys::Certificate,
    ) -> Result<Auth, SshError> {
        let Some((resource, identity)) = self.route(user) else {
            return Ok(Auth::reject());
        };
        let Some(cas) = self.gate.protocols.ssh.user_cas() else {
            return Ok(Auth::reject());
        };
        match cas.admit(certificate, &identity) {
            Ok(groups) => {
                self.login = Some((resource, identity, user.to_owned()));
                self.cert_groups = groups;
                Ok(Auth::Accept)
            }
            Err(reason) => {
                tracing::info!(protocol = "ssh", peer = %self.peer, user, %reason, "certificate refused");
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, SshError> {
        match self.holds(user, key.public_key) {
            Some((resource, identity)) => {
                self.login = Some((resource, identity, user.to_owned()));
                Ok(Auth::Accept)
            }
            None => {
                tracing::info!(protocol = "ssh", peer = %self.peer, user, "public key not registered to this login");
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<Response<'a>>,
    ) -> Result<Auth, SshError> {
        let Some(mut response) = response else {
            // The same prompt for every login name: nothing tells whether it exists.
            return Ok(Auth::Partial {
                name: "Gate".into(),
                instructions: "Paste an identity token (JWT) for this login.".into(),
                prompts: vec![("Token: ".into(), false)].into(),
            });
        };
        let token = response
            .next()
            .map(|t| String::from_utf8_lossy(&t).trim().to_owned());
        let (Some(token), Some((resource, identity))) = (token, self.route(user)) else {
            return Ok(Auth::reject());
        };
        match crate::auth::token_user(&self.gate, &token) {
            Ok(named) if named.name.as_deref() == Some(identity.as_str()) => {
                self.login = Some((resource, identity, user.to_owned()));
                self.token_user = Some(named);
                Ok(Auth::Accept)
            }
            Ok(named) => {
                tracing::info!(protocol = "ssh", peer = %self.peer, user, token_user = named.name.as_deref().unwrap_or(""), "token names another user");
                Ok(Auth::reject())
            }
            Err(reason) => {
                tracing::info!(protocol = "ssh", peer = %self.peer, user, %reason, "token refused");
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), SshError> {
        if let Err(reason) = self.connected(session).await {
            session.disconnect(Disconnect::ByApplication, &reason, "")?;
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), SshError> {
        let Some(conn) = self.conn.clone() else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        match conn.upstream.channel_open_session().await {
            Ok(up) => {
                reply.accept().await;
                self.pending.insert(channel.id(), Pending::new(channel, up));
            }
            Err(error) => {
                tracing::warn!(protocol = "ssh", %error, "upstream refused a session channel");
                reply.reject(ChannelOpenFailure::ConnectFailed).await;
            }
        }
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), SshError> {
        let info = forward_info("forward_local", host_to_connect, port_to_connect);
        if let Err(reason) = self.allowed(info).await {
            reply.reject(prohibited(&reason)).await;
            return Ok(());
        }
        let Some(conn) = self.conn.clone() else {
            return Ok(());
        };
        let opened = conn
            .upstream
            .channel_open_direct_tcpip(
                host_to_connect,
                port_to_connect,
                originator_address,
                originator_port,
            )
            .await;
        match opened {
            Ok(up) => {
                reply.accept().await;
                tokio::spawn(super::relay::forward(channel, up));
            }
            Err(error) => {
                tracing::info!(protocol = "ssh", %error, "upstream refused a direct-tcpip channel");
                reply.reject(ChannelOpenFailure::ConnectFailed).await;
            }
        }
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), SshError> {
        let pty = SshPty {
            term: term.to_owned(),
            cols: col_width,
            rows: row_height,
        };
        let ok = match (self.conn.clone(), self.pending.get_mut(&channel)) {
            (Some(conn), Some(pending)) => {
                pending
                    .pty(&conn, pty, (pix_width, pix_height), modes)
                    .await
            }
            _ => false,
        };
        answer(session, channel, ok)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        variable_name: &str,
        variable_value: &str,
        session: &mut Session,
    ) -> Result<(), SshError> {
        let ok = match (self.conn.clone(), self.pending.get_mut(&channel)) {
            (Some(conn), Some(pending)) => pending.env(&conn, variable_name, variable_value).await,
            _ => false,
        };
        answer(session, channel, ok)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), SshError> {
        self.start(channel, Started::Exec(data.to_vec()), session)
            .await
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), SshError> {
        self.start(channel, Started::Shell, session).await
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), SshError> {
        self.start(channel, Started::Subsystem(name.to_owned()), session)
            .await
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), SshError> {
        // Decided and audited, but not relayed yet (docs/ssh.md).
        let _ = self
            .allowed(SshInfo {
                request: "x11".into(),
                ..Default::default()
            })
            .await;
        answer(session, channel, false)
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), SshError> {
        if let Some(pending) = self.pending.get_mut(&channel) {
            pending.window_change(col_width, row_height);
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), SshError> {
        if let Some(pending) = self.pending.remove(&channel) {
            pending.close().await;
        }
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, SshError> {
        // Remote forwarding is decided and audited, but not relayed yet (docs/ssh.md).
        let allowed = self
            .allowed(forward_info("forward_remote", address, *port))
            .await;
        if allowed.is_ok() {
            tracing::info!(
                protocol = "ssh",
                "remote port forwarding allowed by policy but not supported yet; refused"
            );
        }
        Ok(false)
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, SshError> {
        // Agent forwarding is decided and audited, but not relayed yet (docs/ssh.md).
        let allowed = self
            .allowed(SshInfo {
                request: "agent".into(),
                ..Default::default()
            })
            .await;
        if allowed.is_ok() {
            tracing::info!(
                protocol = "ssh",
                "agent forwarding allowed by policy but not supported yet; refused"
            );
        }
        Ok(false)
    }
}

/// Answer the request just made on `channel` (russh calls the handler in request order).
fn answer(session: &mut Session, channel: ChannelId, ok: bool) -> Result<(), SshError> {
    if ok {
        session.channel_success(channel)?;
    } else {
        session.channel_failure(channel)?;
    }
    Ok(())
}

fn forward_info(request: &str, host: &str, port: u32) -> SshInfo {
    SshInfo {
        request: request.to_owned(),
        forward: Some(SshForward {
            host: host.to_owned(),
            port,
        }),
        ..Default::default()
    }
}

/// A refused channel open, with the reason OpenSSH prints (`open failed: … refused: reason`).
fn prohibited(reason: &str) -> ChannelOpenFailure {
    ChannelOpenFailure::Other {
        code: 1,
        reason: format!("refused by gate: {reason}"),
    }
}
