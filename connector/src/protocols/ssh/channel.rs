//! One client session channel before it starts, and the upstream channel Gate opened for it:
//! each request (`pty-req`, `env`, `exec`, `shell`, `subsystem`) is decided by policy and, if
//! allowed, sent upstream with `want_reply`; the caller (the connection's handler, which russh
//! calls in request order) relays the upstream's answer. A started channel goes to `relay.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use gate_policy::{SshInfo, SshPty};
use russh::{Channel, ChannelMsg, Pty, client, server};
use tokio::sync::{mpsc, oneshot};

use super::back::Back;
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
    /// What the upstream may open back toward the client (allowed remote forwards, the agent).
    pub back: Arc<Back>,
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

/// What the channel starts as.
pub(super) enum Started {
    /// The command as the client sent it (forwarded as these bytes).
    Exec(Vec<u8>),
    Shell,
    Subsystem(String),
}

impl Started {
    fn info(&self, setup: &Setup) -> SshInfo {
        match self {
            Started::Exec(command) => SshInfo {
                command: Some(String::from_utf8_lossy(command).into_owned()),
                ..setup.info("exec")
            },
            Started::Shell => setup.info("shell"),
            Started::Subsystem(name) => SshInfo {
                subsystem: Some(name.clone()),
                ..setup.info("subsystem")
            },
        }
    }
}

/// A started request's ruling and when it was asked.
pub(super) struct Running {
    ruling: Ruling,
    at: Instant,
}

/// How a start request went.
pub(super) enum Start {
    /// Allowed, and the upstream started it.
    Running(Running),
    /// Refused by policy: tell the client this (then exit status 1 and close).
    Refused(String),
    /// The upstream said no (or is gone): `failure`, the channel stays open.
    Failed,
}

/// A session channel that has not started yet.
pub(super) struct Pending {
    pub(super) down: Channel<server::Msg>,
    up: Channel<client::Msg>,
    setup: Setup,
}

impl Pending {
    pub(super) fn new(down: Channel<server::Msg>, up: Channel<client::Msg>) -> Self {
        Self {
            down,
            up,
            setup: Setup::default(),
        }
    }

    /// A `pty-req`: decided, then asked upstream; whether it was granted.
    pub(super) async fn pty(
        &mut self,
        conn: &Conn,
        pty: SshPty,
        pixels: (u32, u32),
        modes: &[(Pty, u32)],
    ) -> bool {
        let info = SshInfo {
            pty: Some(pty.clone()),
            ..self.setup.info("pty")
        };
        if !allowed(conn.decide(info).await) {
            return false;
        }
        let sent = self
            .up
            .request_pty(
                true, &pty.term, pty.cols, pty.rows, pixels.0, pixels.1, modes,
            )
            .await;
        let ok = sent.is_ok() && upstream_reply(&mut self.up).await;
        if ok {
            self.setup.pty = Some(pty);
        }
        ok
    }

    /// An `env` request: decided, then asked upstream; whether it was granted.
    pub(super) async fn env(&mut self, conn: &Conn, name: &str, value: &str) -> bool {
        let mut info = self.setup.info("env");
        info.env.insert(name.to_owned(), value.to_owned());
        if !allowed(conn.decide(info).await) {
            return false;
        }
        let sent = self.up.set_env(true, name, value).await;
        let ok = sent.is_ok() && upstream_reply(&mut self.up).await;
        if ok {
            self.setup.env.insert(name.to_owned(), value.to_owned());
        }
        ok
    }

    /// An allowed `auth-agent-req@openssh.com`, asked upstream; whether it was granted.
    pub(super) async fn agent(&mut self) -> bool {
        let sent = self.up.agent_forward(true).await;
        sent.is_ok() && upstream_reply(&mut self.up).await
    }

    /// A window change before the channel starts: the size later requests see. (The request
    /// itself waits in the channel and goes upstream when the relay starts, in order.)
    pub(super) fn window_change(&mut self, cols: u32, rows: u32) {
        if let Some(pty) = &mut self.setup.pty {
            pty.cols = cols;
            pty.rows = rows;
        }
    }

    /// An `exec`, `shell` or `subsystem` request: decided, then asked upstream. A refused one is
    /// audited as exiting 1 and closes the upstream channel.
    pub(super) async fn start(&mut self, conn: &Conn, started: &Started) -> Start {
        let at = Instant::now();
        let info = started.info(&self.setup);
        let request = info.request.clone();
        let Some(ruling) = conn.decide(info).await else {
            return Start::Failed;
        };
        if let Decision::Block(reason) = &ruling.decision {
            let _ = self.up.close().await;
            conn.complete(&ruling, Some(1), 0, at).await;
            return Start::Refused(format!("gate: {request} refused: {reason}\r\n"));
        }
        let asked = match started {
            Started::Exec(command) => self.up.exec(true, command.clone()).await,
            Started::Subsystem(name) => self.up.request_subsystem(true, name.clone()).await,
            Started::Shell => self.up.request_shell(true).await,
        };
        if asked.is_ok() && upstream_reply(&mut self.up).await {
            Start::Running(Running { ruling, at })
        } else {
            conn.complete(&ruling, None, 0, at).await;
            Start::Failed
        }
    }

    /// Close the upstream channel of a channel that never started.
    pub(super) async fn close(self) {
        let _ = self.up.close().await;
    }
}

fn allowed(ruling: Option<Ruling>) -> bool {
    matches!(
        ruling.map(|r| r.decision),
        Some(Decision::Forward | Decision::Rewrite(_))
    )
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

/// Relay a started channel until both sides are done, then audit its exit status, bytes and
/// duration.
pub(super) async fn run(pending: Pending, conn: Arc<Conn>, started: Started, running: Running) {
    let Pending { down, up, setup } = pending;
    let (exit_status, bytes) = super::relay::session(down, up, &conn, &setup, &started).await;
    conn.complete(&running.ruling, exit_status, bytes, running.at)
        .await;
}
