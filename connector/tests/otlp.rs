//! OTLP trace export end to end: the real `gate-connector` binary in front of
//! a real PostgreSQL, exporting to an OTLP/gRPC receiver run by the test;
//! psql's statements arrive as `gate.request` children of one `gate.session`
//! span (flushed at SIGTERM), and a collector that is down never holds up a
//! session.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gate_testkit::{PgAuth, free_port};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;

use common::{PSQL, example_policy, text, upstream};

/// An OTLP/gRPC trace receiver keeping every export request.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Receiver {
    /// Start serving on a free port of a runtime of its own; (runtime, port).
    fn start(&self) -> (tokio::runtime::Runtime, u16) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let service = TraceServiceServer::new(self.clone());
        runtime.spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (runtime, port)
    }

    /// Every span received, with its resource's `service.name`.
    fn spans(&self) -> Vec<(String, Span)> {
        let mut spans = Vec::new();
        for request in self.0.lock().unwrap().iter() {
            for resource_spans in &request.resource_spans {
                let service = resource_spans
                    .resource
                    .as_ref()
                    .and_then(|r| attr(&r.attributes, "service.name"))
                    .unwrap_or_default();
                for scope in &resource_spans.scope_spans {
                    for span in &scope.spans {
                        spans.push((service.clone(), span.clone()));
                    }
                }
            }
        }
        spans
    }
}

/// A string (or integer, as text) attribute.
fn attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    match value.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

/// The gate-connector binary with `telemetry` pointing at `endpoint`, in
/// front of `pg_port`; (process, client port) once it listens.
fn connector(dir: &Path, pg_port: u16, endpoint: &str) -> (Child, u16) {
    let port = free_port().unwrap();
    let health = free_port().unwrap();
    let config = format!(
        "listen_addr: \"127.0.0.1:{port}\"\nhealth_addr: \"127.0.0.1:{health}\"\n\
         identities:\n  - {{name: app, password: app, groups: [engineering]}}\n\
         resources:\n  - {{name: primary-db, protocol: postgres, host: 127.0.0.1, port: {pg_port}, database: appdb, username: gate_app, password: gate-app-pw}}\n\
         {}\
         telemetry:\n  otlp_endpoint: \"{endpoint}\"\n  service_name: gate-otlp-test\n",
        example_policy()
    );
    let path = dir.join("connector.yaml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_gate-connector"))
        .arg("--config")
        .arg(&path)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    // The PostgreSQL listener's line comes last: `listening` with `protocol`.
    while !log
        .lines()
        .any(|l| l.contains("listening") && l.contains("postgres"))
    {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("gate-connector exited early:\n{log}");
        }
        log.push_str(&line);
    }
    // Keep draining stderr so the process never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (child, port)
}

fn psql(port: u16, commands: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(PSQL);
    cmd.env("PGPASSWORD", "app")
        .env("PGCONNECT_TIMEOUT", "10")
        .args(["-X", "-A", "-t", "-w", "-h", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(["-U", "app", "-d", "appdb"]);
    for c in commands {
        cmd.args(["-c", c]);
    }
    cmd.output().unwrap()
}

/// SIGTERM `child` and wait for it to exit; how long that took.
fn terminate(child: &mut Child) -> Duration {
    let started = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "gate-connector exited with {status}");
            return started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("gate-connector did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sessions_and_statements_arrive_as_spans_at_the_collector() {
    let pg = upstream(PgAuth::Trust, false);
    let receiver = Receiver::default();
    let (_runtime, otlp_port) = receiver.start();
    let dir = tempfile::tempdir().unwrap();
    let (mut gate, port) = connector(
        dir.path(),
        pg.port(),
        &format!("http://127.0.0.1:{otlp_port}"),
    );
    let out = psql(
        port,
        &["select name from customers", "drop table customers"],
    );
    assert_eq!(text(&out.stdout).trim(), "Alice", "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("destructive queries are not allowed"),
        "{}",
        text(&out.stderr)
    );
    // The session span closes when psql leaves; SIGTERM flushes the queue.
    std::thread::sleep(Duration::from_millis(200));
    terminate(&mut gate);

    let spans = receiver.spans();
    let sessions: Vec<&(String, Span)> = spans
        .iter()
        .filter(|(_, s)| s.name == "gate.session")
        .collect();
    assert_eq!(sessions.len(), 1, "{spans:#?}");
    let (service, session) = sessions[0];
    assert_eq!(service, "gate-otlp-test");
    let session_attr = |key| attr(&session.attributes, key);
    assert_eq!(session_attr("gate.resource").as_deref(), Some("primary-db"));
    assert_eq!(session_attr("gate.identity").as_deref(), Some("app"));
    assert_eq!(session_attr("gate.protocol").as_deref(), Some("postgres"));
    assert_eq!(session_attr("gate.action").as_deref(), Some("allow"));
    assert_eq!(session_attr("client.address").as_deref(), Some("127.0.0.1"));
    assert!(session_attr("client.port").is_some());
    assert!(session.parent_span_id.is_empty(), "a root span");

    let requests: Vec<&Span> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s.name == "gate.request")
        .collect();
    let kinds: Vec<Option<String>> = requests
        .iter()
        .map(|r| attr(&r.attributes, "gate.statement_kind"))
        .collect();
    assert_eq!(
        kinds,
        [Some("select".into()), Some("drop".into())],
        "{requests:#?}"
    );
    for request in &requests {
        assert_eq!(request.trace_id, session.trace_id);
        assert_eq!(request.parent_span_id, session.span_id);
        assert!(request.start_time_unix_nano >= session.start_time_unix_nano);
        assert!(request.end_time_unix_nano <= session.end_time_unix_nano);
        assert!(request.end_time_unix_nano >= request.start_time_unix_nano);
        assert!(
            attr(&request.attributes, "db.query.text").is_none()
                && !format!("{request:?}").contains("customers"),
            "no statement text in a span: {request:?}"
        );
    }
    let (select, drop) = (requests[0], requests[1]);
    assert_eq!(
        attr(&select.attributes, "gate.pre_request").as_deref(),
        Some("allow")
    );
    assert!(
        attr(&select.attributes, "gate.post_request").is_some(),
        "the result's action: {select:?}"
    );
    assert_eq!(attr(&select.attributes, "gate.rows").as_deref(), Some("1"));
    assert_eq!(
        attr(&drop.attributes, "gate.pre_request").as_deref(),
        Some("block")
    );
    assert_eq!(attr(&drop.attributes, "gate.post_request"), None);
}

#[test]
fn a_collector_that_is_down_never_holds_up_a_session() {
    let pg = upstream(PgAuth::Trust, false);
    // A port nothing listens on.
    let closed = free_port().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut gate, port) = connector(dir.path(), pg.port(), &format!("http://127.0.0.1:{closed}"));
    let started = Instant::now();
    for _ in 0..3 {
        let out = psql(port, &["select name from customers", "select 1"]);
        assert_eq!(
            text(&out.stdout).lines().collect::<Vec<_>>(),
            ["Alice", "1"],
            "{}",
            text(&out.stderr)
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "three sessions took {:?}",
        started.elapsed()
    );
    let stopped = terminate(&mut gate);
    assert!(
        stopped < Duration::from_secs(15),
        "shutdown waited {stopped:?} on the collector"
    );
}
