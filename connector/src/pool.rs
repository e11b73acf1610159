//! Upstream connection pools, session mode, for every protocol: a client
//! session holds one logged-in upstream connection; when the session ends
//! cleanly the protocol resets it and it is kept for the next session with
//! the same key (user, database, settings). At most `max_connections` per
//! resource are out at once; waiting for one is bounded by `acquire_timeout`
//! and shows in the `gate_connpool_*` metrics.

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
    permits: Arc<Semaphore>,
    idle: Mutex<HashMap<K, Vec<(C, Instant)>>>,
    metrics: Arc<Metrics>,
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
            permits: Arc::new(Semaphore::new(max)),
            idle: Mutex::default(),
            metrics,
        }
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
            None => connect(&key).await.map_err(Err)?,
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
        let list = idle.get_mut(key)?;
        // Newest last; anything idle too long is closed.
        list.retain(|(_, since)| since.elapsed() < self.idle_timeout);
        list.pop().map(|(conn, _)| conn)
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
        if let Ok(mut idle) = self.idle.lock() {
            idle.entry(lease.key)
                .or_default()
                .push((lease.conn, Instant::now()));
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
