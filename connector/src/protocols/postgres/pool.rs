//! PostgreSQL's use of the connector's pools (`crate::pool`): connections are
//! interchangeable for the same user, database and startup settings; reset
//! with `DISCARD ALL` before another session uses them, and kept as they are
//! between the transactions of transaction mode.

use std::sync::Arc;

use gate_config::connector::ResourceConfig;

use super::error::PgError;
use super::upstream::{self, Upstream};
use crate::metrics::Metrics;

/// Which upstream connections are interchangeable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Key {
    user: String,
    database: String,
    params: Vec<(String, String)>,
}

/// The pool of one resource.
#[derive(Debug)]
pub struct Pool {
    inner: crate::pool::Pool<Key, Upstream>,
    resource: ResourceConfig,
}

/// An upstream connection checked out of a pool; give it back with [`Pool::release`].
pub(super) type Lease = crate::pool::Lease<Key, Upstream>;

impl Key {
    /// The key of connections for `user` on `database` with startup `params`.
    pub(super) fn new(user: &str, database: &str, params: &[(&str, &str)]) -> Self {
        Self {
            user: user.to_owned(),
            database: database.to_owned(),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

impl Pool {
    /// A logged-in connection for `key`: an idle one if there is one, else a new login.
    pub(super) async fn acquire(&self, key: &Key) -> Result<Lease, PgError> {
        self.inner
            .acquire(key.clone(), async |key| {
                let params: Vec<(&str, &str)> = key
                    .params
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                upstream::connect(&self.resource, &key.user, &key.database, &params).await
            })
            .await
            .map_err(|e| match e {
                Ok(crate::pool::Exhausted) => PgError::PoolExhausted(self.resource.name.clone()),
                Err(e) => e,
            })
    }

    /// Return a connection; `reusable` ones are reset with `DISCARD ALL` and kept.
    pub(super) async fn release(&self, mut lease: Lease, reusable: bool) {
        // DISCARD ALL drops the connection's prepared statements too.
        lease.conn.prepared.clear();
        self.inner
            .release(lease, reusable, async |upstream| {
                upstream::simple_query(upstream, "DISCARD ALL")
                    .await
                    .is_ok()
            })
            .await;
    }

    /// Return an idle connection between transactions, as it is.
    pub(super) fn put_back(&self, lease: Lease) {
        self.inner.put_back(lease);
    }

    /// Add `delta` to this pool's series of metric `name`.
    pub(super) fn count(&self, name: &'static str, delta: f64) {
        self.inner.count(name, delta);
    }

    /// The resource's pool settings.
    pub(super) fn config(&self) -> &gate_config::connector::PoolConfig {
        &self.resource.pool
    }
}

/// One pool per PostgreSQL resource.
pub type Pools = crate::pool::Pools<Pool>;

impl Pools {
    /// The pool for `resource`.
    pub(super) fn get(&self, resource: &ResourceConfig, metrics: &Arc<Metrics>) -> Arc<Pool> {
        self.get_or(&resource.name, || Pool {
            inner: crate::pool::Pool::new(resource, metrics.clone()),
            resource: resource.clone(),
        })
    }
}
