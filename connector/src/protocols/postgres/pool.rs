//! PostgreSQL's use of the connector's session-mode pools (`crate::pool`):
//! connections are interchangeable for the same user, database and startup
//! settings, and are reset with `DISCARD ALL` before reuse.

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

impl Pool {
    /// A logged-in connection for `user` on `database` with `params`: an idle
    /// one if there is one, else a new login.
    pub(super) async fn acquire(
        &self,
        user: &str,
        database: &str,
        params: &[(&str, &str)],
    ) -> Result<Lease, PgError> {
        let key = Key {
            user: user.to_owned(),
            database: database.to_owned(),
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        self.inner
            .acquire(key, async |_| {
                upstream::connect(&self.resource, user, database, params).await
            })
            .await
            .map_err(|e| match e {
                Ok(crate::pool::Exhausted) => PgError::PoolExhausted(self.resource.name.clone()),
                Err(e) => e,
            })
    }

    /// Return a connection; `reusable` ones are reset with `DISCARD ALL` and kept.
    pub(super) async fn release(&self, lease: Lease, reusable: bool) {
        self.inner
            .release(lease, reusable, async |upstream| {
                upstream::simple_query(upstream, "DISCARD ALL")
                    .await
                    .is_ok()
            })
            .await;
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
