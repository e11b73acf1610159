//! A remembered admission, for protocols whose sessions are one request
//! (HTTP): the first request of a connection with given credentials is
//! admitted in full ([`super::admit`]); later ones with the same
//! credentials reuse its session input, audit parties and `session`
//! verdict — while the policies and control-plane state are unchanged, the
//! access grant it was admitted under still holds, and the `session`
//! verdict is provably the same (`gate_policy::Reuse` of the `session`
//! stage: it reads no request part, or the clock only to the second) — and
//! share one [`KeyedVerdicts`] cache. Anything else admits in full again.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use gate_config::connector::ResourceConfig;
use gate_policy::{Reuse, Stage};

use super::keyed::KeyedVerdicts;
use super::{Session, spans};
use crate::server::Gate;

/// What a later request with the same credentials needs to be admitted
/// without authentication or the `session` stage.
#[derive(Debug, Clone)]
pub struct Admitted {
    resource: String,
    generation: u64,
    /// Some when the `session` verdict holds only within this second.
    second: Option<i64>,
    grant_id: Option<String>,
    session: Snapshot,
    pub(super) keyed: Arc<Mutex<KeyedVerdicts>>,
}

#[derive(Debug, Clone)]
struct Snapshot {
    protocol: gate_config::connector::Protocol,
    input: gate_policy::SessionInput,
    identity: Arc<str>,
    identity_kind: &'static str,
    /// The audit parties' client (`ip:port`) of `peer`, reused for it.
    client: Arc<str>,
    peer: SocketAddr,
    grant_bound: bool,
    grant: Option<gate_policy::GrantInfo>,
}

impl Session<'_> {
    /// This session's admission, to be reused by [`readmit`]; `None` when
    /// its `session` verdict must be evaluated for every session (it reads
    /// request parts or calls a clock or random builtin) or was not a plain
    /// allow (dry-run findings are audited per session).
    pub fn admitted(&self) -> Option<Admitted> {
        if !self.admitted_plainly {
            return None;
        }
        let engine = self.gate.live.engine();
        let second = match engine.reuse(Stage::Session, &self.resource.name, &[]) {
            Reuse::Never => return None,
            Reuse::WithinSecond => Some(now_second()),
            Reuse::Always => None,
        };
        Some(Admitted {
            resource: self.resource.name.clone(),
            generation: self.admitted_generation,
            second,
            grant_id: self.grant.as_ref().map(|g| g.id.clone()),
            session: Snapshot {
                protocol: self.protocol,
                input: self.input.clone(),
                identity: self.parties.identity.clone(),
                identity_kind: self.parties.identity_kind,
                client: self.parties.client.clone(),
                peer: self.peer,
                grant_bound: self.grant_bound,
                grant: self.grant.clone(),
            },
            keyed: self.keyed.clone(),
        })
    }
}

/// A session for `resource` from a remembered admission, or `None` when it
/// no longer holds (then the caller admits in full, which also audits a
/// refusal).
pub fn readmit<'g>(
    gate: &'g Gate,
    resource: &'g ResourceConfig,
    admitted: &Admitted,
    peer: SocketAddr,
    traceparent: Option<&str>,
) -> Option<Session<'g>> {
    if admitted.resource != resource.name
        || admitted.generation != gate.live.generation()
        || admitted.second.is_some_and(|s| s != now_second())
    {
        return None;
    }
    let snapshot = &admitted.session;
    let grant = crate::grants::check(
        gate,
        &resource.name,
        resource.require_access_grant,
        &snapshot.identity,
    )
    .ok()?;
    if grant.map(|g| g.access_request_id) != admitted.grant_id {
        return None;
    }
    let protocol = resource.protocol;
    let span = spans::session(
        gate,
        protocol,
        &resource.name,
        &snapshot.identity,
        peer,
        traceparent,
    );
    spans::decided(&span, gate_policy::Action::Allow);
    let parties = crate::audit::Parties {
        protocol: protocol.as_str(),
        identity: snapshot.identity.clone(),
        identity_kind: snapshot.identity_kind,
        resource: resource.name.as_str().into(),
        client: if snapshot.peer == peer {
            snapshot.client.clone()
        } else {
            peer.to_string().into()
        },
    };
    Some(Session {
        gate,
        protocol,
        resource,
        input: snapshot.input.clone(),
        parties,
        grant_bound: snapshot.grant_bound,
        grant: snapshot.grant.clone(),
        span,
        verdicts: Mutex::default(),
        deferred: Mutex::default(),
        keyed: admitted.keyed.clone(),
        peer,
        admitted_plainly: true,
        admitted_generation: admitted.generation,
    })
}

impl Admitted {
    /// Add the verdict reuses not yet counted to their metric (when the
    /// connection that remembered this admission ends).
    pub fn count_reuses(&self, gate: &Gate) {
        let protocol = self.session.protocol.as_str();
        super::lock(&self.keyed).count(gate, protocol, &self.resource, true);
    }
}

fn now_second() -> i64 {
    gate_policy::TimeInfo::now().unix_ns / 1_000_000_000
}
