//! Token logins: a JWT in psql's password field, verified against a JWKS
//! file or one fetched from a `jwks_url` (signature, `exp`, `aud`, `iss`); its
//! `groups` reach the policies.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::process::Command;

use common::*;
use gate_testkit::PgAuth;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

use common::jwt::{ISSUER, claims, keypair, now, token};

fn login(stack: &Stack, user: &str, password: &str, sql: &str) -> (String, String) {
    let out = Command::new(PSQL)
        .env("PGPASSWORD", password)
        .args([
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            &stack.port.to_string(),
            "-U",
            user,
            "-d",
            "appdb",
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    (text(&out.stdout).trim().to_owned(), text(&out.stderr))
}

/// A local HTTP server answering every request with `status` and `body` (chunked, as many
/// servers send JSON); the URL of its `/jwks.json`.
fn serve_jwks(status: &'static str, body: String) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let (first, rest) = body.split_at(body.len() / 2);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                 {:x}\r\n{first}\r\n{:x}\r\n{rest}\r\n0\r\n\r\n",
                first.len(),
                rest.len()
            );
        }
    });
    url
}

#[test]
fn keys_fetched_from_a_jwks_url_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, jwks) = keypair(dir.path(), "idp", "k1");
    let url = serve_jwks("200 OK", jwks);
    let auth = format!(
        "auth: {{jwt: {{issuers: [{{issuer: \"{ISSUER}\", jwks_url: \"{url}\", audience: gate}}]}}}}\n"
    );
    let stack = start(PgAuth::Trust, &(auth + &example_policy()));
    let admin = token(
        &pem,
        "k1",
        claims("alice", &["admins"], "gate", now() + 3600),
    );
    assert_eq!(
        login(&stack, "alice", &admin, "select email from customers").0,
        "alice@example.com"
    );
    let stranger = token(
        &pem,
        "k2",
        claims("alice", &["admins"], "gate", now() + 3600),
    );
    assert_eq!(login(&stack, "alice", &stranger, "select 1").0, "");
}

#[test]
fn a_jwks_url_that_fails_is_reported_with_its_url_and_what_failed() {
    let missing = serve_jwks("404 Not Found", "{}".to_owned());
    let not_jwks = serve_jwks("200 OK", "{\"keys\": 1}".to_owned());
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/jwks.json", listener.local_addr().unwrap())
    };
    let issuers: Vec<String> = [&missing, &not_jwks, &refused]
        .iter()
        .enumerate()
        .map(|(i, url)| {
            format!("{{issuer: \"https://idp{i}.example\", jwks_url: \"{url}\", audience: gate}}")
        })
        .collect();
    let yaml = format!("auth: {{jwt: {{issuers: [{}]}}}}\n", issuers.join(", "));
    let config: gate_config::ConnectorConfig =
        gate_config::load_str("test.yaml", &yaml, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let jwt = gate_connector::jwt::JwtVerifier::load(&config.auth)
        .unwrap()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let problems = runtime.block_on(jwt.refresh());
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert_eq!(
        problems[0],
        format!("JWKS of https://idp0.example: {missing}: HTTP status 404")
    );
    assert!(
        problems[1].starts_with(&format!(
            "JWKS of https://idp1.example: {not_jwks}: not a JWKS: "
        )),
        "{}",
        problems[1]
    );
    assert!(
        problems[2].starts_with(&format!(
            "JWKS of https://idp2.example: {refused}: cannot connect: "
        )),
        "{}",
        problems[2]
    );
}

#[test]
fn tokens_log_in_and_their_groups_reach_policies() {
    let dir = tempfile::tempdir().unwrap();
    let (pem, jwks) = keypair(dir.path(), "idp", "k1");
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks).unwrap();
    let (other_pem, _) = keypair(dir.path(), "other", "k1");
    let auth = format!(
        "auth: {{jwt: {{issuers: [{{issuer: \"{ISSUER}\", jwks_file: \"{}\", audience: gate}}]}}}}\n",
        jwks_file.display()
    );
    let stack = start(PgAuth::Trust, &(auth + &example_policy()));
    let hour = now() + 3600;

    let admin = token(&pem, "k1", claims("alice", &["admins"], "gate", hour));
    assert_eq!(
        login(&stack, "alice", &admin, "select email from customers").0,
        "alice@example.com"
    );
    let engineer = token(&pem, "k1", claims("bob", &["engineering"], "gate", hour));
    assert_eq!(
        login(&stack, "bob", &engineer, "select email from customers").0,
        "*************.com"
    );

    for (why, bad) in [
        (
            "expired",
            token(
                &pem,
                "k1",
                claims("alice", &["admins"], "gate", now() - 3600),
            ),
        ),
        (
            "wrong audience",
            token(
                &pem,
                "k1",
                claims("alice", &["admins"], "someone-else", hour),
            ),
        ),
        (
            "signed by another key",
            token(&other_pem, "k1", claims("alice", &["admins"], "gate", hour)),
        ),
        (
            "unknown kid",
            token(&pem, "k9", claims("alice", &["admins"], "gate", hour)),
        ),
        (
            "HS256 with the public key as secret",
            encode(
                &Header::new(Algorithm::HS256),
                &claims("alice", &["admins"], "gate", hour),
                &EncodingKey::from_secret(b"k1"),
            )
            .unwrap(),
        ),
        ("not a token", "hunter2".to_owned()),
    ] {
        let (out, err) = login(&stack, "alice", &bad, "select 1");
        assert_eq!(out, "", "{why}: must not log in");
        assert!(
            err.contains("FATAL:  password authentication failed for user \"alice\""),
            "{why}: {err}"
        );
    }

    // Static identities keep logging in with SCRAM.
    assert_eq!(login(&stack, "app", "app", "select 1").0, "1");
}
