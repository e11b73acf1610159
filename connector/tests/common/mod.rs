//! Shared test stack: a real PostgreSQL 15 upstream and Gate in front of it, in-process.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)] // in tests a panic is the failure report

pub(crate) mod jwt;
pub(crate) mod mongo;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use gate_config::{ConnectorConfig, load_str};
use gate_connector::audit::AuditSink;
use gate_connector::server::{Gate, serve};
use gate_testkit::{MariaDb, MariaDbOptions, PgAuth, Postgres, PostgresOptions};

pub(crate) const PSQL: &str = "/usr/lib/postgresql/15/bin/psql";
pub(crate) const PGBENCH: &str = "/usr/lib/postgresql/15/bin/pgbench";

pub(crate) fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A real upstream plus Gate in front of it, serving on a free port.
pub(crate) struct Stack {
    pub(crate) health_port: u16,
    pub(crate) pg: Postgres,
    pub(crate) port: u16,
    pub(crate) audit: PathBuf,
    _dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

pub(crate) const SEED: &str = "
    create role gate_app login password 'gate-app-pw';
    create table customers (id int primary key, name text, email text, ssn text);
    insert into customers values (1, 'Alice', 'alice@example.com', '123-45-6789');
    grant all on customers to gate_app;
    grant create on schema public to gate_app;
";

pub(crate) fn start(auth: PgAuth, policy_yaml: &str) -> Stack {
    start_with(auth, "", policy_yaml, None)
}

/// Like [`start`], with extra fields for the resource (`, pool: {...}`).
pub(crate) fn start_with(
    auth: PgAuth,
    resource_extra: &str,
    policy_yaml: &str,
    tls: Option<gate_connector::tls::TlsFiles>,
) -> Stack {
    start_on(upstream(auth, false), resource_extra, policy_yaml, tls)
}

/// A seeded upstream PostgreSQL (optionally serving TLS).
pub(crate) fn upstream(auth: PgAuth, tls: bool) -> Postgres {
    Postgres::start(PostgresOptions {
        auth,
        tls,
        databases: vec!["appdb".into()],
        seed: vec![("appdb".into(), SEED.into())],
        ..Default::default()
    })
    .unwrap()
}

/// Gate in front of `pg`.
pub(crate) fn start_on(
    pg: Postgres,
    resource_extra: &str,
    policy_yaml: &str,
    tls: Option<gate_connector::tls::TlsFiles>,
) -> Stack {
    let yaml = format!(
        "identities:\n  - {{name: app, password: app, groups: [engineering]}}\n  - {{name: boss, password: boss, groups: [admins]}}\n\
         resources:\n  - {{name: primary-db, protocol: postgres, host: 127.0.0.1, port: {}, database: appdb, username: gate_app, password: gate-app-pw{resource_extra}}}\n{policy_yaml}",
        pg.port()
    );
    let gate = start_gate(&yaml, tls, Vec::new());
    Stack {
        health_port: gate.health_port,
        pg,
        port: gate.port,
        audit: gate.audit,
        _dir: gate.dir,
        _runtime: gate.runtime,
    }
}

/// Gate, in-process, serving a config.
pub(crate) struct GateRun {
    /// The shared listener.
    pub(crate) port: u16,
    pub(crate) health_port: u16,
    pub(crate) audit: PathBuf,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) runtime: tokio::runtime::Runtime,
}

/// Start Gate with the config `yaml` on a free shared port, plus `extra`
/// listeners already bound (a MySQL resource's `listen_port`).
pub(crate) fn start_gate(
    yaml: &str,
    tls: Option<gate_connector::tls::TlsFiles>,
    extra: Vec<std::net::TcpListener>,
) -> GateRun {
    let dir = tempfile::tempdir().unwrap();
    let (gate, audit) = gate_from_yaml(yaml, tls, dir.path());
    let runtime = test_runtime();
    // As `main` does: keys of issuers given by URL are fetched before the first client.
    if let Some(jwt) = gate.jwt.as_ref().filter(|j| j.fetches()) {
        let problems = runtime.block_on(jwt.refresh());
        assert!(problems.is_empty(), "{problems:?}");
    }
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let health = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let health_port = health.local_addr().unwrap().port();
    runtime.spawn(gate_connector::health::serve(
        health,
        gate.health.clone(),
        gate.metrics.clone(),
    ));
    gate.health.set_ready();
    for std_listener in extra {
        std_listener.set_nonblocking(true).unwrap();
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener).unwrap()
        };
        runtime.spawn(serve(listener, gate.clone()));
    }
    runtime.spawn(serve(listener, gate));
    GateRun {
        port,
        health_port,
        audit,
        dir,
        runtime,
    }
}

pub(crate) fn example_policy() -> String {
    all_stages(&repo().join("policies/example.rego"))
}

/// The `policies:` config loading the policy file at `path` for all three stages.
pub(crate) fn all_stages(path: &Path) -> String {
    let path = path.display();
    format!(
        "policies:\n  - {{path: \"{path}\", stage: session}}\n  - {{path: \"{path}\", stage: pre_request}}\n  - {{path: \"{path}\", stage: post_request}}\n"
    )
}

pub(crate) fn psql(
    stack: &Stack,
    user: &str,
    password: &str,
    database: &str,
    commands: &[&str],
) -> Output {
    psql_with(stack, user, password, database, &[], commands)
}

