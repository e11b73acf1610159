//! `gate-control` configuration (`config/control.yaml`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::connector::LoggingConfig;
use crate::error::Problems;
use crate::load::Validate;

/// The whole control-plane configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// One listener for the admin UI, `/api/v1`, `/health`, `/metrics` and gRPC.
    #[serde(default = "default_listen_addr")]
    pub listen_addr: String,
    /// The system (root) key. Empty: start only with `--insecure` / `GATE_INSECURE=true`.
    #[serde(default)]
    pub api_key: Option<String>,
    /// The URL clients use to reach this control plane; the `iss` of identity tokens.
    #[serde(default = "default_public_url")]
    pub public_url: String,
    #[serde(default)]
    pub database: DatabaseConfig,
    #[serde(default)]
    pub identity_tokens: IdentityTokenConfig,
    /// Where uploaded session recordings are stored, and for how long.
    #[serde(default)]
    pub recording: Option<RecordingConfig>,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub slack: Option<SlackConfig>,
    #[serde(default)]
    pub logging: LoggingConfig,
    /// The admin UI (`ui.oidc`: sign-in through an OpenID Connect provider).
    #[serde(default)]
    pub ui: crate::ui::UiConfig,
}

fn default_listen_addr() -> String {
    ":8080".to_owned()
}
fn default_public_url() -> String {
    "http://localhost:8080".to_owned()
}

/// Recording storage (`recording.dir`, `recording.retention`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingConfig {
    /// Recordings are stored as `<dir>/<org>/<id>.cast`; metadata is in the database.
    pub dir: String,
    /// Recordings that ended longer ago than this are deleted (files and rows); absent: kept.
    #[serde(default, deserialize_with = "optional_duration")]
    pub retention: Option<Duration>,
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    crate::duration::deserialize(d).map(Some)
}

/// The store: PostgreSQL when `dsn` is set, else embedded SQLite at `sqlite_path`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/db?sslmode=disable`.
    #[serde(default)]
    pub dsn: Option<String>,
    #[serde(
        default = "default_max_open",
        deserialize_with = "crate::number::u32_field"
    )]
    pub max_open_conns: u32,
    #[serde(
        default = "default_min_conns",
        deserialize_with = "crate::number::u32_field"
    )]
    pub min_conns: u32,
    /// Read migrations from this directory instead of the ones built into the binary.
    #[serde(default)]
    pub migrations_path: Option<String>,
    /// The embedded store's file (created on first start).
    #[serde(default = "default_sqlite_path")]
    pub sqlite_path: String,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            dsn: None,
            max_open_conns: default_max_open(),
            min_conns: default_min_conns(),
            migrations_path: None,
            sqlite_path: default_sqlite_path(),
        }
    }
}

fn default_max_open() -> u32 {
    25
}
fn default_min_conns() -> u32 {
    0
}
fn default_sqlite_path() -> String {
    ".data/gate.db".to_owned()
}

/// Identity tokens issued by `POST /api/v1/identities/{id}/tokens`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityTokenConfig {
    /// The `aud` claim; connectors list it as the issuer's `audience`.
    #[serde(default = "default_audience")]
    pub audience: String,
    #[serde(
        default = "default_ttl",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub default_ttl: Duration,
}

impl Default for IdentityTokenConfig {
    fn default() -> Self {
        Self {
            audience: default_audience(),
            default_ttl: default_ttl(),
        }
    }
}

fn default_audience() -> String {
    "gate".to_owned()
}
fn default_ttl() -> Duration {
    Duration::from_secs(15 * 60)
}

