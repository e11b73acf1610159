//! `gate-connector` configuration (`config/connector.yaml`).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::error::Problems;
use crate::load::Validate;

/// The whole connector configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// Shared listener with protocol detection (`:6432` or `127.0.0.1:6432`).
    #[serde(default = "default_listen_addr")]
    pub listen_addr: String,
    /// `/healthz`, `/readyz` and `/metrics`.
    #[serde(default = "default_health_addr")]
    pub health_addr: String,
    /// What happens when no policy has an opinion: `block` (default) or `allow`.
    #[serde(default = "default_action")]
    pub default_action: String,
    /// The `data` document every policy (local and managed) reads: the settings of the policy
    /// library go under `config` (`config.ip_allowlist.cidrs`, see `policies/README.md`).
    #[serde(default)]
    pub policy_data: Option<serde_json::Value>,
    #[serde(default)]
    pub masking: MaskingConfig,
    /// Static identities for local use and small setups.
    #[serde(default)]
    pub identities: Vec<StaticIdentity>,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub control_plane: Option<ControlPlaneConfig>,
    #[serde(default)]
    pub resources: Vec<ResourceConfig>,
    #[serde(default)]
    pub policies: Vec<LocalPolicy>,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub recording: Option<DirConfig>,
    /// SSH: Gate's own host key (see `docs/ssh.md`).
    #[serde(default)]
    pub ssh: crate::ssh::SshConfig,
    #[serde(default)]
    pub delivery: Option<DeliveryConfig>,
    #[serde(default)]
    pub logging: LoggingConfig,
    /// OpenTelemetry trace export (off when absent).
    #[serde(default)]
    pub telemetry: Option<TelemetryConfig>,
    /// HTTP and MCP: peers (addresses or CIDR ranges) whose
    /// `X-Forwarded-User/Email/Groups` headers name the user; from anyone
    /// else those headers are stripped and ignored.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Shared listener: a client silent this long is greeted as MySQL
    /// (whose server speaks first), when a MySQL resource is configured.
    #[serde(
        default = "default_mysql_detect_delay",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub mysql_detect_delay: Duration,
}

fn default_mysql_detect_delay() -> Duration {
    Duration::from_millis(200)
}

fn default_listen_addr() -> String {
    ":6432".to_owned()
}
fn default_health_addr() -> String {
    ":8081".to_owned()
}
fn default_action() -> String {
    "block".to_owned()
}

/// Masking settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingConfig {
    /// Key for the `hash` strategy (HMAC-SHA256).
    #[serde(default)]
    pub hash_key: Option<String>,
}

/// A username/password identity defined in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticIdentity {
    pub name: String,
    /// Password logins (PostgreSQL, MySQL, MongoDB); may be omitted for an
    /// identity that only logs in over SSH with `ssh_keys`.
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub groups: Vec<String>,
    /// SSH: OpenSSH public key lines (`ssh-ed25519 AAAA… alice@laptop`) this identity logs in with.
    #[serde(default)]
    pub ssh_keys: Vec<String>,
}

/// How clients prove who they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
}

/// JWT issuers whose tokens are accepted in password fields and Bearer headers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    pub issuers: Vec<JwtIssuer>,
}

/// One trusted issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtIssuer {
    pub issuer: String,
    #[serde(default)]
    pub jwks_file: Option<String>,
    #[serde(default)]
    pub jwks_url: Option<String>,
    pub audience: String,
}

/// Where the control plane is and how often to poll it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlPlaneConfig {
    pub url: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(
        default = "default_sync_interval",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub sync_interval: Duration,
    #[serde(default, deserialize_with = "crate::duration::deserialize")]
    pub sync_jitter: Duration,
    /// The name this connector registers under (default: the host name).
    #[serde(default)]
    pub name: Option<String>,
    /// Where the last good snapshot is kept, to enforce it when the control plane is unreachable.
    #[serde(default = "default_state_dir")]
    pub state_dir: String,
    /// Labels this connector registers with: a resource whose `connector_selector` they do not
    /// satisfy is left out of its snapshots (decision 063).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_state_dir() -> String {
    ".data/connector".to_owned()
}

fn default_sync_interval() -> Duration {
    Duration::from_secs(30)
}

/// OTLP trace export: one span per session, one child span per request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The collector's OTLP/gRPC endpoint (`http://host:4317`).
    pub otlp_endpoint: String,
    /// The `service.name` resource attribute of every span.
    #[serde(default = "default_service_name")]
    pub service_name: String,
}

