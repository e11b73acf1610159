//! The protocol-neutral session layer every protocol calls: *admit* a client
//! (groups, labels, access grant, `session` policy, audit), decide each
//! *request* (`pre_request`, verdict reuse, audit), decide each *result*
//! (`post_request`, plan reuse, masking), and end the session when its grant
//! does. A protocol folder keeps only wire code: codec, handshake, relay and
//! how its errors look to its clients. See `docs/design/session-layer.md`.

mod admitted;
mod audit;
pub mod keyed;
pub mod masking;
pub mod outcome;
pub mod results;
mod spans;
pub mod verdicts;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use gate_config::connector::{Protocol, ResourceConfig};
use gate_policy::{
    Action, ConnectionInfo, GrantInfo, PolicyInput, QueryInfo, ResourceInfo, ResponseInfo,
    SessionInput, Stage, TimeInfo, UserInfo, Verdict,
};
use tracing::Span;

pub use admitted::{Admitted, readmit};
pub use audit::{AuditId, AuditText};
pub use keyed::RequestKey;
pub use outcome::Outcome;

use crate::audit::{AuditEvent, Parties};
use crate::server::Gate;
use audit::Deferred;
use keyed::KeyedVerdicts;
use verdicts::VerdictCache;

/// What a protocol knows about a client when it asks to admit it.
#[derive(Debug)]
pub struct Admission<'g> {
    pub protocol: Protocol,
    /// The resource the client was routed to.
    pub resource: &'g ResourceConfig,
    /// Who authentication says the client is (its groups from the token or
    /// the static identity; control-plane groups are added here).
    pub user: UserInfo,
    pub peer: SocketAddr,
    /// What the protocol knows of the connection (TLS, application name,
    /// the database and user name the client asked for).
    pub connection: ConnectionInfo,
    /// A W3C `traceparent` the client sent (HTTP, MCP): the session's span
    /// continues that trace. PostgreSQL has none.
    pub traceparent: Option<String>,
    /// The session is one request (HTTP): an allowed `session` decision
    /// without dry-run findings is not audited on its own, since the
    /// request's event records it. Refusals are always audited.
    pub single_request: bool,
}

/// Why a client was not admitted; the protocol renders it in its own error format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The resource needs an access grant the identity does not hold.
    #[error("{0}")]
    GrantRequired(String),
    /// The `session` policy refused the connection.
    #[error("{0}")]
    Blocked(String),
}

impl Refusal {
    /// The `outcome` label of `gate_sessions_total`.
    pub fn outcome(&self) -> Outcome {
        Outcome::Blocked
    }
}

/// What to do with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send it on as the client sent it.
    Forward,
    /// Send this instead (the policy's `query`).
    Rewrite(String),
    /// Refuse it, telling the client this reason.
    Block(String),
}

/// One request's decision, its verdict, and its audit event (completed by
/// the protocol with rows and duration when the response is done).
#[derive(Debug)]
pub struct Decided {
    pub decision: Decision,
    pub verdict: Arc<Verdict>,
    pub audit: AuditId,
}

/// An admitted client: its policy input, audit parties, verdict cache and
/// deferred audit events. One per client connection, of any protocol.
#[derive(Debug)]
pub struct Session<'g> {
    pub gate: &'g Gate,
    pub protocol: Protocol,
    pub resource: &'g ResourceConfig,
    /// The session parts of every policy input (user, resource, connection, grant).
    pub input: SessionInput,
    /// Who this session's audit events are about.
    pub parties: Parties,
    /// The session holds an access grant and ends when it does.
    grant_bound: bool,
    /// The access grant this session was admitted under (its scopes narrow
    /// what MCP lists show and calls reach).
    pub grant: Option<GrantInfo>,
    /// `gate.session` (`Span::none()` when telemetry is off); closes when the session drops.
    span: Span,
    verdicts: Mutex<VerdictCache>,
    deferred: Mutex<Deferred>,
    /// Verdicts keyed by request values (HTTP, MCP), shared by the sessions
    /// readmitted from this one's admission.
    keyed: Arc<Mutex<KeyedVerdicts>>,
    /// The client's address.
    peer: SocketAddr,
    /// The `session` verdict was an allow without dry-run findings.
    admitted_plainly: bool,
    /// The policy generation the admission was decided under.
    admitted_generation: u64,
}

