//! `make bench`: a full stage evaluation of `policies/example.rego`, input
//! construction included, against a naive baseline (clone the interpreter,
//! set the input from JSON, `eval_rule`) measured in the same run.
//!
//! Target: median ≤ 5 µs per evaluation on the 2-core dev machine.

use std::hint::black_box;
use std::time::Instant;

use gate_policy::{
    ConnectionInfo, EngineOptions, PolicyEngine, PolicyInput, PolicySpec, QueryInfo, ResourceInfo,
    SessionInput, Stage, TimeInfo, UserInfo,
};

const TARGET_US: f64 = 5.0;
const BATCHES: usize = 101;

/// Median per-iteration time in microseconds over `BATCHES` batches of `per_batch` calls.
fn median_us(per_batch: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..per_batch {
        f(); // warm up pools and caches
    }
    let mut samples: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            start.elapsed().as_secs_f64() * 1e6 / per_batch as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[BATCHES / 2]
}

fn request(kind: &str, raw: &str) -> PolicyInput {
    PolicyInput {
        time: Some(TimeInfo::now()),
        resource: Some(ResourceInfo {
            name: "primary-db".into(),
            protocol: "postgres".into(),
            host: Some("localhost".into()),
            port: Some(5432),
            database: Some("appdb".into()),
            ..Default::default()
        }),
        user: Some(UserInfo {
            sub: Some("user-123".into()),
            name: Some("alice".into()),
            email: Some("alice@example.com".into()),
            groups: vec!["engineering".into(), "oncall".into()],
            kind: Some("user".into()),
            issuer: Some("https://idp.example".into()),
        }),
        connection: Some(ConnectionInfo {
            id: Some("c-1".into()),
            client_ip: Some("127.0.0.1".into()),
            client_port: Some(50123),
            tls: false,
            application_name: Some("psql".into()),
            database: Some("appdb".into()),
            db_user: Some("app".into()),
        }),
        query: Some(QueryInfo {
            raw: raw.into(),
            kind: kind.into(),
            tables: vec!["customers".into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn main() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies/example.rego");
    let source = std::fs::read_to_string(path).expect("policies/example.rego");
    let engine = PolicyEngine::new(
        vec![PolicySpec::from_source("example", path, source.clone())],
        EngineOptions::default(),
    )
    .expect("example.rego compiles");

    let select = request("select", "select * from customers");
    let drop = request("drop", "drop table customers");
    // What the connector does per statement: the session parts are built
    // once per connection; time and query are built for every statement.
    let session = SessionInput::new(&select);
    let per_statement = |stage: Stage, template: &PolicyInput| {
        let request = PolicyInput {
            time: Some(TimeInfo::now()),
            query: template.query.clone(),
            ..Default::default()
        };
        engine.evaluate(stage, "primary-db", &session.request(stage, &request))
    };
    let gate_pre = median_us(2_000, || {
        black_box(per_statement(Stage::PreRequest, black_box(&select)));
    });
    let gate_block = median_us(2_000, || {
        black_box(per_statement(Stage::PreRequest, black_box(&drop)));
    });
    let gate_post = median_us(2_000, || {
        black_box(per_statement(Stage::PostRequest, black_box(&select)));
    });
    let cold = median_us(2_000, || {
        black_box(engine.evaluate_input(Stage::PreRequest, "primary-db", black_box(&select)));
    });

    let build = median_us(2_000, || {
        black_box(black_box(&select).to_value(Stage::PreRequest));
    });
    let prebuilt = select.to_value(Stage::PreRequest);
    let eval_only = median_us(2_000, || {
        black_box(engine.evaluate(Stage::PreRequest, "primary-db", black_box(&prebuilt)));
    });

    let mut naive = regorus::Engine::new();
    naive
        .add_policy("example.rego".into(), source)
        .expect("example.rego parses");
    let json = r#"{"stage":"pre_request","resource":{"name":"primary-db","protocol":"postgres","host":"localhost","port":5432,"database":"appdb"},"user":{"sub":"user-123","name":"alice","email":"alice@example.com","groups":["engineering","oncall"],"kind":"user"},"connection":{"id":"c-1","client_ip":"127.0.0.1","client_port":50123,"tls":false,"application_name":"psql"},"query":{"raw":"select * from customers","type":"select","tables":["customers"]}}"#;
    let baseline = median_us(200, || {
        let mut e = naive.clone();
        e.set_input_json(json).expect("valid input");
        black_box(
            e.eval_rule("data.formal.v2.pre_request".into())
                .expect("evaluates"),
        );
    });

    println!("policy evaluation, policies/example.rego, median of {BATCHES} batches");
    println!("per statement (session input reused, time + query built, evaluate, combine):");
    println!("  gate pre_request (allow)   {gate_pre:8.2} µs");
    println!("  gate pre_request (block)   {gate_block:8.2} µs");
    println!("  gate post_request (mask)   {gate_post:8.2} µs");
    println!("  whole input built per call   {cold:8.2} µs (no session reuse)");
    println!("    of which input construction {build:6.2} µs");
    println!("    of which evaluate+combine   {eval_only:6.2} µs");
    println!("  naive clone+json+eval_rule {baseline:8.2} µs");
    println!("  speed-up vs naive          {:8.1}x", baseline / gate_pre);
    let worst = gate_pre.max(gate_block).max(gate_post);
    if worst <= TARGET_US {
        println!("  target ≤ {TARGET_US} µs: PASS ({worst:.2} µs)");
    } else {
        println!("  target ≤ {TARGET_US} µs: FAIL ({worst:.2} µs)");
        std::process::exit(1);
    }
}
