//! The policy input (`input.*`), the same shape for every protocol, built as a
//! `regorus::Value` straight from typed structs (no JSON round trip).
//!
//! ```text
//! stage, time {unix_ns, rfc3339, weekday, hour}
//! resource {name, protocol, host, port, database, labels}
//! user {sub, name, email, groups[], kind, issuer}
//! connection {id, client_ip, client_port, tls, application_name, database, db_user}
//! query {raw, type, statement, tables[], columns[], operation, database, collection, filter, pipeline[]}
//! http {method, path, query, headers}
//! mcp {method, namespace, action, operation, target, tool_name, resource_uri, prompt_name, arguments,
//!      client {name, version, user_agent}}
//! ssh {request, command, subsystem, pty {term, cols, rows}, env, forward {host, port}}
//! response {columns[{name, table, type}], status}
//! grant {id, expires_at, scopes[]}
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use regorus::Value;
use serde::Serialize;

/// The three policy stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Before a session is established.
    Session,
    /// Before a request is forwarded upstream.
    PreRequest,
    /// Before a response reaches the client.
    PostRequest,
}

impl Stage {
    /// Every stage, in evaluation order.
    pub const ALL: [Stage; 3] = [Stage::Session, Stage::PreRequest, Stage::PostRequest];

    /// The rule name (`session`, `pre_request`, `post_request`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Session => "session",
            Stage::PreRequest => "pre_request",
            Stage::PostRequest => "post_request",
        }
    }

    /// The stage's position in [`Stage::ALL`] (0, 1, 2).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "session" => Ok(Stage::Session),
            "pre_request" => Ok(Stage::PreRequest),
            "post_request" => Ok(Stage::PostRequest),
            other => Err(format!(
                "unknown stage {other:?} (expected session, pre_request or post_request)"
            )),
        }
    }
}

/// Wall-clock facts, so policies need not call `time.now_ns()`.
#[derive(Debug, Clone, Default)]
pub struct TimeInfo {
    pub unix_ns: i64,
}

impl TimeInfo {
    /// The current time.
    pub fn now() -> Self {
        let ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Self {
            unix_ns: i64::try_from(ns).unwrap_or(i64::MAX),
        }
    }
}

/// The resource being accessed.
#[derive(Debug, Clone, Default)]
pub struct ResourceInfo {
    pub name: String,
    pub protocol: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// Who is asking.
#[derive(Debug, Clone, Default)]
pub struct UserInfo {
    pub sub: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub groups: Vec<String>,
    /// `user`, `workload` or `api_key`.
    pub kind: Option<String>,
    pub issuer: Option<String>,
}

/// The client connection.
#[derive(Debug, Clone, Default)]
pub struct ConnectionInfo {
    pub id: Option<String>,
    pub client_ip: Option<String>,
    pub client_port: Option<u16>,
    pub tls: bool,
    pub application_name: Option<String>,
    pub database: Option<String>,
    pub db_user: Option<String>,
}

/// A parsed statement or command (SQL and MongoDB).
#[derive(Debug, Clone, Default)]
pub struct QueryInfo {
    pub raw: String,
    /// Statement kind in lower case (`select`, `drop`, …, `unknown`).
    pub kind: String,
    pub statement: Option<String>,
    pub tables: Vec<String>,
    pub columns: Vec<String>,
    pub operation: Option<String>,
    pub database: Option<String>,
    pub collection: Option<String>,
    pub filter: Option<serde_json::Value>,
    /// MongoDB `aggregate`: the pipeline's stage names in order (`$match`, `$group`); absent when empty.
    pub pipeline: Vec<String>,
}

/// An HTTP request (HTTP and MCP).
#[derive(Debug, Clone, Default)]
pub struct HttpInfo {
    pub method: String,
    pub path: String,
    /// The query string, parsed: every name with all its values in order.
    pub query: BTreeMap<String, Vec<String>>,
    /// Lower-case names; `authorization` and `cookie` are never included.
    pub headers: BTreeMap<String, String>,
    /// The `Host` (or `:authority`) the client asked for.
    pub host: Option<String>,
    /// The parsed JSON body of a JSON request under the size limit.
    pub body: Option<serde_json::Value>,
}

/// An MCP message.
#[derive(Debug, Clone, Default)]
pub struct McpInfo {
    pub method: String,
    pub namespace: Option<String>,
    pub action: Option<String>,
    pub operation: Option<String>,
    pub target: Option<String>,
    pub tool_name: Option<String>,
    pub resource_uri: Option<String>,
    pub prompt_name: Option<String>,
    pub arguments: Option<serde_json::Value>,
    /// Agent provenance: what the MCP client declares itself to be.
    pub client: Option<McpClient>,
}

/// The MCP client as it declares itself (`clientInfo`) and its HTTP
/// `User-Agent`: declared, never verified.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct McpClient {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// An SSH channel request.
#[derive(Debug, Clone, Default)]
pub struct SshInfo {
    /// What is asked: `exec`, `shell`, `subsystem`, `pty`, `env`, `forward_local`,
    /// `forward_remote`, `agent`, `x11`.
    pub request: String,
    pub command: Option<String>,
    pub subsystem: Option<String>,
    /// The channel's terminal (from its `pty-req`), on that request and every later one.
    pub pty: Option<SshPty>,
    /// The channel's environment so far (and, on an `env` request, the variable asked for).
    pub env: BTreeMap<String, String>,
    /// Port forwarding: the target (`-L`) or the listening address (`-R`).
    pub forward: Option<SshForward>,
}

/// A channel's terminal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshPty {
    pub term: String,
    pub cols: u32,
    pub rows: u32,
}