/// The outbox that delivers webhooks and Slack messages: retries, dead letters, the SSRF guard.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Also write every dead letter as a JSON file here (created when missing).
    #[serde(default)]
    pub dead_letter_dir: Option<String>,
    /// Attempts before a delivery becomes a dead letter (1-100).
    #[serde(
        default = "default_max_attempts",
        deserialize_with = "crate::number::u32_field"
    )]
    pub max_attempts: u32,
    /// Wait before the second attempt; doubles per attempt, with jitter.
    #[serde(
        default = "default_initial_backoff",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    #[serde(
        default = "default_max_backoff",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub max_backoff: Duration,
    /// One attempt's time limit (connect, send, answer).
    #[serde(
        default = "default_delivery_timeout",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub timeout: Duration,
    /// How often workers look for due deliveries (new ones start at once).
    #[serde(
        default = "default_poll_interval",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub poll_interval: Duration,
    /// Hosts webhooks may reach over plain http:// (loopback addresses always may).
    #[serde(default)]
    pub allowed_http_hosts: Vec<String>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            dead_letter_dir: None,
            max_attempts: default_max_attempts(),
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
            timeout: default_delivery_timeout(),
            poll_interval: default_poll_interval(),
            allowed_http_hosts: Vec::new(),
        }
    }
}

fn default_max_attempts() -> u32 {
    8
}
fn default_initial_backoff() -> Duration {
    Duration::from_secs(1)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(600)
}
fn default_delivery_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(1)
}

/// Slack approvals: Block Kit messages with Approve/Deny buttons, `/integrations/slack/actions`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    pub bot_token: String,
    pub signing_secret: String,
    #[serde(default)]
    pub default_approval_channel: Option<String>,
    #[serde(default)]
    pub org_approval_channels: BTreeMap<String, String>,
    #[serde(default)]
    pub resource_approval_channels: BTreeMap<String, String>,
    #[serde(default)]
    pub requester_mappings: BTreeMap<String, String>,
    /// The Slack Web API (`https://slack.com/api`); tests point it at a local fake.
    #[serde(default)]
    pub slack_base_url: Option<String>,
    /// Groups whose members may approve from Slack when a resource names no `approver_groups`.
    #[serde(default = "default_approver_groups")]
    pub approver_groups: Vec<String>,
}

fn default_approver_groups() -> Vec<String> {
    vec!["admins".to_owned()]
}

impl Validate for ControlConfig {
    fn validate(&self, problems: &mut Problems) {
        if let Err(e) = crate::connector::parse_listen_addr(&self.listen_addr) {
            problems.push("listen_addr", e);
        }
        if self
            .api_key
            .as_deref()
            .is_some_and(|k| k.len() < 16 && !k.is_empty())
        {
            problems.push(
                "api_key",
                "must be at least 16 characters (or empty with --insecure)",
            );
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            problems.push("public_url", "expected an http:// or https:// URL");
        }
        if let Some(dsn) = self.database.dsn.as_deref().filter(|d| !d.is_empty())
            && !(dsn.starts_with("postgres://") || dsn.starts_with("postgresql://"))
        {
            problems.push(
                "database.dsn",
                "expected a postgres:// URL (leave empty for SQLite)",
            );
        }
        if self.database.max_open_conns == 0 {
            problems.push("database.max_open_conns", "must be at least 1");
        }
        if self.database.min_conns > self.database.max_open_conns {
            problems.push(
                "database.min_conns",
                "must not exceed database.max_open_conns",
            );
        }
        if self.identity_tokens.default_ttl.is_zero()
            || self.identity_tokens.default_ttl > Duration::from_secs(86_400)
        {
            problems.push("identity_tokens.default_ttl", "must be between 1s and 24h");
        }
        let d = &self.delivery;
        if d.max_attempts == 0 || d.max_attempts > 100 {
            problems.push("delivery.max_attempts", "must be between 1 and 100");
        }
        if d.initial_backoff.is_zero() {
            problems.push("delivery.initial_backoff", "must be at least 1ms");
        }
        if d.max_backoff < d.initial_backoff {
            problems.push(
                "delivery.max_backoff",
                "must not be shorter than delivery.initial_backoff",
            );
        }
        if d.timeout.is_zero() || d.timeout > Duration::from_secs(300) {
            problems.push("delivery.timeout", "must be between 1ms and 5m");
        }
        if d.poll_interval.is_zero() {
            problems.push("delivery.poll_interval", "must be at least 1ms");
        }
        if let Some(recording) = &self.recording {
            if recording.dir.trim().is_empty() {
                problems.push("recording.dir", "must not be empty");
            }
            if recording
                .retention
                .is_some_and(|r| r < Duration::from_secs(1))
            {
                problems.push("recording.retention", "must be at least 1s");
            }
        }
        if let Some(slack) = &self.slack {
            if slack.bot_token.is_empty() {
                problems.push("slack.bot_token", "must not be empty");
            }
            if slack.signing_secret.is_empty() {
                problems.push("slack.signing_secret", "must not be empty");
            }
            if let Some(url) = slack.slack_base_url.as_deref()
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                problems.push(
                    "slack.slack_base_url",
                    "expected an http:// or https:// URL",
                );
            }
        }
        self.logging.validate(problems);
        self.ui.validate(problems);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::load_str;

