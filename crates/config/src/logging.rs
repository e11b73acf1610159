//! The log setup both binaries share: `logging.level` and `logging.format`
//! (see [`crate::LoggingConfig`]) turned into one process-wide `tracing`
//! subscriber writing to stderr, JSON lines or text, no colours.
//!
//! `logging.level` applies to Gate's own crates (the binary's and the shared
//! `gate_config`, `gate_policy`, `gate_proto`); events of dependencies (tonic,
//! hyper, h2, sqlx) pass at `warn` and above, or at `error` when the level is
//! `error`.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;

/// Gate's library crates, governed by `logging.level` in every binary.
const SHARED_TARGETS: [&str; 3] = ["gate_config", "gate_policy", "gate_proto"];

/// A layer that sees every span and event before the log filter (the
/// connector's OTLP span exporter, which filters for itself).
pub type Extra = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

/// Parse `logging.level`: one of `trace`, `debug`, `info`, `warn`, `error`.
pub fn parse_level(level: &str) -> Result<LevelFilter, String> {
    match level {
        "trace" => Ok(LevelFilter::TRACE),
        "debug" => Ok(LevelFilter::DEBUG),
        "info" => Ok(LevelFilter::INFO),
        "warn" => Ok(LevelFilter::WARN),
        "error" => Ok(LevelFilter::ERROR),
        other => Err(format!(
            "logging.level: expected trace, debug, info, warn or error, got {other:?}"
        )),
    }
}

/// The filter for `level`: the binary's crate `own` and Gate's library
/// crates at `level`, everything else at most as verbose as `warn`.
pub fn filter(own: &'static str, level: LevelFilter) -> Targets {
    let others = level.min(LevelFilter::WARN);
    std::iter::once(own)
        .chain(SHARED_TARGETS)
        .fold(Targets::new().with_default(others), |targets, target| {
            targets.with_target(target, level)
        })
}

/// Install the process-wide subscriber writing to stderr for the binary
/// whose crate is `own`. `format` is `json` (one JSON object per line:
/// `timestamp`, `level`, `message`, the event's fields, `target`) or `text`;
/// `extra` rides beside the log output, unfiltered. Fails on a level or
/// format outside those lists, or when a subscriber is already set.
pub fn install(
    own: &'static str,
    level: &str,
    format: &str,
    extra: Option<Extra>,
) -> Result<(), String> {
    let targets = filter(own, parse_level(level)?);
    let base = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let registry = tracing_subscriber::registry().with(extra);
    let installed = match format {
        "json" => tracing::subscriber::set_global_default(
            registry.with(
                base.json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_filter(targets),
            ),
        ),
        "text" => tracing::subscriber::set_global_default(registry.with(base.with_filter(targets))),
        other => {
            return Err(format!(
                "logging.format: expected json or text, got {other:?}"
            ));
        }
    };
    installed.map_err(|e| format!("cannot install the log subscriber: {e}"))
}
