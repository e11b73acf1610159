//! A local fake of Slack's Web API (`chat.postMessage`, `chat.update`, `users.lookupByEmail`,
//! `users.info`) that records every call, and Slack's request signing done by PyPI `slack_sdk`
//! (`SignatureVerifier.generate_signature`) from the test venv.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};

/// One recorded call: method, bearer token, and the body (JSON, or the form as an object).
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub token: String,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    /// Slack user id → profile email (users.info), and the reverse for users.lookupByEmail.
    users: HashMap<String, String>,
    /// Answer `{"ok": false, "error": …}` to chat.postMessage while set.
    failing: Option<String>,
    next_ts: u64,
}

#[derive(Clone)]
pub struct FakeSlack {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl FakeSlack {
    pub async fn start(users: &[(&str, &str)]) -> FakeSlack {
        let inner = Arc::new(Mutex::new(Inner {
            users: users
                .iter()
                .map(|(id, email)| ((*id).to_owned(), (*email).to_owned()))
                .collect(),
            next_ts: 1,
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/api/{method}", post(handle))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeSlack { addr, inner }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    pub fn calls(&self, method: &str) -> Vec<Call> {
        let inner = self.inner.lock().unwrap();
        inner
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    pub fn fail_posts(&self, error: Option<&str>) {
        self.inner.lock().unwrap().failing = error.map(str::to_owned);
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::Json<Value> {
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let body: Value = if form {
        let pairs: serde_json::Map<String, Value> = form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        Value::Object(pairs)
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut inner = inner.lock().unwrap();
    inner.calls.push(Call {
        method: method.clone(),
        token,
        body: body.clone(),
    });
    let answer = match method.as_str() {
        "chat.postMessage" => match inner.failing.clone() {
            Some(error) => json!({"ok": false, "error": error}),
            None => {
                inner.next_ts += 1;
                json!({"ok": true, "channel": body["channel"], "ts": format!("1700000000.{:06}", inner.next_ts)})
            }
        },
        "chat.update" => json!({"ok": true, "channel": body["channel"], "ts": body["ts"]}),
        "users.lookupByEmail" => {
            let email = body["email"].as_str().unwrap_or_default();
            match inner.users.iter().find(|(_, e)| e.as_str() == email) {
                Some((id, _)) => json!({"ok": true, "user": {"id": id}}),
                None => json!({"ok": false, "error": "users_not_found"}),
            }
        }
        "users.info" => {
            let user = body["user"].as_str().unwrap_or_default();
            match inner.users.get(user) {
                Some(email) => {
                    json!({"ok": true, "user": {"id": user, "profile": {"email": email}}})
                }
                None => json!({"ok": false, "error": "user_not_found"}),
            }
        }
        _ => json!({"ok": false, "error": "unknown_method"}),
    };
    axum::Json(answer)
}

/// The test venv's python (scripts/test-venv.sh; `GATE_TEST_VENV` overrides).
pub fn venv_python() -> PathBuf {
    gate_testkit::venv_python().unwrap_or_else(|e| panic!("{e}"))
}

/// `X-Slack-Signature` for `body` at `timestamp`, computed by slack_sdk.
pub fn slack_sdk_signature(secret: &str, timestamp: &str, body: &str) -> String {
    let out = std::process::Command::new(venv_python())
        .args([
            "-c",
            "import sys; from slack_sdk.signature import SignatureVerifier; \
             print(SignatureVerifier(sys.argv[1]).generate_signature(timestamp=sys.argv[2], body=sys.argv[3]))",
            secret,
            timestamp,
            body,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