/// A port-forwarding target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshForward {
    pub host: String,
    pub port: u32,
}

/// One output column of a response.
#[derive(Debug, Clone, Default)]
pub struct ResponseColumn {
    pub name: String,
    pub table: Option<String>,
    pub type_name: Option<String>,
}

/// What the upstream answered (post_request).
#[derive(Debug, Clone, Default)]
pub struct ResponseInfo {
    pub columns: Vec<ResponseColumn>,
    pub status: Option<i64>,
    /// HTTP: response headers, lower-case names (`set-cookie` never included).
    pub headers: BTreeMap<String, String>,
    /// HTTP: the media type of the response body (`application/json`), without parameters.
    pub content_type: Option<String>,
}

/// The access grant that admitted this session.
#[derive(Debug, Clone, Default)]
pub struct GrantInfo {
    pub id: String,
    pub expires_at: Option<String>,
    pub scopes: Vec<serde_json::Value>,
}

/// Everything a policy can see; absent parts are left out of `input`.
#[derive(Debug, Clone, Default)]
pub struct PolicyInput {
    pub time: Option<TimeInfo>,
    pub resource: Option<ResourceInfo>,
    pub user: Option<UserInfo>,
    pub connection: Option<ConnectionInfo>,
    pub query: Option<QueryInfo>,
    pub http: Option<HttpInfo>,
    pub mcp: Option<McpInfo>,
    pub ssh: Option<SshInfo>,
    pub response: Option<ResponseInfo>,
    pub grant: Option<GrantInfo>,
}

/// Object keys of the input document, allocated once and shared (cloning a
/// key is a reference-count increment, not a string allocation).
macro_rules! input_keys {
    ($($field:ident = $text:literal),* $(,)?) => {
        struct Keys { $($field: Value,)* }
        static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys { $($field: Value::from($text),)* });
        /// The shared key for `name`, or a fresh one for names not in the table.
        fn key(name: &str) -> Value {
            let keys = &*KEYS;
            match name {
                $($text => keys.$field.clone(),)*
                other => Value::from(other),
            }
        }
    };
}