/// Admit a client: add control-plane groups to its own, merge control-plane
/// resource labels under the configured ones, check the access grant, run the
/// `session` stage and audit its decision.
pub fn admit<'g>(gate: &'g Gate, admission: Admission<'g>) -> Result<Session<'g>, Refusal> {
    let Admission {
        protocol,
        resource,
        mut user,
        peer,
        mut connection,
        traceparent,
        single_request,
    } = admission;
    let identity = user.name.clone().unwrap_or_default();
    let identity_kind = match user.kind.as_deref() {
        Some("user") => "user",
        Some("workload") => "workload",
        Some("api_key") => "api_key",
        _ => "",
    };
    let generation = gate.live.generation();
    let span = spans::session(
        gate,
        protocol,
        &resource.name,
        &identity,
        peer,
        traceparent.as_deref(),
    );
    let managed = gate.live.managed();
    if let Some(groups) = managed.groups.get(&identity) {
        for group in groups {
            if !user.groups.contains(group) {
                user.groups.push(group.clone());
            }
        }
    }
    let mut labels = resource.labels.clone();
    if let Some(managed_resource) = managed.resources.get(&resource.name) {
        for (k, v) in &managed_resource.labels {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    drop(managed);
    let grant = crate::grants::check(
        gate,
        &resource.name,
        resource.require_access_grant,
        &identity,
    )
    .map_err(|reason| {
        spans::decided(&span, Action::Block);
        Refusal::GrantRequired(reason)
    })?;
    let grant_info = grant.as_ref().map(crate::grants::input);
    connection.client_ip = Some(peer.ip().to_string());
    connection.client_port = Some(peer.port());
    let input = SessionInput::new(&PolicyInput {
        resource: Some(ResourceInfo {
            name: resource.name.clone(),
            protocol: protocol.as_str().into(),
            host: Some(resource.host.clone()),
            port: u16::try_from(resource.port).ok(),
            database: resource.database.clone(),
            labels,
        }),
        user: Some(user),
        grant: grant_info.clone(),
        connection: Some(connection),
        ..Default::default()
    });
    let parties = Parties {
        protocol: protocol.as_str(),
        identity: identity.as_str().into(),
        identity_kind,
        resource: resource.name.as_str().into(),
        client: peer.to_string().into(),
    };
    let mut session = Session {
        gate,
        protocol,
        resource,
        input,
        parties,
        grant_bound: grant.is_some(),
        grant: grant_info,
        span,
        verdicts: Mutex::default(),
        deferred: Mutex::default(),
        keyed: Arc::default(),
        peer,
        admitted_plainly: false,
        admitted_generation: generation,
    };
    let verdict = Arc::new(session.evaluate(
        Stage::Session,
        PolicyInput {
            time: Some(TimeInfo::now()),
            ..Default::default()
        },
    ));
    spans::decided(&session.span, verdict.action);
    if !(single_request && !verdict.is_blocked() && verdict.dry_run.is_empty()) {
        gate.audit.emit(AuditEvent::new(
            "session",
            &session.parties,
            None,
            verdict.clone(),
        ));
    }
    session.admitted_plainly = verdict.action == Action::Allow && verdict.dry_run.is_empty();
    if verdict.is_blocked() {
        return Err(Refusal::Blocked(
            verdict
                .reason
                .clone()
                .unwrap_or_else(|| "access denied by policy".into()),
        ));
    }
    Ok(session)
}

impl<'g> Session<'g> {
    /// The identity this session belongs to.
    pub fn identity(&self) -> &str {
        &self.parties.identity
    }

    /// Count the session in `gate_sessions_total{outcome="ok"}` once the
    /// protocol has it running (upstream reached, client told).
    pub fn established(&self) {
        outcome::count(
            self.gate,
            self.protocol.as_str(),
            &self.resource.name,
            Outcome::Ok,
        );
    }

    /// Evaluate `stage` for one request of this session (its session parts
    /// plus `request`'s), timed in `gate_policy_evaluation_duration_seconds`.
    pub fn evaluate(&self, stage: Stage, request: PolicyInput) -> Verdict {
        self.gate.evaluate(
            self.protocol.as_str(),
            stage,
            &self.resource.name,
            &self.input.request(stage, &request),
        )
    }

    /// Decide one request with `pre_request` (the verdict reused for requests
    /// of the same shape when the policies allow it, see [`verdicts`]) and
    /// audit the decision (an event the protocol completes with
    /// [`Session::complete`], which also closes the request's span).
    /// `refused` is the reason given when a policy blocks without one;
    /// `traceparent` the W3C trace context the client sent with this request
    /// (HTTP, MCP), whose trace the request's span then continues.
    pub fn request(
        &self,
        query: &QueryInfo,
        text: AuditText,
        refused: &str,
        traceparent: Option<&str>,
    ) -> Decided {
        let verdict = self.pre_request(query);
        self.decided(verdict, &query.kind, text, refused, traceparent)
    }

    /// Decide one request that is not a SQL or MongoDB statement (HTTP, MCP,
    /// SSH: `request` carries its `http`, `mcp` or `ssh` part) with
    /// `pre_request`, evaluated every time, and audit it like
    /// [`Session::request`]. `kind` names the request on its span.
    pub fn decide(
        &self,
        mut request: PolicyInput,
        kind: &str,
        text: AuditText,
        refused: &str,
        traceparent: Option<&str>,
    ) -> Decided {
        request.time = Some(TimeInfo::now());
        let verdict = Arc::new(self.evaluate(Stage::PreRequest, request));
        self.decided(verdict, kind, text, refused, traceparent)
    }

    /// [`Session::decide`], with the verdict reused for a later request of
    /// the same `key` when the policies read nothing else of the request
    /// (see [`keyed`]); the input is built only when the policies run.
    pub fn decide_keyed(
        &self,
        request: impl FnOnce() -> PolicyInput,
        key: RequestKey<'_>,
        kind: &str,
        text: AuditText,
        refused: &str,
        traceparent: Option<&str>,
    ) -> Decided {
        let verdict = lock(&self.keyed).verdict(
            self.gate,
            &self.resource.name,
            Stage::PreRequest,
            key,
            || {
                let mut request = request();
                request.time = Some(TimeInfo::now());
                self.evaluate(Stage::PreRequest, request)
            },
        );
        self.decided(verdict, kind, text, refused, traceparent)
    }

    /// [`Session::decide_response`], reused like [`Session::decide_keyed`].
    pub fn decide_response_keyed(
        &self,
        request: impl FnOnce() -> PolicyInput,
        response: impl FnOnce() -> ResponseInfo,
        key: RequestKey<'_>,
    ) -> Arc<Verdict> {
        lock(&self.keyed).verdict(
            self.gate,
            &self.resource.name,
            Stage::PostRequest,
            key,
            || self.decide_response(request(), response()),
        )
    }

    /// Evaluate `post_request` for the response to `request` (HTTP, MCP:
    /// `response` carries status, headers and content type).
    pub fn decide_response(&self, mut request: PolicyInput, response: ResponseInfo) -> Verdict {
        request.time = Some(TimeInfo::now());
        request.response = Some(response);
        self.evaluate(Stage::PostRequest, request)
    }

    fn decided(
        &self,
        verdict: Arc<Verdict>,
        kind: &str,
        text: AuditText,
        refused: &str,
        traceparent: Option<&str>,
    ) -> Decided {
        let span = spans::request(&self.span, kind, verdict.action, traceparent);
        let audit = self.push("statement", text, &verdict, false, span);
        let decision = match verdict.action {
            Action::Block => {
                Decision::Block(verdict.reason.clone().unwrap_or_else(|| refused.to_owned()))
            }
            Action::Rewrite => Decision::Rewrite(verdict.query.clone().unwrap_or_default()),
            _ => Decision::Forward,
        };
        Decided {
            decision,
            verdict,
            audit,
        }
    }

    fn pre_request(&self, query: &QueryInfo) -> Arc<Verdict> {
        let mut verdicts = lock(&self.verdicts);
        verdicts.verdict(
            self.gate,
            self.protocol.as_str(),
            &self.resource.name,
            Stage::PreRequest,
            query,
            || {
                self.evaluate(
                    Stage::PreRequest,
                    PolicyInput {
                        time: Some(TimeInfo::now()),
                        query: Some(query.clone()),
                        ..Default::default()
                    },
                )
            },
        )
    }

    /// The `post_request` verdict for results of `query` before any result
    /// exists (no `response` in the input): the masks that will apply to
    /// what it returns. Reused like `pre_request` verdicts.
    pub fn expected_masks(&self, query: &QueryInfo) -> Arc<Verdict> {
        let mut verdicts = lock(&self.verdicts);
        verdicts.verdict(
            self.gate,
            self.protocol.as_str(),
            &self.resource.name,
            Stage::PostRequest,
            query,
            || {
                self.evaluate(
                    Stage::PostRequest,
                    PolicyInput {
                        time: Some(TimeInfo::now()),
                        query: Some(query.clone()),
                        ..Default::default()
                    },
                )
            },
        )
    }

    /// Resolves with the reason to tell the client when the access grant this
    /// session was admitted under expires or is revoked; never, when it holds none.
    pub async fn grant_ended(&self) -> String {
        if !self.grant_bound {
            return std::future::pending().await;
        }
        crate::grants::ended(
            self.gate,
            &self.resource.name,
            self.resource.require_access_grant,
            self.identity(),
        )
        .await
    }

    /// Audit that the session was ended because its grant did (`reason`).
    pub fn audit_grant_ended(&self, reason: &str) {
        let mut verdict = Verdict::refusal();
        verdict.reason = Some(reason.to_owned());
        self.flush_all();
        self.gate.audit.emit(AuditEvent::new(
            "session",
            &self.parties,
            None,
            Arc::new(verdict),
        ));
    }

    /// Audit that the session was pinned to one upstream connection
    /// (PostgreSQL transaction pooling) because of `reason`.
    pub fn audit_pinned(&self, reason: String) {
        let mut verdict = Verdict::refusal();
        verdict.action = gate_policy::Action::Allow;
        verdict.reason = Some(reason);
        self.gate.audit.emit(AuditEvent::new(
            "session",
            &self.parties,
            None,
            Arc::new(verdict),
        ));
    }

    /// Record one request's duration in `gate_request_duration_seconds` once
    /// the response is written ([`Session::flush`]).
    pub fn record_duration(&self, started: Instant) {
        self.deferred().durations.push(started.elapsed());
    }

    /// End the session: emit what is deferred and add the verdict reuses to
    /// their metric. Dropping a session does the same.
    pub fn end(&self) {
        self.flush_all();
        lock(&self.verdicts).count(self.gate, self.protocol.as_str(), &self.resource.name);
        lock(&self.keyed).count(
            self.gate,
            self.protocol.as_str(),
            &self.resource.name,
            Arc::strong_count(&self.keyed) == 1,
        );
    }

    fn deferred(&self) -> MutexGuard<'_, Deferred> {
        lock(&self.deferred)
    }
}

impl Drop for Session<'_> {
    /// A session dropped mid-write (shutdown, a cancelled task) still emits
    /// every audit event it deferred, complete or not.
    fn drop(&mut self) {
        self.end();
    }
}

/// A poisoned lock only means another thread panicked mid-update; keep going with its state.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
