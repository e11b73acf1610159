//! HTTP resources on their own `listen_port` (plain, TLS, h2c), bearer-token
//! identities, request body limits and `Expect: 100-continue`, and the
//! request metrics: a hyper echo upstream behind Gate, curl as the client.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;
mod http_support;

use common::*;
use gate_testkit::SelfSignedCert;
use http_support::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

const POLICY: &str = r#"package gate.listeners
import rego.v1
default session := {"action": "allow"}
default pre_request := {"action": "allow"}
pre_request := {"action": "block", "reason": "sre only"} if {
	input.http.path == "/sre"
	not "sre" in input.user.groups
}
default post_request := {"action": "allow"}
"#;

struct Setup {
    gate: GateOnly,
    own_port: u16,
    pem: Vec<u8>,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (pem, jwks) = common::jwt::keypair(dir.path(), "idp", "k1");
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks).unwrap();
    let policy = dir.path().join("p.rego");
    std::fs::write(&policy, POLICY).unwrap();
    let certs = SelfSignedCert::generate(dir.path(), "gate", "localhost").unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let echo = echo_upstream(&runtime);
    std::mem::forget(runtime);
    let own_port = gate_testkit::free_port().unwrap();
    let yaml = format!(
        "identities:\n  - {{name: app, password: app-pw}}\n\
         auth: {{jwt: {{issuers: [{{issuer: 'https://idp.test', jwks_file: '{jwks}', audience: gate}}]}}}}\n\
         tls: {{enabled: true, cert_file: '{cert}', key_file: '{key}'}}\n\
         resources:\n  - {{name: own, protocol: http, host: 127.0.0.1, port: {echo}, listen_port: {own_port}, max_body_bytes: 1000}}\n\
         policies:\n  - {{path: '{p}', stage: session}}\n  - {{path: '{p}', stage: pre_request}}\n  - {{path: '{p}', stage: post_request}}\n",
        jwks = jwks_file.display(),
        cert = certs.cert.display(),
        key = certs.key.display(),
        p = policy.display(),
    );
    let tls = gate_connector::tls::TlsFiles::load(&certs.cert, &certs.key).unwrap();
    Setup {
        gate: start_yaml(&yaml, Some(tls)),
        own_port,
        pem,
        _dir: dir,
    }
}

fn token(pem: &[u8], groups: &[&str], aud: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let claims = serde_json::json!({"iss": "https://idp.test", "sub": "u-42", "name": "dana", "email": "dana@example.com", "groups": groups, "aud": aud, "exp": exp});
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("k1".into());
    encode(&header, &claims, &EncodingKey::from_ed_pem(pem).unwrap()).unwrap()
}

#[test]
fn a_dedicated_port_serves_plain_tls_and_h2c_with_bearer_tokens() {
    let s = setup();
    let plain = format!("http://127.0.0.1:{}", s.own_port);
    let sre = format!("Authorization: Bearer {}", token(&s.pem, &["sre"], "gate"));
    let dev = format!("Authorization: Bearer {}", token(&s.pem, &["dev"], "gate"));
    let wrong_aud = format!("Authorization: Bearer {}", token(&s.pem, &["sre"], "other"));
    // Any Host is this resource's on its own port.
    let r = curl(
        &["-H", &sre, "-H", "Host: whatever.example"],
        &format!("{plain}/sre"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["headers"].get("authorization").is_none());
    assert_eq!(curl(&["-H", &dev], &format!("{plain}/sre")).status, 403);
    let refused = curl(&["-H", &wrong_aud], &format!("{plain}/sre"));
    assert_eq!(
        refused.status, 401,
        "a token for another audience is refused"
    );
    let h2c = curl(
        &["--http2-prior-knowledge", "-H", &sre],
        &format!("{plain}/sre"),
    );
    assert_eq!(h2c.status, 200);
    let tls = curl(
        &["-k", "--http2", "-H", &sre],
        &format!("https://localhost:{}/sre", s.own_port),
    );
    assert_eq!(tls.status, 200, "{}", tls.text());
    assert_eq!(tls.json()["headers"]["x-forwarded-proto"], "https");
    let audit = s
        .gate
        .audit_when(|a| a.matches("\"identity\":\"dana\"").count() >= 4);
    assert!(audit.contains("\"identity\":\"dana\""), "{audit}");
    let metrics = s.gate.gate.metrics.render();
    assert!(
        metrics.contains("gate_request_duration_seconds_count{protocol=\"http\",resource=\"own\"}"),
        "{metrics}"
    );
}

#[test]
fn request_bodies_are_limited_and_expect_continue_works() {
    let s = setup();
    let url = format!("http://127.0.0.1:{}/upload", s.own_port);
    let big = "x".repeat(2000);
    let json = format!("{{\"pad\": \"{big}\"}}");
    for content_type in ["application/json", "application/octet-stream"] {
        let r = curl(
            &[
                "-u",
                "app:app-pw",
                "-H",
                &format!("Content-Type: {content_type}"),
                "--data-binary",
                &json,
            ],
            &url,
        );
        assert_eq!(r.status, 413, "{content_type}: {}", r.text());
        assert_eq!(r.json()["error"], "payload_too_large");
    }
    let small = curl(
        &[
            "-u",
            "app:app-pw",
            "-H",
            "Expect: 100-continue",
            "-H",
            "Content-Type: text/plain",
            "--data-binary",
            "hello",
        ],
        &url,
    );
    assert_eq!(small.status, 200, "{}", small.text());
    assert_eq!(small.json()["body"], "hello");
    assert!(small.json()["headers"].get("expect").is_none());
}
