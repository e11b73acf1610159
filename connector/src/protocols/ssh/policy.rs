//! One SSH connection's session: admitted once after login, then asked for a `pre_request`
//! decision on every channel request, told how each one ended (exit status, bytes, duration),
//! and ending the connection when its access grant or its login token does. It runs as its own task so channel
//! tasks can ask from anywhere.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gate_config::connector::Protocol;
use gate_policy::{ConnectionInfo, PolicyInput, SshInfo, UserInfo};
use russh::server;
use tokio::sync::{mpsc, oneshot};

use crate::server::Gate;
use crate::session::{self, Admission, AuditId, AuditText, Decision, Outcome};

/// What a channel asks of its connection's session.
#[derive(Debug)]
pub(super) enum Ask {
    /// Decide one channel request.
    Decide {
        info: SshInfo,
        reply: oneshot::Sender<Ruling>,
    },
    /// The request audited as `audit` ended.
    Complete {
        audit: AuditId,
        exit_status: Option<u32>,
        bytes: u64,
        duration: Duration,
    },
    /// Audit a refusal that is not a policy decision (the upstream's host key).
    Refused { reason: String },
    /// The upstream is logged in: the session counts as established.
    Established,
}

/// A request's decision and the audit event to complete.
#[derive(Debug)]
pub(super) struct Ruling {
    pub decision: Decision,
    pub audit: AuditId,
}

/// Who logged in, to admit.
#[derive(Debug)]
pub(super) struct Login {
    pub resource: usize,
    pub user: UserInfo,
    pub peer: SocketAddr,
    pub login_name: String,
    /// When the token of a keyboard-interactive login expires (seconds since the epoch).
    pub token_expires: Option<u64>,
}

/// The text a request is audited with: `exec: uptime`, `subsystem: sftp`, `forward_local: db:5432`.
pub fn audit_text(info: &SshInfo) -> String {
    let detail = match info.request.as_str() {
        "exec" => info.command.clone().unwrap_or_default(),
        "subsystem" => info.subsystem.clone().unwrap_or_default(),
        "forward_local" | "forward_remote" => info
            .forward
            .as_ref()
            .map(|f| format!("{}:{}", f.host, f.port))
            .unwrap_or_default(),
        "pty" => info
            .pty
            .as_ref()
            .map(|p| p.term.clone())
            .unwrap_or_default(),
        "env" => info.env.keys().last().cloned().unwrap_or_default(),
        _ => String::new(),
    };
    if detail.is_empty() {
        info.request.clone()
    } else {
        format!("{}: {detail}", info.request)
    }
}

/// Whether a request of `kind` is completed later (with its exit status, bytes, duration):
/// a channel's requests are; forwards, agent and X11 requests are not.
fn kind_completes(kind: &str) -> bool {
    !matches!(kind, "forward_local" | "forward_remote" | "agent" | "x11")
}

/// End a running session for `reason` (its grant or token ended): audit, count, disconnect.
async fn cut_off(
    gate: &Gate,
    session: &session::Session<'_>,
    client: &server::Handle,
    reason: String,
    outcome: Outcome,
) {
    session.audit_grant_ended(&reason);
    session::outcome::count(gate, "ssh", &session.resource.name, outcome);
    let _ = client
        .disconnect(russh::Disconnect::ByApplication, reason, String::new())
        .await;
}

/// Resolves when a token expiring at `exp` (seconds since the epoch) has expired; never
/// without one.
async fn token_expiry(exp: Option<u64>) {
    let Some(exp) = exp else {
        return std::future::pending().await;
    };
    let now_ms = u64::try_from(gate_proto::wire::now_ms()).unwrap_or(0);
    let left = exp.saturating_mul(1000).saturating_sub(now_ms);
    tokio::time::sleep(Duration::from_millis(left)).await;
}

/// Admit `login` (the answer goes to `admitted`), then serve `asks` until every channel and the
/// connection are gone, or the grant ends (then the client is disconnected with the reason).
pub(super) async fn run(
    gate: Arc<Gate>,
    login: Login,
    admitted: oneshot::Sender<Result<(), String>>,
    mut asks: mpsc::Receiver<Ask>,
    client: server::Handle,
) {
    let Some(resource) = gate.config.resources.get(login.resource) else {
        let _ = admitted.send(Err("resource gone".into()));
        return;
    };
    let token_expires = login.token_expires;
    let admission = Admission {
        protocol: Protocol::Ssh,
        resource,
        user: login.user,
        peer: login.peer,
        connection: ConnectionInfo {
            db_user: Some(login.login_name),
            ..Default::default()
        },
        traceparent: None,
        single_request: false,
    };
    let session = match session::admit(&gate, admission) {
        Ok(session) => session,
        Err(refusal) => {
            session::outcome::count(&gate, "ssh", &resource.name, refusal.outcome());
            let _ = admitted.send(Err(refusal.to_string()));
            return;
        }
    };
    if admitted.send(Ok(())).is_err() {
        return;
    }
    loop {
        tokio::select! {
            ask = asks.recv() => match ask {
                None => break,
                Some(Ask::Decide { info, reply }) => {
                    let text = AuditText::Text(audit_text(&info).into());
                    let kind = info.request.clone();
                    let decided = session.decide(
                        PolicyInput { ssh: Some(info), ..Default::default() },
                        &kind,
                        text,
                        "refused by policy",
                        None,
                    );
                    if !kind_completes(&kind) {
                        // Nothing reports back on a forward or agent decision: audit it now.
                        session.complete(decided.audit, Duration::ZERO);
                        session.flush();
                    }
                    let _ = reply.send(Ruling { decision: decided.decision, audit: decided.audit });
                }
                Some(Ask::Complete { audit, exit_status, bytes, duration }) => {
                    let status = exit_status.map_or(0, |s| u16::try_from(s).unwrap_or(u16::MAX));
                    session.set_response(audit, status, bytes);
                    session.complete(audit, duration);
                    session.flush();
                }
                Some(Ask::Established) => session.established(),
                Some(Ask::Refused { reason }) => {
                    let mut verdict = gate_policy::Verdict::refusal();
                    verdict.reason = Some(reason);
                    session.flush();
                    gate.audit.emit(crate::audit::AuditEvent::new(
                        "session",
                        &session.parties,
                        None,
                        Arc::new(verdict),
                    ));
                    session::outcome::count(&gate, "ssh", &resource.name, Outcome::UpstreamError);
                }
            },
            reason = session.grant_ended() => {
                cut_off(&gate, &session, &client, reason, Outcome::GrantEnded).await;
                break;
            }
            () = token_expiry(token_expires) => {
                let reason = format!(
                    "the identity token of {:?} expired; log in again with a new one",
                    session.identity()
                );
                cut_off(&gate, &session, &client, reason, Outcome::TokenExpired).await;
                break;
            }
        }
    }
    session.end();
}
