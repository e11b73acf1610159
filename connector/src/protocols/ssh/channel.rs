//! One client channel and the upstream channel Gate opened for it. Before the channel starts,
//! each request (`pty-req`, `env`, `exec`, `shell`, `subsystem`) is decided by policy and, if
//! allowed, sent upstream with the upstream's answer relayed back. Once started, bytes, EOF,
//! `window-change`, signals, `exit-status` and `exit-signal` pass through unchanged, recorded
//! when the resource says so.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use gate_policy::{SshInfo, SshPty};
use russh::{Channel, ChannelId, ChannelMsg, client, server};
use tokio::sync::{mpsc, oneshot};

use super::policy::{Ask, Ruling};
use super::upstream::Upstream;
use crate::server::Gate;
use crate::session::Decision;

/// What every channel of one connection shares.
pub(super) struct Conn {
    pub gate: Arc<Gate>,
    pub resource: usize,
    pub identity: String,
    pub session_id: String,
    pub asks: mpsc::Sender<Ask>,
    pub upstream: client::Handle<Upstream>,
    pub client: server::Handle,
}

impl Conn {
    /// The policy's ruling on `info`; a session that is gone refuses.
    pub(super) async fn decide(&self, info: SshInfo) -> Option<Ruling> {
        let (reply, ruling) = oneshot::channel();
        self.asks.send(Ask::Decide { info, reply }).await.ok()?;
        ruling.await.ok()
    }

    /// Tell the session how the request audited as `ruling` ended.
    pub(super) async fn complete(
        &self,
        ruling: &Ruling,
        exit_status: Option<u32>,
        bytes: u64,
        started: Instant,
    ) {
        let _ = self
            .asks
            .send(Ask::Complete {
                audit: ruling.audit,
                exit_status,
                bytes,
                duration: started.elapsed(),
            })
            .await;
    }

    /// The resource's `record` and `record_input`.
    pub(super) fn record(&self) -> (bool, bool) {
        self.gate
            .config
            .resources
            .get(self.resource)
            .map_or((false, false), |r| (r.record, r.record_input))
    }
}

/// What a channel has been given so far.
#[derive(Default)]
pub(super) struct Setup {
    pub(super) pty: Option<SshPty>,
    pub(super) env: BTreeMap<String, String>,
}

impl Setup {
    fn info(&self, request: &str) -> SshInfo {
        SshInfo {
            request: request.to_owned(),
            pty: self.pty.clone(),
            env: self.env.clone(),
            ..Default::default()
        }
    }
}

/// Serve one session channel until either side closes it.
pub(super) async fn session(down: Channel<server::Msg>, up: Channel<client::Msg>, conn: Arc<Conn>) {
    let id = down.id();
    let mut down = down;
    let mut up = up;
    let mut setup = Setup::default();
    while let Some(msg) = down.wait().await {
        match msg {
            ChannelMsg::RequestPty {
                term,
                col_width,
                row_height,
                pix_width,
                pix_height,
                terminal_modes,
                ..
            } => {
                let pty = SshPty {
                    term: term.clone(),
                    cols: col_width,
                    rows: row_height,
                };
                let mut info = setup.info("pty");
                info.pty = Some(pty.clone());
                let ok = match conn.decide(info).await.map(|r| r.decision) {
                    Some(Decision::Forward | Decision::Rewrite(_)) => {
                        let sent = up
                            .request_pty(
                                true,
                                &term,
                                col_width,
                                row_height,
                                pix_width,
                                pix_height,
                                &terminal_modes,
                            )
                            .await;
                        sent.is_ok() && upstream_reply(&mut up).await
                    }
                    _ => false,
                };
                if ok {
                    setup.pty = Some(pty);
                }
                reply(&conn.client, id, ok).await;
            }
            ChannelMsg::SetEnv {
                variable_name,
                variable_value,
                ..
            } => {
                let mut info = setup.info("env");
                info.env
                    .insert(variable_name.clone(), variable_value.clone());
                let ok = match conn.decide(info).await.map(|r| r.decision) {
                    Some(Decision::Forward | Decision::Rewrite(_)) => {
                        let sent = up
                            .set_env(true, variable_name.clone(), variable_value.clone())
                            .await;
                        sent.is_ok() && upstream_reply(&mut up).await
                    }
                    _ => false,
                };
                if ok {
                    setup.env.insert(variable_name, variable_value);
                }
                reply(&conn.client, id, ok).await;
            }
            ChannelMsg::Exec { command, .. } => {
                let mut info = setup.info("exec");
                info.command = Some(String::from_utf8_lossy(&command).into_owned());
                let started = Started::Exec(command);
                if let Some(ruling) = start(&conn, &mut down, &mut up, info, &started).await {
                    return finish(down, up, &conn, &setup, &started, ruling).await;
                }
            }
            ChannelMsg::RequestShell { .. } => {
                let info = setup.info("shell");
                if let Some(ruling) = start(&conn, &mut down, &mut up, info, &Started::Shell).await
                {
                    return finish(down, up, &conn, &setup, &Started::Shell, ruling).await;
                }
            }
            ChannelMsg::RequestSubsystem { name, .. } => {
                let mut info = setup.info("subsystem");
                info.subsystem = Some(name.clone());
                let started = Started::Subsystem(name);
                if let Some(ruling) = start(&conn, &mut down, &mut up, info, &started).await {
                    return finish(down, up, &conn, &setup, &started, ruling).await;
                }
            }
            // Answered by the connection's handler (refused unless allowed).
            ChannelMsg::AgentForward { .. } => {}
            ChannelMsg::RequestX11 { .. } => {
                let _ = conn.decide(setup.info("x11")).await;
                reply(&conn.client, id, false).await;
            }
            ChannelMsg::WindowChange {
                col_width,
                row_height,
                pix_width,
                pix_height,
            } => {
                if let Some(pty) = &mut setup.pty {
                    pty.cols = col_width;
                    pty.rows = row_height;
                }
                let _ = up
                    .window_change(col_width, row_height, pix_width, pix_height)
                    .await;
            }
            ChannelMsg::Signal { signal } => {
                let _ = up.signal(signal).await;
            }
            ChannelMsg::Data { data } => {
                let _ = up.data_bytes(data).await;
            }
            ChannelMsg::Eof => {
                let _ = up.eof().await;
            }
            ChannelMsg::Close => break,
            _ => {}
        }
    }
    let _ = up.close().await;
}