fn default_service_name() -> String {
    "gate-connector".to_owned()
}

/// The upstream protocols Gate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Postgres,
    Mysql,
    Mongodb,
    Http,
    Ssh,
    Mcp,
}

impl Protocol {
    /// Every protocol, in documentation order.
    pub const ALL: [Protocol; 6] = [
        Protocol::Postgres,
        Protocol::Mysql,
        Protocol::Mongodb,
        Protocol::Http,
        Protocol::Ssh,
        Protocol::Mcp,
    ];

    /// The name used in config and policy input.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Postgres => "postgres",
            Protocol::Mysql => "mysql",
            Protocol::Mongodb => "mongodb",
            Protocol::Http => "http",
            Protocol::Ssh => "ssh",
            Protocol::Mcp => "mcp",
        }
    }
}

/// One upstream system clients reach through Gate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    pub name: String,
    pub protocol: Protocol,
    pub host: String,
    #[serde(deserialize_with = "crate::number::u32_field")]
    pub port: u32,
    #[serde(default)]
    pub database: Option<String>,
    /// Upstream credentials: Gate logs in upstream itself.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// MongoDB: the database Gate authenticates `username` against upstream (default `admin`).
    #[serde(default)]
    pub auth_source: Option<String>,
    /// A dedicated port for this resource (required for MCP).
    #[serde(default, deserialize_with = "crate::number::opt_u32_field")]
    pub listen_port: Option<u32>,
    /// MCP: the upstream endpoint path.
    #[serde(default)]
    pub endpoint_path: Option<String>,
    /// MCP: pin each tool's definition when first listed; a changed definition is hidden and
    /// refused until an admin approves it in the control plane (needs `control_plane`).
    #[serde(default)]
    pub pin_tools: bool,
    #[serde(default)]
    pub upstream_tls: UpstreamTls,
    #[serde(default)]
    pub pool: PoolConfig,
    /// Admit sessions only for identities with an approved, unexpired grant.
    #[serde(default)]
    pub require_access_grant: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// HTTP: the `Host` / TLS SNI names that select this resource on the shared listener.
    #[serde(default)]
    pub host_names: Vec<String>,
    /// HTTP: only requests under this path prefix are proxied (404 otherwise).
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// HTTP: the largest request body, and the largest response Gate will
    /// inspect (masks, filters); bigger inspected responses are refused.
    #[serde(default = "crate::http::default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// HTTP and MCP: headers Gate adds to every upstream request (credentials the client never sees).
    #[serde(default)]
    pub upstream_headers: crate::http::UpstreamHeaders,
    /// HTTP only: forward the client's own `Authorization` header (stripped by default; refused for MCP).
    #[serde(default)]
    pub pass_authorization: bool,
    /// HTTP: where in a JSON response object the array that `filters` apply
    /// to lives (`data.items`); a top-level array needs none.
    #[serde(default)]
    pub filter_path: Option<String>,
    /// HTTP: upstream connect, response-header and idle timeouts.
    #[serde(default)]
    pub timeouts: crate::http::HttpTimeouts,
    /// SSH: the private key (OpenSSH format) Gate logs in upstream with.
    #[serde(default)]
    pub private_key_file: Option<String>,
    /// SSH: the upstream host keys Gate trusts (OpenSSH `known_hosts` format).
    #[serde(default)]
    pub known_hosts_file: Option<String>,
    /// SSH: accept any upstream host key (tests and labs only).
    #[serde(default)]
    pub insecure_skip_host_key: bool,
    /// SSH: record shell and exec sessions; MCP: record every exchange as JSON lines
    /// (`recording.dir`).
    #[serde(default)]
    pub record: bool,
    /// SSH: also record what the client types (`record` must be on).
    #[serde(default)]
    pub record_input: bool,
}

/// Upstream TLS: `true`/`false`, or `{mode, ca_file}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum UpstreamTls {
    Enabled(bool),
    Detailed {
        mode: TlsMode,
        #[serde(default)]
        ca_file: Option<String>,
    },
}

impl Default for UpstreamTls {
    fn default() -> Self {
        UpstreamTls::Enabled(false)
    }
}

impl UpstreamTls {
    /// The CA bundle for `verify-full`, when given.
    pub fn ca_file(&self) -> Option<&str> {
        match self {
            UpstreamTls::Detailed { ca_file, .. } => ca_file.as_deref(),
            UpstreamTls::Enabled(_) => None,
        }
    }

