//! The connector in Kubernetes sidecar mode as the injector runs it (`--sidecar`, configured from
//! the environment only) against the real gate-control and PostgreSQL: a resource defined
//! through the API afterwards appears on its loopback port with the upstream credentials from
//! mounted files, a client without a password is the pod's workload (policy input and audit),
//! and an identity token still identifies its holder instead.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gate_testkit::{PgAuth, free_port};
use serde_json::{Value, json};
use support::{Proc, World, binary, wait_for};

const WORKLOAD: &str = "system:serviceaccount:shop:orders";

/// Only the `orders` service account of `shop`, as a workload, may use the resource.
const WORKLOAD_ONLY: &str = r#"package sidecar

workload if {
    input.user.kind == "workload"
    input.user.sub == "system:serviceaccount:shop:orders"
    "system:serviceaccounts:shop" in input.user.groups
}

session := {"action": "allow"} if workload

pre_request := {"action": "allow"} if workload

post_request := {"action": "allow"} if workload
"#;

/// Start `gate-connector --sidecar` with the environment the injector sets.
fn start_sidecar(world: &World, port: u16, health: u16, credentials: &Path) -> Proc {
    let state = world.dir.path().join("sidecar-state");
    let child = Command::new(binary("gate-connector"))
        .arg("--sidecar")
        .env(
            "GATE_CONTROL_URL",
            format!("http://127.0.0.1:{}", world.control_port),
        )
        .env("GATE_CONTROL_TOKEN", &world.connector_key)
        .env("GATE_SIDECAR_RESOURCES", format!("orders-db:{port}"))
        .env("GATE_HEALTH_ADDR", format!("127.0.0.1:{health}"))
        .env("GATE_STATE_DIR", &state)
        .env("GATE_CREDENTIALS_DIR", credentials)
        .env("POD_NAMESPACE", "shop")
        .env("POD_SERVICE_ACCOUNT", "orders")
        .env("HOSTNAME", "orders-api-7d9f-x2k4p")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Proc(child)
}

async fn connect(
    port: u16,
    user: &str,
    password: Option<&str>,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user(user)
        .dbname("orders-db");
    if let Some(password) = password {
        config.password(password);
    }
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Audit events of `identity`, once one matches `found`.
fn audited(world: &World, identity: &str, found: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (_, body) = world.api(
            "GET",
            &format!("/api/v1/audit?identity={identity}&limit=100"),
            None,
        );
        if let Some(event) = body["events"]
            .as_array()
            .and_then(|events| events.iter().find(|e| found(e)))
        {
            return event.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no matching audit event for {identity}: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_serves_an_api_defined_resource_to_its_workload_and_tokens_still_win() {
    let world = World::with_postgres(PgAuth::Scram {
        password: "upstream-pw".into(),
    });
    let (code, body) = world.api(
        "POST",
        "/api/v1/policies",
        Some(json!({"name": "orders-workload-only", "rego": WORKLOAD_ONLY, "state": "active", "targets": ["orders-db"]})),
    );
    assert_eq!(code, 201, "{body}");
    // What the injector mounts from the Resource's credentials Secret.
    let credentials = world.dir.path().join("credentials");
    std::fs::create_dir_all(credentials.join("orders-db")).unwrap();
    std::fs::write(credentials.join("orders-db/username"), "postgres\n").unwrap();
    std::fs::write(credentials.join("orders-db/password"), "upstream-pw").unwrap();

    let (port, health) = (free_port().unwrap(), free_port().unwrap());
    let mut sidecar = start_sidecar(&world, port, health, &credentials);
    // The resource is not defined yet: the sidecar waits for it and serves nothing.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        sidecar.0.try_wait().unwrap().is_none(),
        "the sidecar keeps waiting"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    let (code, body) = world.api(
        "POST",
        "/api/v1/resources",
        Some(json!({"name": "orders-db", "protocol": "postgres", "host": "127.0.0.1", "port": world.pg.port(), "database": "appdb"})),
    );
    assert_eq!(code, 201, "{body}");
    wait_for(
        Duration::from_secs(30),
        "the resource on its loopback port",
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    let ready = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{health}/readyz"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ready.stdout), "200");

    // No password: the workload. Upstream, Gate logs in with the mounted credentials.
    let started = Instant::now();
    let app = loop {
        match connect(port, "orders-api", None).await {
            Ok(client) => break client,
            Err(e) => assert!(
                started.elapsed() < Duration::from_secs(10),
                "the workload's login failed: {e:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rows = app.query("select count(*) from items", &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 10);
    let event = audited(&world, WORKLOAD, |e| {
        e["stage"] == "pre_request" && e["action"] == "allow"
    });
    assert_eq!(event["details"]["identity_kind"], "workload", "{event}");
    assert_eq!(event["resource"], "orders-db");
    assert_eq!(event["connector"], "orders-api-7d9f-x2k4p", "{event}");

    // A presented identity token wins over the workload: carol, whom the policy does not allow.
    let (_, carol) = world.api(
        "POST",
        "/api/v1/identities",
        Some(json!({"name": "carol", "email": "carol@example.com"})),
    );
    let (code, issued) = world.api(
        "POST",
        &format!(
            "/api/v1/identities/{}/tokens",
            carol["id"].as_str().unwrap()
        ),
        Some(json!({"ttl_seconds": 300})),
    );
    assert_eq!(code, 200, "{issued}");
    let token = issued["token"].as_str().unwrap();
    let refused = connect(port, "token", Some(token)).await.unwrap_err();
    let db = refused.as_db_error().unwrap();
    assert!(
        db.message()
            .contains("no policy allows access to orders-db"),
        "{db:?}"
    );
    let event = audited(&world, "carol", |e| e["stage"] == "session");
    assert_eq!(event["action"], "block", "{event}");
    assert_eq!(event["details"]["identity_kind"], "user", "{event}");
    // A bad token is a failed login, not a fall back to the workload.
    let bad = connect(port, "token", Some("not-a-token"))
        .await
        .unwrap_err();
    assert_eq!(bad.as_db_error().unwrap().code().code(), "28P01", "{bad:?}");

    // SIGTERM is a clean stop.
    let id = sidecar.0.id();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(id).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(sidecar.0.wait().unwrap().success());
}

#[test]
fn a_sidecar_without_its_environment_names_what_is_missing() {
    let out = Command::new(binary("gate-connector"))
        .args(["--sidecar", "--check"])
        .env_remove("GATE_CONTROL_URL")
        .env_remove("GATE_CONTROL_TOKEN")
        .env_remove("POD_NAMESPACE")
        .env_remove("POD_SERVICE_ACCOUNT")
        .env("GATE_SIDECAR_RESOURCES", "orders-db")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in [
        "GATE_CONTROL_URL",
        "GATE_CONTROL_TOKEN",
        "POD_NAMESPACE",
        "POD_SERVICE_ACCOUNT",
    ] {
        assert!(stderr.contains(&format!("{name}: is required")), "{stderr}");
    }
    assert!(stderr.contains("is not name:port"), "{stderr}");
}
