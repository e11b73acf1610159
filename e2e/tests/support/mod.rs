//! The world of the end-to-end suites: a throwaway PostgreSQL, the real gate-control and
//! gate-connector processes, curl against the API and tokio-postgres through the connector.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gate_testkit::{PgAuth, Postgres, PostgresOptions, free_port};
use serde_json::{Value, json};

pub const ROOT: &str = "e2e-root-key-0123456789";

/// A binary the workspace build produced next to this test's executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct World {
    pub dir: tempfile::TempDir,
    pub pg: Postgres,
    pub control_port: u16,
    pub control: Option<Proc>,
    pub connector_port: u16,
    pub health_port: u16,
    pub connector: Option<Proc>,
    pub connector_key: String,
    /// `control_plane.labels` of the connector (a YAML flow map).
    pub connector_labels: String,
}

impl World {
    pub fn new() -> Self {
        Self::with_postgres(PgAuth::Trust)
    }

    /// [`World::new`] with PostgreSQL authenticating TCP clients by `auth`.
    pub fn with_postgres(auth: PgAuth) -> Self {
        let pg = Postgres::start(PostgresOptions {
            auth,
            databases: vec!["appdb".into()],
            seed: vec![("appdb".into(), "create table items (id int primary key, name text); insert into items select g, 'item ' || g from generate_series(1, 10) g;".into())],
            ..PostgresOptions::default()
        })
        .unwrap();
        let mut world = World {
            dir: tempfile::tempdir().unwrap(),
            pg,
            control_port: free_port().unwrap(),
            control: None,
            connector_port: free_port().unwrap(),
            health_port: free_port().unwrap(),
            connector: None,
            connector_key: String::new(),
            connector_labels: "{}".into(),
        };
        world.start_control();
        let (code, key) = world.api(
            "POST",
            "/api/v1/api-keys",
            Some(json!({"name": "edge", "role": "connector"})),
        );
        assert_eq!(code, 201, "{key}");
        world.connector_key = key["secret"].as_str().unwrap().to_owned();
        world
    }

    pub fn start_control(&mut self) {
        let config = self.dir.path().join("control.yaml");
        std::fs::write(
            &config,
            format!(
                "listen_addr: 127.0.0.1:{port}\npublic_url: http://127.0.0.1:{port}\napi_key: {ROOT}\ndatabase: {{sqlite_path: {dir}/gate.db}}\nrecording: {{dir: {dir}/control-recordings}}\nlogging: {{level: warn}}\n",
                dir = self.dir.path().display(),
                port = self.control_port,
            ),
        )
        .unwrap();
        let child = Command::new(binary("gate-control"))
            .arg("--config")
            .arg(&config)
            .env_remove("GATE_INSECURE")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.control = Some(Proc(child));
        wait_for(Duration::from_secs(30), "gate-control healthy", || {
            self.api("GET", "/health", None).0 == 200
        });
    }