    /// The effective mode (`true` means verify-full against system roots).
    pub fn mode(&self) -> TlsMode {
        match self {
            UpstreamTls::Enabled(false) => TlsMode::Disable,
            UpstreamTls::Enabled(true) => TlsMode::VerifyFull,
            UpstreamTls::Detailed { mode, .. } => *mode,
        }
    }
}

/// Upstream TLS modes, as libpq names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    Disable,
    Require,
    VerifyFull,
}

/// Per-resource upstream connection pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    #[serde(
        default = "default_max_connections",
        deserialize_with = "crate::number::u32_field"
    )]
    pub max_connections: u32,
    #[serde(
        default = "default_idle_timeout",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub idle_timeout: Duration,
    #[serde(
        default = "default_acquire_timeout",
        deserialize_with = "crate::duration::deserialize"
    )]
    pub acquire_timeout: Duration,
    /// PostgreSQL: `session` (a client holds one upstream connection for its
    /// whole session) or `transaction` (a connection is lent per transaction).
    #[serde(default)]
    pub mode: PoolMode,
    /// PostgreSQL transaction mode: a statement that leaves state on the
    /// server connection (`SET`, `LISTEN`, session advisory locks, temporary
    /// tables, `WITH HOLD` cursors, SQL `PREPARE`, `DISCARD`) pins the client
    /// to its connection for the rest of its session (`true`), or is refused
    /// with SQLSTATE 0A000 (`false`).
    #[serde(default = "default_pin_on_session_state")]
    pub pin_on_session_state: bool,
    /// PostgreSQL transaction mode: protocol-level prepared statements kept
    /// per upstream connection (least recently used closed first); 0 turns
    /// named prepared statements off (refused with 0A000).
    #[serde(
        default = "default_max_prepared_statements",
        deserialize_with = "crate::number::u32_field"
    )]
    pub max_prepared_statements: u32,
}

/// How long a client holds an upstream connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    /// For the client's whole session.
    #[default]
    Session,
    /// From a transaction's (or lone statement's) first message to its idle ReadyForQuery.
    Transaction,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            idle_timeout: default_idle_timeout(),
            acquire_timeout: default_acquire_timeout(),
            mode: PoolMode::default(),
            pin_on_session_state: default_pin_on_session_state(),
            max_prepared_statements: default_max_prepared_statements(),
        }
    }
}

fn default_pin_on_session_state() -> bool {
    true
}
fn default_max_prepared_statements() -> u32 {
    200
}

fn default_max_connections() -> u32 {
    20
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_acquire_timeout() -> Duration {
    Duration::from_secs(5)
}

/// A policy file evaluated at one stage.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalPolicy {
    pub path: String,
    pub stage: String,
}

/// Client-facing TLS.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub cert_file: Option<String>,
    #[serde(default)]
    pub key_file: Option<String>,
}

/// A directory setting (`recording.dir`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirConfig {
    pub dir: String,
}

/// Async delivery settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    #[serde(default)]
    pub dead_letter_dir: Option<String>,
}

/// Log output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    #[serde(default = "default_level")]
    pub level: String,
    #[serde(default = "default_format")]
    pub format: String,
}

/// The accepted `logging.level` values, most verbose first.
pub const LOG_LEVELS: [&str; 5] = ["trace", "debug", "info", "warn", "error"];
/// The accepted `logging.format` values: one JSON object per line, or text for humans.
pub const LOG_FORMATS: [&str; 2] = ["json", "text"];

impl LoggingConfig {
    /// Report a `logging.level` or `logging.format` outside [`LOG_LEVELS`] / [`LOG_FORMATS`].
    pub fn validate(&self, p: &mut Problems) {
        if !LOG_LEVELS.contains(&self.level.as_str()) {
            p.push(
                "logging.level",
                format!(
                    "expected trace, debug, info, warn or error, got {:?}",
                    self.level
                ),
            );
        }
        if !LOG_FORMATS.contains(&self.format.as_str()) {
            p.push(
                "logging.format",
                format!("expected json or text, got {:?}", self.format),
            );
        }
    }
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: default_level(),
            format: default_format(),
        }
    }
}

fn default_level() -> String {
    "info".to_owned()
}
fn default_format() -> String {
    "json".to_owned()
}

