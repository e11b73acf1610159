//! Test support: a real gate-control on a free port (SQLite in a temp dir), an org with an
//! editor key, and the operator's controllers running against the fake API server.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use gate_config::{ControlConfig, load_str};
use gate_control::http::limits::HttpLimits;
use gate_control::server::{Running, start_with};
use gate_operator::context::{Ctx, Timing};
use gate_proto::client::{AdminClient, Credentials, connect_admin};
use gate_proto::v1::{CreateApiKeyRequest, CreateOrganizationRequest};
use tokio::sync::watch;

use crate::fake_api::FakeApi;

pub const ROOT_KEY: &str = "root-key-0123456789abcdef";

/// A control plane and an org-scoped admin client for it.
pub struct Cp {
    pub running: Running,
    pub dir: tempfile::TempDir,
    /// Editor key of the test organization (what the operator uses).
    pub key: String,
    pub org: String,
}

impl Cp {
    pub async fn start() -> Cp {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "listen_addr: 127.0.0.1:0\npublic_url: http://gate-control.test\ndatabase:\n  sqlite_path: {}/gate.db\napi_key: {ROOT_KEY}\n",
            dir.path().display()
        );
        let config: ControlConfig = load_str("control.yaml", &yaml, &|_| None).unwrap();
        let running = start_with(&config, false, HttpLimits::default())
            .await
            .unwrap();
        let mut root = connect_admin(
            &running.url(),
            Credentials::new(Some(ROOT_KEY), None).unwrap(),
        )
        .await
        .unwrap();
        let org = root
            .create_organization(CreateOrganizationRequest { name: "k8s".into() })
            .await
            .unwrap()
            .into_inner()
            .id;
        let mut scoped = connect_admin(
            &running.url(),
            Credentials::new(Some(ROOT_KEY), Some(&org)).unwrap(),
        )
        .await
        .unwrap();
        let key = scoped
            .create_api_key(CreateApiKeyRequest {
                name: "operator".into(),
                role: "admin".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .secret;
        Cp {
            running,
            dir,
            key,
            org,
        }
    }

    /// A client with the org key (what an API user of that org would use).
    pub async fn admin(&self) -> AdminClient {
        connect_admin(
            &self.running.url(),
            Credentials::new(Some(&self.key), None).unwrap(),
        )
        .await
        .unwrap()
    }
}

/// Fast timings for tests.
pub fn timing() -> Timing {
    Timing {
        resync: Duration::from_millis(500),
        access_poll: Duration::from_millis(200),
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
    }
}

/// The controllers running against `fake` and `cp` until the returned sender is dropped or set.
pub async fn operator(fake: &FakeApi, cp: &Cp) -> (Arc<Ctx>, watch::Sender<bool>) {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing::Level::DEBUG)
        .try_init();
    let ctx = Arc::new(Ctx::new(fake.client(), cp.admin().await, "test", timing()));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(gate_operator::run::controllers(ctx.clone(), None, stop_rx));
    (ctx, stop_tx)
}

/// Poll `check` until it returns `Some`, for at most `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
