//! The Python verification example of `docs/webhook-signatures.md`, taken from the document as
//! written, runs as a real receiver (`python3 -m http.server`-style, standard library only):
//! Gate's deliveries pass it, a forged signature and a stale timestamp do not.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Db, start_cp_yaml};
use serde_json::{Value, json};

/// The first ```python block after the "### Python" heading.
fn python_example() -> String {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/webhook-signatures.md"),
    )
    .unwrap();
    let section = &doc[doc.find("### Python").unwrap()..];
    let start = section.find("```python\n").unwrap() + "```python\n".len();
    let end = section[start..].find("```").unwrap();
    section[start..start + end].to_owned()
}

const HARNESS: &str = r#"
import http.server, sys, json
SECRET = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ok = verify(SECRET, self.headers.get("X-Gate-Timestamp"), self.headers.get("X-Gate-Signature"), body)
        print(json.dumps({"ok": ok, "delivery": self.headers.get("X-Gate-Delivery")}), flush=True)
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

struct Python(Child);

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_python_verifier_accepts_gate_and_refuses_forgeries() {
    let cp = start_cp_yaml(
        Db::Sqlite,
        "delivery:\n  max_attempts: 2\n  initial_backoff: 50ms\n  poll_interval: 50ms\n",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("receiver.py");
    std::fs::write(&script, python_example() + HARNESS).unwrap();
    let port = gate_testkit::free_port().unwrap();
    let url = format!("http://127.0.0.1:{port}/hook");
    let (status, created) = cp
        .root(
            "POST",
            "/api/v1/webhooks",
            None,
            Some(&json!({"url": url, "events": ["access.requested"]}).to_string()),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let _python = Python(
        Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(&secret)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "python receiver did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Forged and stale requests, straight at the receiver: 401.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (timestamp, signature) in [
        (now.to_string(), "v1=00".to_owned()),
        (
            (now - 600).to_string(),
            sign(&secret, &(now - 600).to_string(), b"{}"),
        ),
        (
            now.to_string(),
            sign("whsec_wrong", &now.to_string(), b"{}"),
        ),
    ] {
        let code = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "POST",
                "--data-binary",
                "{}",
            ])
            .args(["-H", &format!("X-Gate-Timestamp: {timestamp}")])
            .args(["-H", &format!("X-Gate-Signature: {signature}")])
            .arg(&url)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&code.stdout), "401");
    }

    // Gate's own delivery passes the documented check (anything else would be a 401 → retry → dead).
    let (_, resource) = cp
        .root(
            "POST",
            "/api/v1/resources",
            None,
            Some(r#"{"name":"db","protocol":"postgres","host":"h","port":5432}"#),
        )
        .await;
    let body = json!({"subject": "alice", "resource_id": resource["id"], "duration_seconds": 60});
    let (status, _) = cp
        .root(
            "POST",
            "/api/v1/access-requests",
            None,
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(status, 201);
    let start = Instant::now();
    loop {
        let (_, list) = cp.root("GET", "/api/v1/deliveries", None, None).await;
        let d: &Value = &list["deliveries"][0];
        match d["state"].as_str() {
            Some("delivered") => break,
            Some("dead") => panic!("the python verifier refused Gate's signature: {d}"),
            _ => {}
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("v1={hex}")
}
