//! MySQL's use of the connector's session-mode pools (`crate::pool`):
//! connections are interchangeable for the same upstream user, schema,
//! response-shaping capabilities and character set; before reuse they are
//! reset with COM_RESET_CONNECTION (session variables, temporary tables,
//! prepared statements, transactions) and put back on their schema with
//! COM_INIT_DB.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use gate_config::connector::ResourceConfig;

use super::error::MyError;
use super::packets::OK;
use super::upstream::{self, LoginParams, Upstream, command};
use crate::metrics::Metrics;

/// The pool of one resource.
#[derive(Debug)]
pub struct Pool {
    inner: crate::pool::Pool<LoginParams, Upstream>,
    resource: ResourceConfig,
}

/// An upstream connection checked out of a pool; give it back with [`Pool::release`].
pub(super) type Lease = crate::pool::Lease<LoginParams, Upstream>;

impl Pool {
    /// A logged-in connection for `params`: an idle one, else a new login.
    pub(super) async fn acquire(&self, params: LoginParams) -> Result<Lease, MyError> {
        self.inner
            .acquire(params, async |params| {
                upstream::connect(&self.resource, params).await
            })
            .await
            .map_err(|e| match e {
                Ok(crate::pool::Exhausted) => MyError::PoolExhausted(self.resource.name.clone()),
                Err(e) => e,
            })
    }

    /// Return a connection; `reusable` ones are reset and kept.
    pub(super) async fn release(&self, lease: Lease, reusable: bool) {
        let schema = lease_schema(&lease);
        self.inner
            .release(lease, reusable, async |upstream| {
                reset(upstream, schema).await
            })
            .await;
    }
}

fn lease_schema(lease: &Lease) -> Option<String> {
    lease.key().database.clone()
}

/// COM_RESET_CONNECTION, then COM_INIT_DB back to `schema`; whether both succeeded.
async fn reset(upstream: &mut Upstream, schema: Option<String>) -> bool {
    let ok = |p: Result<super::codec::Packet, MyError>| p.is_ok_and(|p| p.first() == Some(OK));
    if !ok(upstream::simple_command(upstream, &[command::RESET_CONNECTION]).await) {
        return false;
    }
    let Some(schema) = schema else {
        return true;
    };
    let mut init = BytesMut::new();
    init.put_u8(command::INIT_DB);
    init.put_slice(schema.as_bytes());
    ok(upstream::simple_command(upstream, &init).await)
}

/// One pool per MySQL resource.
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
