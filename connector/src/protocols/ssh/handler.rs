//! The client side of one SSH connection (russh's server callbacks, called in the order the
//! client's messages arrive): logins (checked in `login.rs`), the channels the client opens
//! (sessions, `direct-tcpip`), every channel request answered in order, and the requests that
//! are not a channel's (`tcpip-forward`, agent forwarding), each decided by policy; what the
//! upstream opens back for allowed ones is in `back.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use gate_policy::{SshForward, SshInfo, SshPty, UserInfo};
use russh::server::{
    self, Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Response, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, ChannelOpenFailure, Disconnect, Pty};

use super::channel::{self, Conn, Pending, Start, Started};
use super::error::SshError;
use crate::server::Gate;
use crate::session::Decision;

/// One client connection's state.
pub(super) struct Client {
    pub(super) gate: Arc<Gate>,
    pub(super) peer: SocketAddr,
    /// The resource of the dedicated port the client dialled.
    pub(super) dedicated: Option<usize>,
    /// Who proved their key: resource index, identity, login name.
    pub(super) login: Option<(usize, String, String)>,
    /// Groups a certificate gave the identity (`groups@gate.dev`).
    pub(super) cert_groups: Vec<String>,
    /// The user a verified token named (keyboard-interactive logins), and the token's `exp`
    /// (seconds since the epoch).
    pub(super) token_user: Option<(UserInfo, Option<u64>)>,
    pub(super) conn: Option<Arc<Conn>>,
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

impl server::Handler for Client {
    type Error = SshError;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, SshError> {
        Ok(self.offered(user, offer.public_key))
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        certificate: &russh::keys::Certificate,
    ) -> Result<Auth, SshError> {
        Ok(self.certificate(user, certificate))
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, SshError> {
        Ok(self.publickey(user, key.public_key))
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<Response<'a>>,
    ) -> Result<Auth, SshError> {
        Ok(self.token(user, response))
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
        if let Err(reason) = self
            .allowed(forward_info("forward_remote", address, *port))
            .await
        {
            tracing::info!(protocol = "ssh", address, port = *port, %reason, "remote forward refused");
            return Ok(false);
        }
        let Some(conn) = self.conn.clone() else {
            return Ok(false);
        };
        conn.back.asking();
        match conn.upstream.tcpip_forward(address, *port).await {
            Ok(allocated) => {
                // Port 0 asks the upstream to pick one; the client learns it from the reply.
                if *port == 0 {
                    *port = allocated;
                }
                conn.back.settle(Some((address, *port)));
                Ok(true)
            }
            Err(error) => {
                conn.back.settle(None);
                tracing::info!(protocol = "ssh", address, port = *port, %error, "upstream refused a remote forward");
                Ok(false)
            }
        }
    }

    async fn cancel_tcpip_forward(
        &mut self,
        address: &str,
        port: u32,
        _session: &mut Session,
    ) -> Result<bool, SshError> {
        // Not a policy decision (it only takes access away, decision 057): a forward this
        // connection holds is cancelled upstream.
        let Some(conn) = self.conn.clone() else {
            return Ok(false);
        };
        if !conn.back.remove_forward(address, port) {
            return Ok(false);
        }
        Ok(conn
            .upstream
            .cancel_tcpip_forward(address, port)
            .await
            .is_ok())
    }

    async fn agent_request(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, SshError> {
        let info = SshInfo {
            request: "agent".into(),
            ..Default::default()
        };
        if let Err(reason) = self.allowed(info).await {
            tracing::info!(protocol = "ssh", %reason, "agent forwarding refused");
            return Ok(false);
        }
        let (Some(conn), Some(pending)) = (self.conn.clone(), self.pending.get_mut(&channel))
        else {
            return Ok(false);
        };
        let granted = pending.agent().await;
        if granted {
            conn.back.allow_agent();
        }
        Ok(granted)
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
