//! Log lines to stderr through `tracing`: `logging.level` filters, `logging.format` picks JSON lines or text.
//!
//! Audit events are not logs: they are stored and served by the API. Nothing here
//! writes to stdout (`--check` prints its verdict there).
//!
//! ```text
//! json: {"timestamp":"2026-01-02T03:04:05.678901Z","level":"WARN","message":"unauthenticated request served (insecure mode)","operation":"ListResources","target":"gate_control::service"}
//! text: 2026-01-02T03:04:05.678901Z  WARN gate_control::service: unauthenticated request served (insecure mode) operation="ListResources"
//! ```
//!
//! `logging.level` applies to Gate's own crates (targets `gate_*`); events of dependencies
//! (tonic, hyper, h2, sqlx) pass at `warn` and above, or at `error` when the level is `error`.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;

pub use gate_config::logging::parse_level;

/// The filter for `level`: Gate's crates at `level`, everything else at most as verbose as `warn`.
pub fn filter(level: LevelFilter) -> Targets {
    gate_config::logging::filter("gate_control", level)
}

/// Install the process-wide subscriber writing to stderr (see [`gate_config::logging::install`]).
pub fn init(level: &str, format: &str) -> Result<(), String> {
    gate_config::logging::install("gate_control", level, format, None)
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
        assert!(debug.would_enable("gate_control::control", &Level::DEBUG));
        assert!(!debug.would_enable("h2::codec", &Level::DEBUG));
        assert!(debug.would_enable("h2::codec", &Level::WARN));
        let error = filter(LevelFilter::ERROR);
        assert!(!error.would_enable("gate_control", &Level::WARN));
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
