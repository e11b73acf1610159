//! Log lines to stderr through `tracing`: `logging.level` filters, `logging.format` picks JSON lines or text.
//!
//! Audit events are not logs: they go to stdout through [`crate::audit::AuditSink`]. Nothing here
//! writes to stdout.
//!
//! ```text
//! json: {"timestamp":"2026-01-02T03:04:05.678901Z","level":"INFO","message":"listening","addr":"127.0.0.1:6432","protocol":"postgres","target":"gate_connector"}
//! text: 2026-01-02T03:04:05.678901Z  INFO gate_connector: listening addr=127.0.0.1:6432 protocol="postgres"
//! ```
//!
//! `logging.level` applies to Gate's own crates (targets `gate_*`); events of dependencies
//! (tonic, hyper, h2, sqlx) pass at `warn` and above, or at `error` when the level is `error`.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;

pub use gate_config::logging::parse_level;

/// The filter for `level`: Gate's crates at `level`, everything else at most as verbose as `warn`.
pub fn filter(level: LevelFilter) -> Targets {
    gate_config::logging::filter("gate_connector", level)
}

/// Install the process-wide subscriber writing to stderr (see [`gate_config::logging::install`]).
pub fn init(level: &str, format: &str) -> Result<(), String> {
    gate_config::logging::install("gate_connector", level, format, None)
}

/// A layer that sees every span and event before the log filter (the OTLP
/// span exporter of [`crate::telemetry`], which filters for itself).
pub use gate_config::logging::Extra;

/// [`init`], with `extra` installed beside the log output.
pub fn init_with(level: &str, format: &str, extra: Option<Extra>) -> Result<(), String> {
    gate_config::logging::install("gate_connector", level, format, extra)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_configured_level_parses_and_others_are_refused_by_name() {
        for level in gate_config::LOG_LEVELS {
            assert!(parse_level(level).is_ok(), "{level}");
        }
        let err = parse_level("loud").unwrap_err();
        assert_eq!(
            err,
            r#"logging.level: expected trace, debug, info, warn or error, got "loud""#
        );
        assert!(parse_level("INFO").is_err(), "levels are lower case");
    }

    #[test]
    fn dependencies_stay_at_warn_unless_quieter() {
        use tracing::Level;
        let debug = filter(LevelFilter::DEBUG);
        assert!(debug.would_enable("gate_connector::control", &Level::DEBUG));
        assert!(!debug.would_enable("h2::codec", &Level::DEBUG));
        assert!(debug.would_enable("h2::codec", &Level::WARN));
        let error = filter(LevelFilter::ERROR);
        assert!(!error.would_enable("gate_connector", &Level::WARN));
        assert!(!error.would_enable("sqlx::query", &Level::WARN));
    }

    #[test]
    fn an_unknown_format_is_refused_by_name() {
        assert_eq!(
            init("info", "xml").unwrap_err(),
            r#"logging.format: expected json or text, got "xml""#
        );
    }
}