    fn load(yaml: &str) -> Result<ControlConfig, crate::ConfigErrors> {
        load_str("control.yaml", yaml, &|name| {
            (name == "KEY").then(|| "k".repeat(20))
        })
    }

    #[test]
    fn defaults_use_sqlite_and_port_8080() {
        let config = load("").unwrap();
        assert_eq!(config.listen_addr, ":8080");
        assert!(config.database.dsn.is_none());
        assert_eq!(config.database.sqlite_path, ".data/gate.db");
        assert_eq!(config.api_key, None);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let err = load("listen_addr: nope\napi_key: short\ndatabase: {dsn: 'mysql://x', max_open_conns: 0}\nlogging: {level: loud}\n")
            .unwrap_err();
        let paths: Vec<&str> = err.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "listen_addr",
                "api_key",
                "database.dsn",
                "database.max_open_conns",
                "logging.level"
            ]
        );
    }

    #[test]
    fn recording_takes_a_dir_and_a_retention() {
        let config = load("recording: {dir: /var/lib/gate/recordings, retention: 720h}\n").unwrap();
        let recording = config.recording.unwrap();
        assert_eq!(recording.dir, "/var/lib/gate/recordings");
        assert_eq!(recording.retention, Some(Duration::from_secs(720 * 3600)));
        assert_eq!(
            load("recording: {dir: x}\n")
                .unwrap()
                .recording
                .unwrap()
                .retention,
            None
        );
        let err = load("recording: {dir: \" \", retention: 10ms}\n").unwrap_err();
        let paths: Vec<&str> = err.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["recording.dir", "recording.retention"], "{err}");
        let err = load("recording: {dir: x, retention: '30'}\n").unwrap_err();
        assert!(err.to_string().contains("expected a duration"), "{err}");
    }

    #[test]
    fn delivery_and_slack_are_validated_with_their_paths() {
        let config = load("").unwrap();
        assert_eq!(config.delivery.max_attempts, 8);
        assert_eq!(config.delivery.initial_backoff, Duration::from_secs(1));
        let err = load(
            "delivery: {max_attempts: 0, initial_backoff: 2s, max_backoff: 1s, timeout: 10m}\n\
             slack: {bot_token: \"\", signing_secret: s, slack_base_url: \"ftp://x\"}\n",
        )
        .unwrap_err();
        let paths: Vec<&str> = err.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "delivery.max_attempts",
                "delivery.max_backoff",
                "delivery.timeout",
                "slack.bot_token",
                "slack.slack_base_url"
            ],
            "{err}"
        );
        let slack = load(
            "slack: {bot_token: t, signing_secret: s}
",
        )
        .unwrap();
        assert_eq!(slack.slack.unwrap().approver_groups, ["admins"]);
    }

    #[test]
    fn unknown_fields_name_their_path_and_env_expands() {
        let err = load("database: {dsn_typo: x}\n").unwrap_err();
        assert_eq!(err.errors[0].path, "database.dsn_typo");
        assert!(err.errors[0].message.contains("dsn_typo"), "{err}");
        let config = load("api_key: ${KEY}\n").unwrap();
        assert_eq!(config.api_key.as_deref(), Some("kkkkkkkkkkkkkkkkkkkk"));
    }
}
