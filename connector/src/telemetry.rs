//! Optional OTLP trace export (`telemetry:` in the config): a `tracing` layer
//! that turns the session layer's `gate.session` and `gate.request` spans
//! into OpenTelemetry spans, queued when they close and sent in batches over
//! gRPC by a background thread, never on a session's path.
//!
//! The layer only sees spans of [`TARGET`]; the logging setup adds it to its
//! registry beside the log layers and keeps the [`Guard`] until shutdown:
//!
//! ```text
//! let (otel, guard) = telemetry::layer(config.telemetry.as_ref())?.unzip();
//! tracing_subscriber::registry().with(otel).with(fmt_layer).init();
//! ...
//! tokio::task::spawn_blocking(move || guard.map(Guard::shutdown)).await;
//! ```
//!
//! When the collector is down, a full queue drops new spans and a failed
//! export drops its batch: a warning (`gate::telemetry` target) marks the
//! first failure of a streak and the recovery, and sessions never wait.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gate_config::connector::TelemetryConfig;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::tonic_types::transport::ClientTlsConfig;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;

/// The `tracing` target of the spans this layer exports (and only those).
pub const TARGET: &str = "gate::span";

/// How long one export may take before its batch is dropped.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The OTLP layer for `config`, and the guard that flushes it; `None` when
/// telemetry is off. Call it inside the Tokio runtime that will run the
/// connector (the gRPC channel's tasks live there). The error names the
/// field at fault.
pub fn layer<S>(
    config: Option<&TelemetryConfig>,
) -> Result<Option<(impl Layer<S> + Send + Sync + use<S>, Guard)>, String>
where
    S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    let Some(config) = config else {
        return Ok(None);
    };
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(config.otlp_endpoint.clone())
        .with_timeout(EXPORT_TIMEOUT);
    if config.otlp_endpoint.starts_with("https://") {
        builder = builder.with_tls_config(ClientTlsConfig::new().with_webpki_roots());
    }
    let exporter = builder
        .build()
        .map_err(|e| format!("telemetry.otlp_endpoint: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .with_batch_exporter(Warning::new(exporter))
        .build();
    Ok(Some((spans_layer(&provider), Guard(Some(provider)))))
}

/// The `tracing-opentelemetry` layer over `provider`, limited to [`TARGET`]
/// and to the attributes Gate sets (no code locations, threads or busy time).
pub(crate) fn spans_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + Send + Sync + use<S>
where
    S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("gate-connector"))
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_level(false)
        .with_tracked_inactivity(false)
        .with_filter(filter_fn(|meta| meta.target() == TARGET))
}

/// Keeps the exporter running; [`Guard::shutdown`] (or dropping it) sends
/// what is queued and stops it.
#[derive(Debug)]
#[must_use = "dropping the guard stops trace export"]
pub struct Guard(Option<SdkTracerProvider>);

impl Guard {
    /// Export the queued spans and stop. Blocks until the last export ends
    /// (at most its timeout): call it off the runtime's worker threads
    /// (`spawn_blocking`), whose tasks carry the gRPC channel.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(target: "gate::telemetry", error = %e, "trace export did not shut down cleanly");
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An exporter that warns when a batch is dropped because the collector
/// failed, once per streak of failures, and again when it recovers.
#[derive(Debug)]
struct Warning<E> {
    inner: E,
    failing: AtomicBool,
}

impl<E> Warning<E> {
    fn new(inner: E) -> Self {
        Self {
            inner,
            failing: AtomicBool::new(false),
        }
    }
}

impl<E: SpanExporter> SpanExporter for Warning<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        match &result {
            Err(e) if !self.failing.swap(true, Ordering::Relaxed) => tracing::warn!(
                target: "gate::telemetry",
                spans,
                error = %e,
                "OTLP export failed; spans are dropped until the collector answers"
            ),
            Ok(()) if self.failing.swap(false, Ordering::Relaxed) => {
                tracing::warn!(target: "gate::telemetry", "OTLP export works again");
            }
            _ => {}
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