input_keys! {
    stage = "stage", time = "time", unix_ns = "unix_ns", rfc3339 = "rfc3339", weekday = "weekday",
    hour = "hour", resource = "resource", name = "name", protocol = "protocol", host = "host",
    port = "port", database = "database", labels = "labels", user = "user", sub = "sub",
    email = "email", groups = "groups", kind = "kind", issuer = "issuer",
    connection = "connection", id = "id", client_ip = "client_ip", client_port = "client_port",
    tls = "tls", application_name = "application_name", db_user = "db_user", query = "query",
    raw = "raw", type_ = "type", statement = "statement", tables = "tables", columns = "columns",
    operation = "operation", collection = "collection", filter = "filter", http = "http",
    method = "method", path = "path", headers = "headers", mcp = "mcp", namespace = "namespace",
    action = "action", target = "target", tool_name = "tool_name", resource_uri = "resource_uri",
    prompt_name = "prompt_name", arguments = "arguments", ssh = "ssh", command = "command",
    subsystem = "subsystem", pty = "pty", env = "env", response = "response", status = "status",
    grant = "grant", expires_at = "expires_at", scopes = "scopes", table = "table",
    body = "body", content_type = "content_type", client = "client", version = "version",
    user_agent = "user_agent",
}

/// Builds a Rego object field by field, skipping absent values.
#[derive(Default)]
struct Obj(BTreeMap<Value, Value>);

impl Obj {
    fn set(&mut self, name: &str, value: impl Into<Value>) -> &mut Self {
        self.0.insert(key(name), value.into());
        self
    }
    fn opt<T: Into<Value>>(&mut self, key: &str, value: Option<T>) -> &mut Self {
        if let Some(v) = value {
            self.set(key, v);
        }
        self
    }
    fn done(&mut self) -> Value {
        Value::from(std::mem::take(&mut self.0))
    }
}

fn strings(items: &[String]) -> Value {
    Value::from(
        items
            .iter()
            .map(|s| Value::from(s.as_str()))
            .collect::<Vec<_>>(),
    )
}

