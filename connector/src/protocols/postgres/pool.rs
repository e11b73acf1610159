//! Upstream connection pools, session mode: a client session holds one
//! logged-in upstream connection; when the session ends cleanly (idle, no
//! response outstanding) the connection is reset with `DISCARD ALL` and kept
//! for the next session with the same user, database and startup settings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gate_config::connector::ResourceConfig;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::PgError;
use super::upstream::{self, Upstream};
use crate::metrics::Metrics;

/// Which upstream connections are interchangeable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    user: String,
    database: String,
    params: Vec<(String, String)>,
}

/// The pool of one resource.
#[derive(Debug)]
pub(super) struct Pool {
    resource: ResourceConfig,
    upstream_label: String,
    permits: Arc<Semaphore>,
    idle: Mutex<HashMap<Key, Vec<(Upstream, Instant)>>>,
    metrics: Arc<Metrics>,
}

/// An upstream connection checked out of a pool; give it back with [`Pool::release`].
#[derive(Debug)]
pub(super) struct Lease {
    pub(super) upstream: Upstream,
    key: Key,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    pub(super) fn new(resource: &ResourceConfig, metrics: Arc<Metrics>) -> Self {
        let max = usize::try_from(resource.pool.max_connections)
            .unwrap_or(1)
            .max(1);
        Self {
            resource: resource.clone(),
            upstream_label: format!("{}:{}", resource.host, resource.port),
            permits: Arc::new(Semaphore::new(max)),
            idle: Mutex::default(),
            metrics,
        }
    }

    fn labels(&self) -> [(&'static str, &str); 2] {
        [
            ("resource", self.resource.name.as_str()),
            ("upstream", self.upstream_label.as_str()),
        ]
    }

    /// A logged-in connection for `user` on `database` with `params`: an idle
    /// one if there is one, else a new login. Waits at most `acquire_timeout`
    /// when all `max_connections` are in use.
    pub(super) async fn acquire(
        &self,
        user: &str,
        database: &str,
        params: &[(&str, &str)],
    ) -> Result<Lease, PgError> {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                self.metrics
                    .add("gate_connpool_exhausted_total", &self.labels(), 1.0);
                self.metrics
                    .add("gate_connpool_waiters", &self.labels(), 1.0);
                let started = Instant::now();
                let waited = tokio::time::timeout(
                    self.resource.pool.acquire_timeout,
                    self.permits.clone().acquire_owned(),
                )
                .await;
                self.metrics
                    .add("gate_connpool_waiters", &self.labels(), -1.0);
                self.metrics.observe(
                    "gate_connpool_wait_duration_seconds",
                    &self.labels(),
                    started.elapsed(),
                );
                match waited {
                    Ok(Ok(permit)) => permit,
                    _ => return Err(PgError::PoolExhausted(self.resource.name.clone())),
                }
            }
        };
        let key = Key {
            user: user.to_owned(),
            database: database.to_owned(),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let reusable = self.take_idle(&key);
        let upstream = match reusable {
            Some(upstream) => upstream,
            None => upstream::connect(&self.resource, user, database, params).await?,
        };
        self.metrics
            .add("gate_connpool_active_connections", &self.labels(), 1.0);
        Ok(Lease {
            upstream,
            key,
            _permit: permit,
        })
    }

    fn take_idle(&self, key: &Key) -> Option<Upstream> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        let idle_timeout = self.resource.pool.idle_timeout;
        // Newest first; anything idle too long is closed.
        list.retain(|(_, since)| since.elapsed() < idle_timeout);
        list.pop().map(|(upstream, _)| upstream)
    }

    /// Return a connection. `reusable` says the session ended idle with no
    /// response outstanding; then it is reset and kept, otherwise closed.
    pub(super) async fn release(&self, mut lease: Lease, reusable: bool) {
        self.metrics
            .add("gate_connpool_active_connections", &self.labels(), -1.0);
        if !reusable {
            return;
        }
        let reset = tokio::time::timeout(
            Duration::from_secs(5),
            upstream::simple_query(&mut lease.upstream, "DISCARD ALL"),
        )
        .await;
        if !matches!(reset, Ok(Ok(_))) {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.entry(lease.key)
                .or_default()
                .push((lease.upstream, Instant::now()));
        }
        // The permit drops here: another session may check a connection out.
    }
}

/// One pool per PostgreSQL resource.
#[derive(Debug, Default)]
pub struct Pools {
    by_resource: Mutex<HashMap<String, Arc<Pool>>>,
}

impl Pools {
    /// The pool for `resource`.
    pub(super) fn get(&self, resource: &ResourceConfig, metrics: &Arc<Metrics>) -> Arc<Pool> {
        let Ok(mut map) = self.by_resource.lock() else {
            return Arc::new(Pool::new(resource, metrics.clone()));
        };
        map.entry(resource.name.clone())
            .or_insert_with(|| Arc::new(Pool::new(resource, metrics.clone())))
            .clone()
    }
}
