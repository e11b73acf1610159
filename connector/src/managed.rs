//! What the control plane decides for this connector, swapped atomically on every snapshot: the
//! policy engine (local plus managed policies), identities' groups and SSH keys, resource
//! overrides and grants. Sessions read it per statement, so a change applies without reconnecting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use gate_policy::PolicyEngine;
use gate_proto::v1::{Grant, Resource};
use tokio::sync::watch;

/// The control plane's part of the state, from one snapshot.
#[derive(Debug, Default)]
pub struct Managed {
    /// Snapshot version (0: none applied).
    pub version: u64,
    /// Group names by identity name, from control-plane group membership.
    pub groups: HashMap<String, Vec<String>>,
    /// OpenSSH public key lines by identity name (control-plane identities' `ssh_keys`).
    pub ssh_keys: HashMap<String, Vec<String>>,
    /// Managed resources by name (labels, `require_access_grant`).
    pub resources: HashMap<String, Resource>,
    /// Approved, unexpired access requests.
    pub grants: Vec<Grant>,
}

impl Managed {
    /// The grant that lets `identity` use `resource` at `now_ms`, if any.
    pub fn grant_for(&self, identity: &str, resource: &str, now_ms: i64) -> Option<&Grant> {
        self.grants
            .iter()
            .filter(|g| g.subject == identity && g.resource == resource)
            .find(|g| {
                gate_proto::wire::parse_rfc3339(&g.expires_at)
                    .is_some_and(|expires| expires > now_ms)
            })
    }

    /// Whether a session on `resource` needs a grant (set locally or by the control plane).
    pub fn requires_grant(&self, resource: &str, local: bool) -> bool {
        local
            || self
                .resources
                .get(resource)
                .is_some_and(|r| r.require_access_grant)
    }
}

/// The swappable state and a change signal.
#[derive(Debug)]
pub struct Live {
    engine: RwLock<Arc<PolicyEngine>>,
    managed: RwLock<Arc<Managed>>,
    changes: watch::Sender<u64>,
    /// Bumped on every replace: caches of policy results compare it to know they are stale.
    generation: AtomicU64,
}

impl Live {
    pub fn new(engine: PolicyEngine) -> Self {
        Self {
            engine: RwLock::new(Arc::new(engine)),
            managed: RwLock::new(Arc::new(Managed::default())),
            changes: watch::channel(0).0,
            generation: AtomicU64::new(0),
        }
    }

    /// Changes whenever the policies in force change.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The policy engine in force now.
    pub fn engine(&self) -> Arc<PolicyEngine> {
        match self.engine.read() {
            Ok(engine) => Arc::clone(&engine),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The managed state in force now.
    pub fn managed(&self) -> Arc<Managed> {
        match self.managed.read() {
            Ok(managed) => Arc::clone(&managed),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Put a new engine and managed state in force together, and wake session watchers.
    pub fn replace(&self, engine: PolicyEngine, managed: Managed) {
        let version = managed.version;
        match self.engine.write() {
            Ok(mut slot) => *slot = Arc::new(engine),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(engine),
        }
        match self.managed.write() {
            Ok(mut slot) => *slot = Arc::new(managed),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(managed),
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.changes.send_replace(version);
    }

    /// Sees every [`Live::replace`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}