/// Parse `:6432`, `0.0.0.0:6432` or `127.0.0.1:6432` into a socket address.
/// Whether keys may be fetched from `url`: https, or plain http on loopback only (keys fetched
/// in clear could be forged).
pub fn jwks_url_is_safe(url: &str) -> bool {
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|prefix| {
            url.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
        });
    url.starts_with("https://") || loopback
}

pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    let full = if text.starts_with(':') {
        format!("0.0.0.0{text}")
    } else {
        text.to_owned()
    };
    full.parse()
        .map_err(|_| format!("expected host:port or :port, got {text:?}"))
}

impl Validate for ConnectorConfig {
    fn validate(&self, p: &mut Problems) {
        let mut ports = HashSet::new();
        match parse_listen_addr(&self.listen_addr) {
            Ok(addr) => {
                ports.insert(addr.port() as u32);
            }
            Err(e) => p.push("listen_addr", e),
        }
        match parse_listen_addr(&self.health_addr) {
            Ok(addr) if !ports.insert(addr.port() as u32) => p.push(
                "health_addr",
                format!("port {} is already used by listen_addr", addr.port()),
            ),
            Ok(_) => {}
            Err(e) => p.push("health_addr", e),
        }
        if let Some(data) = &self.policy_data
            && !data.is_object()
        {
            p.push(
                "policy_data",
                "expected a mapping (it becomes the data document policies read, e.g. {config: {ip_allowlist: {cidrs: [10.0.0.0/8]}}})",
            );
        }
        if !matches!(self.default_action.as_str(), "allow" | "block") {
            p.push(
                "default_action",
                format!("expected allow or block, got {:?}", self.default_action),
            );
        }
        if self.masking.hash_key.as_deref() == Some("") {
            p.push(
                "masking.hash_key",
                "must not be empty (omit it to disable the hash strategy)",
            );
        }
        let mut names = HashSet::new();
        for (i, identity) in self.identities.iter().enumerate() {
            if identity.name.is_empty() {
                p.push(format!("identities[{i}].name"), "must not be empty");
            } else if !names.insert(identity.name.as_str()) {
                p.push(
                    format!("identities[{i}].name"),
                    format!("duplicate identity {:?}", identity.name),
                );
            }
            if identity.password.is_empty() && identity.ssh_keys.is_empty() {
                p.push(
                    format!("identities[{i}].password"),
                    "must not be empty (or give ssh_keys for an SSH-only identity)",
                );
            }
            crate::ssh::validate_keys(&identity.ssh_keys, &format!("identities[{i}].ssh_keys"), p);
        }
        if let Some(jwt) = &self.auth.jwt {
            if jwt.issuers.is_empty() {
                p.push("auth.jwt.issuers", "expected at least one issuer");
            }
            for (i, issuer) in jwt.issuers.iter().enumerate() {
                if issuer.jwks_file.is_none() == issuer.jwks_url.is_none() {
                    p.push(
                        format!("auth.jwt.issuers[{i}]"),
                        "set exactly one of jwks_file or jwks_url",
                    );
                }
                if issuer
                    .jwks_url
                    .as_deref()
                    .is_some_and(|url| !jwks_url_is_safe(url))
                {
                    p.push(
                        format!("auth.jwt.issuers[{i}].jwks_url"),
                        "expected an https:// URL (plain http only on loopback: keys fetched in clear could be forged)",
                    );
                }
                if issuer.audience.is_empty() {
                    p.push(
                        format!("auth.jwt.issuers[{i}].audience"),
                        "must not be empty",
                    );
                }
            }
        }
        if let Some(cp) = &self.control_plane {
            if !(cp.url.starts_with("http://") || cp.url.starts_with("https://")) {
                p.push(
                    "control_plane.url",
                    format!("expected an http:// or https:// URL, got {:?}", cp.url),
                );
            }
            if cp.sync_interval.is_zero() {
                p.push("control_plane.sync_interval", "must be greater than 0");
            }
            if cp.state_dir.is_empty() {
                p.push("control_plane.state_dir", "must not be empty");
            }
        }
        if let Some(telemetry) = &self.telemetry {
            let endpoint = &telemetry.otlp_endpoint;
            let host = endpoint
                .strip_prefix("http://")
                .or_else(|| endpoint.strip_prefix("https://"));
            match host {
                None => p.push(
                    "telemetry.otlp_endpoint",
                    format!("expected an http:// or https:// URL, got {endpoint:?}"),
                ),
                Some(rest) if rest.is_empty() || rest.starts_with([':', '/']) => p.push(
                    "telemetry.otlp_endpoint",
                    format!("expected a host after the scheme, got {endpoint:?}"),
                ),
                Some(_) => {}
            }
            if telemetry.service_name.is_empty() {
                p.push("telemetry.service_name", "must not be empty");
            }
        }
        let mut resource_names = HashSet::new();
        for (i, r) in self.resources.iter().enumerate() {
            let at = |field: &str| format!("resources[{i}].{field}");
            if r.name.is_empty() {
                p.push(at("name"), "must not be empty");
            } else if !resource_names.insert(r.name.as_str()) {
                p.push(at("name"), format!("duplicate resource {:?}", r.name));
            }
            if r.host.is_empty() {
                p.push(at("host"), "must not be empty");
            }
            if !(1..=65535).contains(&r.port) {
                p.push(at("port"), format!("expected 1-65535, got {}", r.port));
            }
            match r.listen_port {
                Some(port) if !(1..=65535).contains(&port) => {
                    p.push(at("listen_port"), format!("expected 1-65535, got {port}"))
                }
                Some(port) if !ports.insert(port) => p.push(
                    at("listen_port"),
                    format!("port {port} is already used by another listener"),
                ),
                None if r.protocol == Protocol::Mcp => p.push(
                    at("listen_port"),
                    "required for MCP resources (they ride on their own HTTP listener)",
                ),
                _ => {}
            }
            if r.pool.max_connections == 0 {
                p.push(at("pool.max_connections"), "expected at least 1, got 0");
            }
            if r.pool.acquire_timeout.is_zero() {
                p.push(at("pool.acquire_timeout"), "must be greater than zero");
            }
            if r.pool.mode == PoolMode::Transaction && r.protocol != Protocol::Postgres {
                p.push(
                    at("pool.mode"),
                    format!(
                        "transaction pooling is only for postgres resources (this one is {})",
                        r.protocol.as_str()
                    ),
                );
            }
            if r.password.is_some() && r.username.is_none() {
                p.push(at("username"), "required when password is set");
            }
            match (&r.auth_source, r.protocol) {
                (Some(_), protocol) if protocol != Protocol::Mongodb => p.push(
                    at("auth_source"),
                    format!(
                        "only for mongodb resources (this one is {})",
                        protocol.as_str()
                    ),
                ),
                (Some(source), _) if source.is_empty() => {
                    p.push(at("auth_source"), "must not be empty (omit it for admin)")
                }
                (Some(_), _) if r.username.is_none() => {
                    p.push(at("username"), "required when auth_source is set")
                }
                _ => {}
            }
            crate::http::validate_resource(r, &at, p);
            crate::ssh::validate_resource(r, &at, p);
            if r.pin_tools && r.protocol != Protocol::Mcp {
                p.push(
                    at("pin_tools"),
                    format!(
                        "only for mcp resources (this one is {})",
                        r.protocol.as_str()
                    ),
                );
            } else if r.pin_tools && self.control_plane.is_none() {
                p.push(
                    at("pin_tools"),
                    "needs control_plane: changed tool definitions are approved there",
                );
            }
            if let Some(path) = &r.endpoint_path
                && !path.starts_with('/')
            {
                p.push(
                    at("endpoint_path"),
                    format!("expected a path starting with /, got {path:?}"),
                );
            }
        }
        for (i, policy) in self.policies.iter().enumerate() {
            if !matches!(
                policy.stage.as_str(),
                "session" | "pre_request" | "post_request"
            ) {
                p.push(
                    format!("policies[{i}].stage"),
                    format!(
                        "expected session, pre_request or post_request, got {:?}",
                        policy.stage
                    ),
                );
            }
            if policy.path.is_empty() {
                p.push(format!("policies[{i}].path"), "must not be empty");
            }
        }
        if self.tls.enabled {
            if self.tls.cert_file.is_none() {
                p.push("tls.cert_file", "required when tls.enabled is true");
            }
            if self.tls.key_file.is_none() {
                p.push("tls.key_file", "required when tls.enabled is true");
            }
        }
        crate::http::validate_trusted_proxies(&self.trusted_proxies, p);
        crate::http::validate_shared_hosts(&self.resources, p);
        self.ssh.validate(p);
        self.logging.validate(p);
    }
}

#[cfg(test)]
#[path = "connector_tests.rs"]
mod tests;