/// Like [`psql`], with extra environment variables (`PGAPPNAME`, `PGOPTIONS`, …).
pub(crate) fn psql_with(
    stack: &Stack,
    user: &str,
    password: &str,
    database: &str,
    env: &[(&str, &str)],
    commands: &[&str],
) -> Output {
    let mut cmd = Command::new(PSQL);
    cmd.envs(env.iter().copied());
    cmd.env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .args([
            "-X",
            "-A",
            "-t",
            "-w",
            "-h",
            "127.0.0.1",
            "-p",
            &stack.port.to_string(),
            "-U",
            user,
            "-d",
            database,
        ]);
    for c in commands {
        cmd.args(["-c", c]);
    }
    cmd.output().unwrap()
}

/// GET a path on the health port with curl: (status code, body).
pub(crate) fn http_get(port: u16, path: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (code.to_owned(), body.to_owned())
}

/// The audit file once `done` holds for its text (the sink writes in the
/// background, after the bytes an event concerns), or after 5 s.
pub(crate) fn audit_when(stack: &Stack, done: impl Fn(&str) -> bool) -> String {
    audit_file_when(&stack.audit, done)
}

/// The audit file at `path` once `done` holds for its text, or after 5 s.
pub(crate) fn audit_file_when(path: &Path, done: impl Fn(&str) -> bool) -> String {
    let started = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap();
        if done(&text) || started.elapsed() > std::time::Duration::from_secs(5) {
            return text;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Run `body` with a tokio-postgres client logged in to Gate as `app`.
pub(crate) fn with_tokio_postgres<F>(stack: &Stack, body: impl FnOnce(tokio_postgres::Client) -> F)
where
    F: std::future::Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let conn = format!(
            "host=127.0.0.1 port={} user=app password=app dbname=appdb",
            stack.port
        );
        let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        body(client).await;
    });
}

/// pgbench's tables at scale 1 in `appdb`, readable and writable by Gate's upstream user.
pub(crate) fn pgbench_init(stack: &Stack) {
    let init = Command::new(PGBENCH)
        .args(["-i", "-q", "-s", "1", "-h"])
        .arg(stack.pg.socket_dir())
        .args([
            "-p",
            &stack.pg.port().to_string(),
            "-U",
            "postgres",
            "appdb",
        ])
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", text(&init.stderr));
    direct(
        stack,
        "grant all on all tables in schema public to gate_app",
    );
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn direct(stack: &Stack, sql: &str) -> String {
    stack.pg.psql("appdb", sql).unwrap()
}

/// A connector started in-process from a whole YAML config (any protocols),
/// its shared listener on a free port (`listen_addr` is replaced).
pub(crate) struct GateOnly {
    pub(crate) port: u16,
    pub(crate) audit: PathBuf,
    pub(crate) gate: Arc<Gate>,
    _dir: tempfile::TempDir,
    pub(crate) runtime: tokio::runtime::Runtime,
}

pub(crate) fn start_yaml(yaml: &str, tls: Option<gate_connector::tls::TlsFiles>) -> GateOnly {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("listen_addr: \"127.0.0.1:0\"\n{yaml}");
    let (gate, audit) = gate_from_yaml(&yaml, tls, dir.path());
    let runtime = test_runtime();
    let listeners = runtime
        .block_on(gate_connector::server::bind_all(&gate.config))
        .unwrap();
    let port = listeners[0].0.port();
    for (_, listener, serves) in listeners {
        runtime.spawn(gate_connector::server::serve_bound(
            listener,
            serves,
            gate.clone(),
        ));
    }
    GateOnly {
        port,
        audit,
        gate,
        _dir: dir,
        runtime,
    }
}

impl GateOnly {
    /// The audit log once `done` holds for it (or after 5 s).
    pub(crate) fn audit_when(&self, done: impl Fn(&str) -> bool) -> String {
        audit_file_when(&self.audit, done)
    }
}

/// A connector's shared state from a YAML config, auditing to `dir/audit.jsonl`.
pub(crate) fn gate_from_yaml(
    yaml: &str,
    tls: Option<gate_connector::tls::TlsFiles>,
    dir: &Path,
) -> (Arc<Gate>, PathBuf) {
    let config: ConnectorConfig =
        load_str("test.yaml", yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let policies =
        gate_connector::startup::compile_policies(&config).unwrap_or_else(|e| panic!("{e:?}"));
    let audit = dir.join("audit.jsonl");
    let sink = AuditSink::new(Box::new(std::fs::File::create(&audit).unwrap()));
    let jwt = gate_connector::jwt::JwtVerifier::load(&config.auth).unwrap();
    // `recording.dir` as the connector's main wires it.
    let recordings = match &config.recording {
        Some(dir) => gate_connector::recording::Recordings::new(&dir.dir).unwrap(),
        None => gate_connector::recording::Recordings::disabled(),
    };
    let gate = Arc::new(
        Gate::new(config, policies, sink)
            .with_tls(tls)
            .with_jwt(jwt)
            .with_recordings(recordings),
    );
    (gate, audit)
}

/// A two-thread runtime for a connector under test.
pub(crate) fn test_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A throwaway MariaDB with a `shop` database, the `gate_app` account Gate
/// logs in with, and `seed` applied.
pub(crate) fn mariadb_shop(seed: Vec<String>) -> MariaDb {
    MariaDb::start(MariaDbOptions {
        databases: vec!["shop".into()],
        users: vec![("gate_app".into(), "gate-app-pw".into())],
        seed,
    })
    .unwrap()
}

/// Run the test venv's python with `args` (a script file or `-c` and a
/// script, then its arguments); its stdout lines. It must succeed.
pub(crate) fn python_lines(args: &[&str]) -> Vec<String> {
    let out = Command::new(gate_testkit::venv_python().unwrap())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}
