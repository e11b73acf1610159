//! MongoDB's use of the connector's session-mode pools (`crate::pool`):
//! every connection of a resource is logged in as the resource's user, so
//! any idle one serves any session. A session keeps its connection for its
//! whole life, so `lsid` sessions, cursors and transactions stay on one
//! upstream connection. Before reuse a connection must answer `ping`.

use std::sync::Arc;

use bson::doc;
use gate_config::connector::ResourceConfig;

use super::error::MongoError;
use super::upstream::{self, Upstream};
use crate::metrics::Metrics;

/// The pool of one resource.
#[derive(Debug)]
pub struct Pool {
    inner: crate::pool::Pool<(), Upstream>,
    resource: ResourceConfig,
}

/// An upstream connection checked out of a pool; give it back with [`Pool::release`].
pub(super) type Lease = crate::pool::Lease<(), Upstream>;

impl Pool {
    /// A logged-in connection: an idle one, else a new login.
    pub(super) async fn acquire(&self) -> Result<Lease, MongoError> {
        self.inner
            .acquire((), async |_| upstream::connect(&self.resource).await)
            .await
            .map_err(|e| match e {
                Ok(crate::pool::Exhausted) => MongoError::PoolExhausted(self.resource.name.clone()),
                Err(e) => e,
            })
    }

    /// Return a connection; `reusable` ones that still answer `ping` are kept.
    pub(super) async fn release(&self, lease: Lease, reusable: bool) {
        self.inner
            .release(lease, reusable, async |upstream| {
                upstream.buf.is_empty()
                    && upstream::command(upstream, doc! {"ping": 1, "$db": "admin"})
                        .await
                        .is_ok()
            })
            .await;
    }
}

/// One pool per MongoDB resource.
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
