//! A MongoDB stack for the tests: a seeded `nx-27017` upstream, Gate in
//! front of it (a dedicated `listen_port` and the shared listener), and
//! pymongo scripts run with the test venv's python.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use gate_connector::protocols::mongodb::codec::{
    Frame, MAX_MESSAGE, Message, OpMsg, decode_frame, decode_message, encode_msg,
};
use gate_testkit::{Nx27017, venv_python};

use super::{GateRun, start_gate};

/// An identity whose name and password are not ASCII; SASLprep maps the
/// password (ROMAN NUMERAL NINE, a soft hyphen, `é`) to `IXsécret`.
pub(crate) const NON_ASCII_IDENTITY: &str =
    "  - {name: \"jörg\", password: \"\\u2168\\u00ADsécret\", groups: [engineering]}\n";

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
         {NON_ASCII_IDENTITY}\
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

/// One whole message from `stream`, as Gate's codec frames it.
pub(crate) fn read_frame(stream: &mut TcpStream) -> Frame {
    let mut buf = bytes::BytesMut::new();
    loop {
        if let Some(frame) = decode_frame(&mut buf, MAX_MESSAGE).unwrap() {
            assert!(buf.is_empty(), "one message at a time");
            return frame;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "Gate closed before answering");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One whole message from `stream`, decoded by Gate's own codec: its `responseTo` and body.
pub(crate) fn read_message(stream: &mut TcpStream) -> (i32, Message) {
    let frame = read_frame(stream);
    (frame.header.response_to, decode_message(&frame).unwrap())
}

/// Send `body` as an OP_MSG with request id `id` and `flags`.
pub(crate) fn send_command(stream: &mut TcpStream, id: i32, flags: u32, body: bson::Document) {
    let mut out = bytes::BytesMut::new();
    let msg = OpMsg {
        flags,
        body,
        sequences: Vec::new(),
    };
    encode_msg(&mut out, id, 0, &msg);
    stream.write_all(&out).unwrap();
}

/// Send `body` as an OP_MSG with request id `id` and read the answer's body.
pub(crate) fn command(stream: &mut TcpStream, id: i32, body: bson::Document) -> bson::Document {
    send_command(stream, id, 0, body);
    let (response_to, reply) = read_message(stream);
    assert_eq!(response_to, id);
    match reply {
        Message::Msg(msg) => msg.body,
        other => panic!("expected OP_MSG, got {other:?}"),
    }
}

/// A policy file in `dir` allowing every stage by default, plus `rules`.
pub(crate) fn allowing(dir: &std::path::Path, rules: &str) -> std::path::PathBuf {
    let path = dir.join("policy.rego");
    std::fs::write(
        &path,
        format!(
            "package inline\nimport rego.v1\ndefault session := {{\"action\": \"allow\"}}\n\
             default pre_request := {{\"action\": \"allow\"}}\ndefault post_request := {{\"action\": \"allow\"}}\n{rules}"
        ),
    )
    .unwrap();
    path
}

/// A stack whose policy allows every stage by default, plus `rules`; the
/// directory holding the policy lives as long as the stack is used.
pub(crate) fn start_allowing(rules: &str) -> (tempfile::TempDir, MongoStack) {
    let dir = tempfile::tempdir().unwrap();
    let policy = allowing(dir.path(), rules);
    let stack = start(&super::all_stages(&policy));
    (dir, stack)
}

/// A pymongo script through Gate's resource port as `app`.
pub(crate) fn as_app(stack: &MongoStack, body: &str) -> String {
    through_gate(stack.port, "app", "app-pw", "", body)
}