/// What the channel started as.
pub(super) enum Started {
    /// The command as the client sent it (forwarded as these bytes).
    Exec(Vec<u8>),
    Shell,
    Subsystem(String),
}

/// A started request's ruling and when it was asked.
struct Running {
    ruling: Ruling,
    at: Instant,
}

/// Decide and send upstream an `exec`, `shell` or `subsystem` request; `Some` when the channel
/// started. A refused one still gets `success`, then the reason on stderr, exit status 1 and
/// close (so `ssh host cmd` exits 1 with the reason, and OpenSSH prints it before it exits,
/// which it does not always do before acting on a `failure`); the connection stays usable.
async fn start(
    conn: &Conn,
    down: &mut Channel<server::Msg>,
    up: &mut Channel<client::Msg>,
    info: SshInfo,
    started: &Started,
) -> Option<Running> {
    let id = down.id();
    let at = Instant::now();
    let request = info.request.clone();
    let Some(ruling) = conn.decide(info).await else {
        reply(&conn.client, id, false).await;
        return None;
    };
    if let Decision::Block(reason) = &ruling.decision {
        let message = format!("gate: {request} refused: {reason}\r\n");
        reply(&conn.client, id, true).await;
        let _ = down.extended_data_bytes(1, message.into_bytes()).await;
        let _ = down.exit_status(1).await;
        let _ = down.eof().await;
        let _ = down.close().await;
        let _ = up.close().await;
        conn.complete(&ruling, Some(1), 0, at).await;
        return None;
    }
    let asked = match started {
        Started::Exec(command) => up.exec(true, command.clone()).await,
        Started::Subsystem(name) => up.request_subsystem(true, name.clone()).await,
        Started::Shell => up.request_shell(true).await,
    };
    let ok = asked.is_ok() && upstream_reply(up).await;
    reply(&conn.client, id, ok).await;
    if !ok {
        conn.complete(&ruling, None, 0, at).await;
        return None;
    }
    Some(Running { ruling, at })
}

/// Wait for the upstream's answer to the request just sent: `success` or `failure`.
async fn upstream_reply(up: &mut Channel<client::Msg>) -> bool {
    while let Some(msg) = up.wait().await {
        match msg {
            ChannelMsg::Success => return true,
            ChannelMsg::Failure | ChannelMsg::Close => return false,
            _ => {}
        }
    }
    false
}

/// Answer the client's pending request on channel `id`.
pub(super) async fn reply(client: &server::Handle, id: ChannelId, ok: bool) {
    let _ = if ok {
        client.channel_success(id).await
    } else {
        client.channel_failure(id).await
    };
}

/// Relay a started channel until both sides are done, then audit its exit status, bytes and
/// duration.
async fn finish(
    down: Channel<server::Msg>,
    up: Channel<client::Msg>,
    conn: &Conn,
    setup: &Setup,
    started: &Started,
    running: Running,
) {
    let (exit_status, bytes) = super::relay::session(down, up, conn, setup, started).await;
    conn.complete(&running.ruling, exit_status, bytes, running.at)
        .await;
}
