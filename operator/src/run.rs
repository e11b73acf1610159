//! Running the operator: one controller per kind while this replica holds the Lease, and the
//! `/metrics`, `/healthz`, `/readyz` listener.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use futures_util::StreamExt;
use kube::api::Api;
use kube::runtime::{Controller, watcher};
use tokio::sync::watch;

use crate::context::Ctx;
use crate::crd::{Group, Policy, Resource};
use crate::mirror::{self, Mirror};

/// Readiness as `/readyz` reports it.
#[derive(Default)]
pub struct Health {
    /// The replica decided whether it leads (leader or standby are both ready).
    pub ready: AtomicBool,
    /// This replica runs the controllers.
    pub leading: AtomicBool,
}

fn api<K: Mirror>(client: &kube::Client, namespace: Option<&str>) -> Api<K> {
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn controller<K: Mirror>(
    ctx: Arc<Ctx>,
    namespace: Option<String>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    Controller::new(
        api::<K>(&ctx.client, namespace.as_deref()),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(stop)
    .run(mirror::reconcile::<K>, mirror::error_policy::<K>, ctx)
    .for_each(|result| async move {
        if let Err(e) = result {
            tracing::debug!(error = %e, "controller");
        }
    })
    .await;
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Run every controller until `stop` turns true.
pub async fn controllers(ctx: Arc<Ctx>, namespace: Option<String>, stop: watch::Receiver<bool>) {
    tracing::info!(
        namespace = namespace.as_deref().unwrap_or("(all)"),
        "controllers starting"
    );
    futures_util::future::join4(
        controller::<Resource>(ctx.clone(), namespace.clone(), stopped(stop.clone())),
        controller::<Policy>(ctx.clone(), namespace.clone(), stopped(stop.clone())),
        controller::<Group>(ctx.clone(), namespace.clone(), stopped(stop.clone())),
        crate::access::controller(ctx.clone(), namespace.clone(), stopped(stop.clone())),
    )
    .await;
}

/// Lead (per `leading`), run the controllers while leading, stop them when leadership is lost.
pub async fn lead(
    ctx: Arc<Ctx>,
    namespace: Option<String>,
    mut leading: watch::Receiver<bool>,
    health: Arc<Health>,
) {
    loop {
        if leading.wait_for(|l| *l).await.is_err() {
            return;
        }
        health.leading.store(true, Ordering::Relaxed);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut lost = leading.clone();
        let watcher = tokio::spawn(async move {
            let _ = lost.wait_for(|l| !*l).await;
            stop_tx.send_replace(true);
        });
        controllers(ctx.clone(), namespace.clone(), stop_rx).await;
        watcher.abort();
        health.leading.store(false, Ordering::Relaxed);
        tracing::warn!("leadership lost; controllers stopped");
    }
}

/// The health and metrics router.
pub fn router(ctx: Arc<Ctx>, health: Arc<Health>) -> axum::Router {
    axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .route(
            "/readyz",
            axum::routing::get(
                |State((_, health)): State<(Arc<Ctx>, Arc<Health>)>| async move {
                    if health.ready.load(Ordering::Relaxed) {
                        let role = if health.leading.load(Ordering::Relaxed) {
                            "leader"
                        } else {
                            "standby"
                        };
                        (StatusCode::OK, format!("ready ({role})\n"))
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n".to_owned())
                    }
                },
            ),
        )
        .route(
            "/metrics",
            axum::routing::get(
                |State((ctx, _)): State<(Arc<Ctx>, Arc<Health>)>| async move {
                    (
                        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                        ctx.metrics.encode(),
                    )
                        .into_response()
                },
            ),
        )
        .with_state((ctx, health))
}