    /// `kill -9`: no graceful shutdown.
    pub fn kill_control(&mut self) {
        let mut control = self.control.take().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(control.0.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let _ = control.0.wait();
    }

    pub fn start_connector(&mut self, local_policy: &str) {
        self.start_connector_with(local_policy, "");
    }

    /// [`World::start_connector`] with `extra` appended to the configuration (it ends with the
    /// resource list, so `extra` may start with more resources).
    pub fn start_connector_with(&mut self, local_policy: &str, extra: &str) {
        let policy = self.dir.path().join("local.rego");
        std::fs::write(&policy, local_policy).unwrap();
        let config = self.dir.path().join("connector.yaml");
        let health = self.health_port;
        std::fs::write(
            &config,
            format!(
                r#"listen_addr: 127.0.0.1:{port}
health_addr: 127.0.0.1:{health}
default_action: allow
identities:
  - {{name: app, password: app-pw, groups: [engineering]}}
  - {{name: alice, password: alice-pw}}
auth:
  jwt:
    issuers:
      - {{issuer: "http://127.0.0.1:{control}", jwks_url: "http://127.0.0.1:{control}/.well-known/jwks.json", audience: gate}}
control_plane:
  url: http://127.0.0.1:{control}
  token: {key}
  name: e2e-edge
  sync_interval: 1s
  sync_jitter: 100ms
  state_dir: {dir}/connector-state
  labels: {labels}
delivery:
  dead_letter_dir: {dir}/spool
recording:
  dir: {dir}/connector-recordings
policies:
  - {{path: {policy}, stage: pre_request}}
resources:
  - {{name: primary-db, protocol: postgres, host: 127.0.0.1, port: {pg}, database: appdb, username: postgres, password: unused}}
{extra}"#,
                port = self.connector_port,
                control = self.control_port,
                key = self.connector_key,
                dir = self.dir.path().display(),
                policy = policy.display(),
                pg = self.pg.port(),
                labels = self.connector_labels,
            ),
        )
        .unwrap();
        self.run_connector(&config, self.connector_port);
    }

    /// Start a gate-connector, registered as `e2e-mcp`, whose one resource is the MCP resource
    /// `agent-tools` in front of `upstream`, served on `listen`; `resource` adds fields to it
    /// (`, pin_tools: true`), `extra` top-level config (identities, policies, recording).
    pub fn start_mcp_connector(&mut self, upstream: u16, listen: u16, resource: &str, extra: &str) {
        let config = self.dir.path().join("connector-mcp.yaml");
        std::fs::write(
            &config,
            format!(
                r#"listen_addr: 127.0.0.1:{port}
health_addr: 127.0.0.1:{health}
default_action: allow
control_plane:
  url: http://127.0.0.1:{control}
  token: {key}
  name: e2e-mcp
  sync_interval: 1s
  sync_jitter: 100ms
  state_dir: {dir}/connector-state
delivery:
  dead_letter_dir: {dir}/spool
resources:
  - {{name: agent-tools, protocol: mcp, host: 127.0.0.1, port: {upstream}, listen_port: {listen}{resource}}}
{extra}"#,
                port = self.connector_port,
                health = self.health_port,
                control = self.control_port,
                key = self.connector_key,
                dir = self.dir.path().display(),
            ),
        )
        .unwrap();
        self.run_connector(&config, listen);
    }

    /// Start gate-connector with `config` and wait until `port` accepts connections.
    pub fn run_connector(&mut self, config: &Path, port: u16) {
        let child = Command::new(binary("gate-connector"))
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.connector = Some(Proc(child));
        wait_for(Duration::from_secs(30), "gate-connector listening", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    pub fn stop_connector(&mut self) {
        let mut connector = self.connector.take().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(connector.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = connector.0.wait().unwrap();
        assert!(status.success(), "{status}");
    }

    /// An API call with the root key over curl.
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut curl = Command::new("curl");
        curl.args(["-s", "-m", "5", "-w", "\n%{http_code}", "-X", method, "-H"])
            .arg(format!("Authorization: Bearer {ROOT}"));
        if let Some(body) = body {
            curl.args(["-H", "Content-Type: application/json", "-d"])
                .arg(body.to_string());
        }
        let out = curl
            .arg(format!("http://127.0.0.1:{}{path}", self.control_port))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (
            code.parse().unwrap_or(0),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }

    pub async fn client(
        &self,
        user: &str,
        password: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(self.connector_port)
            .user(user)
            .password(password)
            .dbname("primary-db")
            .connect(tokio_postgres::NoTls)
            .await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Statement events (`pre_request`) stored for `identity`.
    pub fn statement_events(&self, identity: &str) -> Vec<Value> {
        let (code, body) = self.api(
            "GET",
            &format!("/api/v1/audit?stage=pre_request&identity={identity}&limit=1000"),
            None,
        );
        assert_eq!(code, 200, "{body}");
        let mut events = body["events"].as_array().unwrap().clone();
        let mut cursor = body["next_cursor"].as_str().unwrap_or_default().to_owned();
        while !cursor.is_empty() {
            let (_, page) = self.api(
                "GET",
                &format!(
                    "/api/v1/audit?stage=pre_request&identity={identity}&limit=1000&cursor={cursor}"
                ),
                None,
            );
            events.extend(page["events"].as_array().unwrap().iter().cloned());
            cursor = page["next_cursor"].as_str().unwrap_or_default().to_owned();
        }
        events
    }
}

pub fn wait_for(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub const ALLOW_ALL: &str = "package local\n\npre_request := {\"action\": \"allow\"}\n";
pub const NO_SELECT: &str = "package managed\n\npre_request := {\"action\": \"block\", \"reason\": \"selects are paused\"} if {\n    input.query.type == \"select\"\n    input.query.tables[_] == \"items\"\n}\n";
