//! Starting and stopping the control plane: open the store, build the shared state, bind the one
//! listener and serve HTTP/1.1 and HTTP/2 (gRPC) on it until told to stop; the outbox worker runs
//! beside it, and so does the recording retention sweep.

use std::net::SocketAddr;
use std::sync::Arc;

use gate_config::ControlConfig;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::http::limits::HttpLimits;
use crate::service::ControlPlane;
use crate::store::Store;

/// A running control plane.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub control: Arc<ControlPlane>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    /// The outbox worker (stopped with the server).
    worker: JoinHandle<()>,
    /// The recording retention sweep (stopped with the server).
    sweeper: JoinHandle<()>,
}

impl Running {
    /// Stop accepting, finish in-flight requests, return.
    pub async fn stop(mut self) -> std::io::Result<()> {
        self.worker.abort();
        self.sweeper.abort();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }

    /// The base URL (`http://127.0.0.1:port`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Open the store and start serving on `config.listen_addr` with the default HTTP limits.
pub async fn start(config: &ControlConfig, insecure: bool) -> Result<Running, String> {
    start_with(config, insecure, HttpLimits::default()).await
}

/// [`start`] with other HTTP limits (tests shorten the timeouts).
pub async fn start_with(
    config: &ControlConfig,
    insecure: bool,
    limits: HttpLimits,
) -> Result<Running, String> {
    let addr = gate_config::connector::parse_listen_addr(&config.listen_addr)
        .map_err(|e| format!("listen_addr: {e}"))?;
    let store = Store::open(&config.database)
        .await
        .map_err(|e| format!("database: {e}"))?;
    let control = Arc::new(ControlPlane::new(config, store, insecure).await?);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (listen_addr): {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = crate::http::router(Arc::clone(&control), limits.clone());
    let worker = tokio::spawn(crate::delivery::run(
        Arc::clone(&control),
        config.delivery.clone(),
    ));
    let sweeper = tokio::spawn(crate::service::recordings::retention(Arc::clone(&control)));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(crate::http::serve::serve(
        listener,
        app,
        limits,
        async move {
            let _ = stopped.await;
        },
    ));
    Ok(Running {
        addr,
        control,
        stop: Some(stop),
        task,
        worker,
        sweeper,
    })
}
