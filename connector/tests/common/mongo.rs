//! A MongoDB stack for the tests: a seeded `nx-27017` upstream, Gate in
//! front of it (a dedicated `listen_port` and the shared listener), and
//! pymongo scripts run with the test venv's python.

use std::process::Command;

use gate_testkit::{Nx27017, venv_python};

use super::{GateRun, start_gate};

/// Customers seeded directly into the upstream.
const SEED: &str = r#"
db = pymongo.MongoClient(f"mongodb://127.0.0.1:{PORT}/?directConnection=true").shop
db.customers.insert_many([
    {"_id": i, "name": f"user{i}", "email": f"user{i}@example.com", "ssn": f"123-45-{6780 + i}",
     "contact": {"email": f"backup{i}@example.org", "phone": "555"}}
    for i in range(1, 6)
])
print("seeded")
"#;

pub(crate) struct MongoStack {
    pub(crate) gate: GateRun,
    /// The resource's own port.
    pub(crate) port: u16,
    pub(crate) nx: Nx27017,
}

pub(crate) fn start(policy_yaml: &str) -> MongoStack {
    start_with("", policy_yaml, None)
}

/// [`start`] with more config (`auth:`) and client TLS.
pub(crate) fn start_with(
    extra_yaml: &str,
    policy_yaml: &str,
    tls: Option<gate_connector::tls::TlsFiles>,
) -> MongoStack {
    let nx = Nx27017::start().unwrap();
    let seeded = python(&SEED.replace("{PORT}", &nx.port().to_string()), &[]);
    assert_eq!(seeded.trim(), "seeded");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let yaml = format!(
        "identities:\n  - {{name: app, password: app-pw, groups: [engineering]}}\n  - {{name: boss, password: boss-pw, groups: [admins]}}\n\
         resources:\n  - {{name: events-mongo, protocol: mongodb, host: 127.0.0.1, port: {}, database: shop, listen_port: {port}}}\n{extra_yaml}{policy_yaml}",
        nx.port()
    );
    let gate = start_gate(&yaml, tls, vec![listener]);
    MongoStack { gate, port, nx }
}

/// Run a pymongo script with the venv's python; its stdout (it must succeed).
pub(crate) fn python(script: &str, env: &[(&str, String)]) -> String {
    let out = Command::new(venv_python().unwrap())
        .args(["-c", &format!("import json, pymongo\n{script}")])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A pymongo script with `client` connected through Gate as `user`.
pub(crate) fn through_gate(
    port: u16,
    user: &str,
    password: &str,
    options: &str,
    body: &str,
) -> String {
    let script = format!(
        "client = pymongo.MongoClient(\"mongodb://{user}:{password}@127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=5000{options}\")\n\
         db = client.shop\n{body}"
    );
    python(&script, &[])
}
