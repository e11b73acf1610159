//! Upstream connection pools for every protocol: a lease holds one logged-in
//! upstream connection (for a whole client session in session mode, for one
//! transaction in PostgreSQL's transaction mode); a returned connection is
//! reset (or, between transactions, kept as it is) for the next lease with the
//! same key (user, database, settings). At most `max_connections` per resource
//! are open at once, idle ones of other keys closed to make room; waiting for
//! one is bounded by `acquire_timeout` and shows in the `gate_connpool_*` metrics.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gate_config::connector::ResourceConfig;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// How long a reset before reuse may take.
pub const RESET_TIMEOUT: Duration = Duration::from_secs(5);

/// Every connection stayed busy for `acquire_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted;

/// The pool of one resource, for connections of type `C` keyed by `K`.
#[derive(Debug)]
pub struct Pool<K, C> {
    resource: String,
    upstream_label: String,
    acquire_timeout: Duration,
    idle_timeout: Duration,
    max: usize,
    permits: Arc<Semaphore>,
    idle: Mutex<Idle<K, C>>,
    metrics: Arc<Metrics>,
}

/// Connections kept for reuse, by key, newest last.
#[derive(Debug)]
struct Idle<K, C> {
    by_key: HashMap<K, Vec<(C, Instant)>>,
    count: usize,
}

impl<K, C> Default for Idle<K, C> {
    fn default() -> Self {
        Self {
            by_key: HashMap::new(),
            count: 0,
        }
    }
}

/// A connection checked out of a pool; give it back with [`Pool::release`].
#[derive(Debug)]
pub struct Lease<K, C> {
    pub conn: C,
    key: K,
    _permit: OwnedSemaphorePermit,
}

impl<K, C> Lease<K, C> {
    /// What the connection was checked out for.
    pub fn key(&self) -> &K {
        &self.key
    }
}

impl<K: Hash + Eq + Clone, C> Pool<K, C> {
    pub fn new(resource: &ResourceConfig, metrics: Arc<Metrics>) -> Self {
        let max = usize::try_from(resource.pool.max_connections)
            .unwrap_or(1)
            .max(1);
        Self {
            resource: resource.name.clone(),
            upstream_label: format!("{}:{}", resource.host, resource.port),
            acquire_timeout: resource.pool.acquire_timeout,
            idle_timeout: resource.pool.idle_timeout,
            max,
            permits: Arc::new(Semaphore::new(max)),
            idle: Mutex::default(),
            metrics,
        }
    }

    /// Add `delta` to this pool's series of metric `name`.
    pub fn count(&self, name: &'static str, delta: f64) {
        self.metrics.add(name, &self.labels(), delta);
    }

    fn labels(&self) -> [(&'static str, &str); 2] {
        [
            ("resource", self.resource.as_str()),
            ("upstream", self.upstream_label.as_str()),
        ]
    }

    /// A connection for `key`: an idle one if there is one, else `connect()`.
    /// Waits at most `acquire_timeout` when all `max_connections` are in use.
    pub async fn acquire<E>(
        &self,
        key: K,
        connect: impl AsyncFnOnce(&K) -> Result<C, E>,
    ) -> Result<Lease<K, C>, Result<Exhausted, E>> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let labels = self.labels();
                self.metrics
                    .add("gate_connpool_exhausted_total", &labels, 1.0);
                self.metrics.add("gate_connpool_waiters", &labels, 1.0);
                let started = Instant::now();
                let waited = tokio::time::timeout(
                    self.acquire_timeout,
                    self.permits.clone().acquire_owned(),
                )
                .await;
                self.metrics.add("gate_connpool_waiters", &labels, -1.0);
                self.metrics.observe(
                    "gate_connpool_wait_duration_seconds",
                    &labels,
                    started.elapsed(),
                );
                match waited {
                    Ok(Ok(permit)) => permit,
                    _ => return Err(Ok(Exhausted)),
                }
            }
        };
        let conn = match self.take_idle(&key) {
            Some(conn) => conn,
            None => {
                self.make_room();
                connect(&key).await.map_err(Err)?
            }
        };
        self.metrics
            .add("gate_connpool_active_connections", &self.labels(), 1.0);
        Ok(Lease {
            conn,
            key,
            _permit: permit,
        })
    }

    fn take_idle(&self, key: &K) -> Option<C> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.by_key.get_mut(key)?;
        // Newest last; anything idle too long is closed.
        let before = list.len();
        list.retain(|(_, since)| since.elapsed() < self.idle_timeout);
        let taken = list.pop().map(|(conn, _)| conn);
        let gone = before - list.len();
        idle.count -= gone;
        drop(idle);
        self.count("gate_connpool_idle_connections", -(gone as f64));
        taken
    }

    /// Before opening a connection: when the open ones (leased, counting the
    /// caller's permit, plus idle) would exceed `max_connections`, close the
    /// oldest idle connection (it has another key, or it would have been taken).
    fn make_room(&self) {
        let leased = self.max - self.permits.available_permits();
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        if leased + idle.count <= self.max {
            return;
        }
        let oldest = idle
            .by_key
            .iter()
            .filter_map(|(key, list)| list.first().map(|(_, since)| (key.clone(), *since)))
            .min_by_key(|(_, since)| *since)
            .map(|(key, _)| key);
        if let Some(list) = oldest.and_then(|key| idle.by_key.get_mut(&key))
            && !list.is_empty()
        {
            list.remove(0);
            idle.count -= 1;
            drop(idle);
            self.count("gate_connpool_idle_connections", -1.0);
        }
    }

    /// Return a connection. `reusable` says the session ended with nothing
    /// in flight; then `reset` runs (within [`RESET_TIMEOUT`]) and, when it
    /// succeeds, the connection is kept; otherwise it is closed.
    pub async fn release(
        &self,
        mut lease: Lease<K, C>,
        reusable: bool,
        reset: impl AsyncFnOnce(&mut C) -> bool,
    ) {
        self.metrics
            .add("gate_connpool_active_connections", &self.labels(), -1.0);
        if !reusable {
            return;
        }
        let reset = tokio::time::timeout(RESET_TIMEOUT, reset(&mut lease.conn)).await;
        if reset != Ok(true) {
            return;
        }
        self.keep(lease);
    }

    /// Return a connection as it is, for the next lease with its key (a
    /// PostgreSQL connection between transactions).
    pub fn put_back(&self, lease: Lease<K, C>) {
        self.metrics
            .add("gate_connpool_active_connections", &self.labels(), -1.0);
        self.keep(lease);
    }

    fn keep(&self, lease: Lease<K, C>) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.by_key
                .entry(lease.key)
                .or_default()
                .push((lease.conn, Instant::now()));
            idle.count += 1;
            drop(idle);
            self.count("gate_connpool_idle_connections", 1.0);
        }
        // The permit drops here: another session may check a connection out.
    }
}

/// One pool (of a protocol's pool type `P`) per resource name.
#[derive(Debug)]
pub struct Pools<P> {
    by_resource: Mutex<HashMap<String, Arc<P>>>,
}

impl<P> Default for Pools<P> {
    fn default() -> Self {
        Self {
            by_resource: Mutex::default(),
        }
    }
}

impl<P> Pools<P> {
    /// The pool of resource `name`, made by `new` the first time.
    pub fn get_or(&self, name: &str, new: impl FnOnce() -> P) -> Arc<P> {
        let Ok(mut map) = self.by_resource.lock() else {
            return Arc::new(new());
        };
        map.entry(name.to_owned())
            .or_insert_with(|| Arc::new(new()))
            .clone()
    }
}