fn string_map(map: &BTreeMap<String, String>) -> Value {
    Value::from(
        map.iter()
            .map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str())))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn multi_map(map: &BTreeMap<String, Vec<String>>) -> Value {
    Value::from(
        map.iter()
            .map(|(k, vs)| (Value::from(k.as_str()), strings(vs)))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn opt_str(s: &Option<String>) -> Option<Value> {
    s.as_deref().map(Value::from)
}

const WEEKDAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];

impl TimeInfo {
    fn to_value(&self) -> Value {
        let secs = self.unix_ns.div_euclid(1_000_000_000);
        let days = secs.div_euclid(86_400);
        let second_of_day = secs.rem_euclid(86_400);
        let weekday = WEEKDAYS
            .get(usize::try_from(days.rem_euclid(7)).unwrap_or(0))
            .copied()
            .unwrap_or("Thursday");
        let (y, m, d) = civil_from_days(days);
        let rfc3339 = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            second_of_day / 3600,
            second_of_day % 3600 / 60,
            second_of_day % 60
        );
        Obj::default()
            .set("unix_ns", self.unix_ns)
            .set("rfc3339", rfc3339)
            .set("weekday", weekday)
            .set("hour", second_of_day / 3600)
            .done()
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (UTC).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl PolicyInput {
    /// The `input` document for `stage`.
    pub fn to_value(&self, stage: Stage) -> Value {
        let mut input = Obj::default();
        input.set("stage", stage.as_str());
        self.session_parts(&mut input);
        self.request_parts(&mut input);
        input.done()
    }

    /// The parts that stay fixed for a whole session.
    fn session_parts(&self, input: &mut Obj) {
        if let Some(r) = &self.resource {
            input.set(
                "resource",
                Obj::default()
                    .set("name", r.name.as_str())
                    .set("protocol", r.protocol.as_str())
                    .opt("host", opt_str(&r.host))
                    .opt("port", r.port.map(i64::from))
                    .opt("database", opt_str(&r.database))
                    .set("labels", string_map(&r.labels))
                    .done(),
            );
        }
        if let Some(u) = &self.user {
            input.set(
                "user",
                Obj::default()
                    .opt("sub", opt_str(&u.sub))
                    .opt("name", opt_str(&u.name))
                    .opt("email", opt_str(&u.email))
                    .set("groups", strings(&u.groups))
                    .opt("kind", opt_str(&u.kind))
                    .opt("issuer", opt_str(&u.issuer))
                    .done(),
            );
        }
        if let Some(c) = &self.connection {
            input.set(
                "connection",
                Obj::default()
                    .opt("id", opt_str(&c.id))
                    .opt("client_ip", opt_str(&c.client_ip))
                    .opt("client_port", c.client_port.map(i64::from))
                    .set("tls", c.tls)
                    .opt("application_name", opt_str(&c.application_name))
                    .opt("database", opt_str(&c.database))
                    .opt("db_user", opt_str(&c.db_user))
                    .done(),
            );
        }
        if let Some(g) = &self.grant {
            input.set(
                "grant",
                Obj::default()
                    .set("id", g.id.as_str())
                    .opt("expires_at", opt_str(&g.expires_at))
                    .set(
                        "scopes",
                        Value::from(
                            g.scopes
                                .iter()
                                .cloned()
                                .map(Value::from)
                                .collect::<Vec<_>>(),
                        ),
                    )
                    .done(),
            );
        }
    }

    /// The parts that change with every request.
    fn request_parts(&self, input: &mut Obj) {
        if let Some(t) = &self.time {
            input.set("time", t.to_value());
        }
        if let Some(q) = &self.query {
            input.set(
                "query",
                Obj::default()
                    .set("raw", q.raw.as_str())
                    .set("type", q.kind.as_str())
                    .opt("statement", opt_str(&q.statement))
                    .set("tables", strings(&q.tables))
                    .set("columns", strings(&q.columns))
                    .opt("operation", opt_str(&q.operation))
                    .opt("database", opt_str(&q.database))
                    .opt("collection", opt_str(&q.collection))
                    .opt("filter", q.filter.clone().map(Value::from))
                    .opt(
                        "pipeline",
                        (!q.pipeline.is_empty()).then(|| strings(&q.pipeline)),
                    )
                    .done(),
            );
        }
        if let Some(h) = &self.http {
            input.set(
                "http",
                Obj::default()
                    .set("method", h.method.as_str())
                    .set("path", h.path.as_str())
                    .set("query", multi_map(&h.query))
                    .set("headers", string_map(&h.headers))
                    .opt("host", opt_str(&h.host))
                    .opt("body", h.body.clone().map(Value::from))
                    .done(),
            );
        }
        if let Some(m) = &self.mcp {
            input.set(
                "mcp",
                Obj::default()
                    .set("method", m.method.as_str())
                    .opt("namespace", opt_str(&m.namespace))
                    .opt("action", opt_str(&m.action))
                    .opt("operation", opt_str(&m.operation))
                    .opt("target", opt_str(&m.target))
                    .opt("tool_name", opt_str(&m.tool_name))
                    .opt("resource_uri", opt_str(&m.resource_uri))
                    .opt("prompt_name", opt_str(&m.prompt_name))
                    .opt("arguments", m.arguments.clone().map(Value::from))
                    .opt(
                        "client",
                        m.client.as_ref().map(|c| {
                            Obj::default()
                                .opt("name", opt_str(&c.name))
                                .opt("version", opt_str(&c.version))
                                .opt("user_agent", opt_str(&c.user_agent))
                                .done()
                        }),
                    )
                    .done(),
            );
        }
        if let Some(s) = &self.ssh {
            input.set(
                "ssh",
                Obj::default()
                    .set("request", s.request.as_str())
                    .opt("command", opt_str(&s.command))
                    .opt("subsystem", opt_str(&s.subsystem))
                    .opt(
                        "pty",
                        s.pty.as_ref().map(|p| {
                            Obj::default()
                                .set("term", p.term.as_str())
                                .set("cols", u64::from(p.cols))
                                .set("rows", u64::from(p.rows))
                                .done()
                        }),
                    )
                    .set("env", string_map(&s.env))
                    .opt(
                        "forward",
                        s.forward.as_ref().map(|f| {
                            Obj::default()
                                .set("host", f.host.as_str())
                                .set("port", u64::from(f.port))
                                .done()
                        }),
                    )
                    .done(),
            );
        }
        if let Some(r) = &self.response {
            let columns = r
                .columns
                .iter()
                .map(|c| {
                    Obj::default()
                        .set("name", c.name.as_str())
                        .opt("table", opt_str(&c.table))
                        .opt("type", opt_str(&c.type_name))
                        .done()
                })
                .collect::<Vec<_>>();
            input.set(
                "response",
                Obj::default()
                    .set("columns", Value::from(columns))
                    .opt("status", r.status)
                    .set("headers", string_map(&r.headers))
                    .opt("content_type", opt_str(&r.content_type))
                    .done(),
            );
        }
    }
}

/// The session-constant part of the input (resource, user, connection,
/// grant) built once; each request adds only its own parts.
///
/// Building this once per session and [`SessionInput::request`] per
/// statement is what keeps input construction off the per-statement budget.
#[derive(Debug, Clone)]
pub struct SessionInput {
    parts: Vec<(Value, Value)>,
}

impl SessionInput {
    /// Prebuild the session parts of `input` (request parts are ignored).
    pub fn new(input: &PolicyInput) -> Self {
        let mut obj = Obj::default();
        input.session_parts(&mut obj);
        Self {
            parts: obj.0.into_iter().collect(),
        }
    }

    /// The full `input` for one request: the shared session parts plus the
    /// request parts (time, query, http, mcp, ssh, response) of `request`.
    pub fn request(&self, stage: Stage, request: &PolicyInput) -> Value {
        let mut obj = Obj::default();
        obj.0.extend(self.parts.iter().cloned());
        obj.set("stage", stage.as_str());
        request.request_parts(&mut obj);
        obj.done()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_facts_are_derived_in_utc() {
        // 2026-11-23T14:05:09Z is a Monday.
        let t = TimeInfo {
            unix_ns: 1_795_442_709_000_000_000,
        };
        let v = t.to_value();
        assert_eq!(v["rfc3339"], Value::from("2026-11-23T14:05:09Z"));
        assert_eq!(v["weekday"], Value::from("Monday"));
        assert_eq!(v["hour"], Value::from(14_i64));
        let epoch = TimeInfo { unix_ns: 0 }.to_value();
        assert_eq!(epoch["rfc3339"], Value::from("1970-01-01T00:00:00Z"));
        assert_eq!(epoch["weekday"], Value::from("Thursday"));
    }

    #[test]
    fn session_input_plus_request_equals_the_whole_input() {
        let whole = PolicyInput {
            time: Some(TimeInfo { unix_ns: 42 }),
            resource: Some(ResourceInfo {
                name: "db".into(),
                protocol: "postgres".into(),
                ..Default::default()
            }),
            user: Some(UserInfo {
                groups: vec!["a".into()],
                ..Default::default()
            }),
            connection: Some(ConnectionInfo {
                client_ip: Some("127.0.0.1".into()),
                ..Default::default()
            }),
            grant: Some(GrantInfo {
                id: "g1".into(),
                ..Default::default()
            }),
            query: Some(QueryInfo {
                raw: "select 1".into(),
                kind: "select".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let session = SessionInput::new(&whole);
        let request = PolicyInput {
            time: whole.time.clone(),
            query: whole.query.clone(),
            ..Default::default()
        };
        assert_eq!(
            session.request(Stage::PreRequest, &request),
            whole.to_value(Stage::PreRequest)
        );
        // Session parts of the request argument are not used twice or overridden.
        let v = session.request(Stage::Session, &PolicyInput::default());
        assert_eq!(v["resource"]["name"], Value::from("db"));
        assert_eq!(v["stage"], Value::from("session"));
    }

    #[test]
    fn input_has_the_documented_shape_and_omits_absent_parts() {
        let input = PolicyInput {
            user: Some(UserInfo {
                name: Some("alice".into()),
                groups: vec!["admins".into()],
                ..Default::default()
            }),
            query: Some(QueryInfo {
                raw: "DROP TABLE t".into(),
                kind: "drop".into(),
                tables: vec!["t".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let json: serde_json::Value =
            serde_json::from_str(&input.to_value(Stage::PreRequest).to_json_str().unwrap())
                .unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "stage": "pre_request",
                "user": {"name": "alice", "groups": ["admins"]},
                "query": {"raw": "DROP TABLE t", "type": "drop", "tables": ["t"], "columns": []}
            })
        );
    }
}
