//! MongoDB clients on Gate's shared listener: pymongo over TLS (the
//! connector's certificate, MongoDB detected inside the TLS stream) with a
//! JWT through PLAIN, and a plain-text client refused by a TLS-only
//! session policy with code 13.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use common::jwt::{ISSUER, claims, keypair, now, token};
use common::mongo::{python, start_with};
use common::{audit_file_when, example_policy};
use gate_connector::tls::TlsFiles;
use gate_testkit::SelfSignedCert;

const TLS_ONLY: &str = "package tls_only\nimport rego.v1\nsession := {\"action\": \"block\", \"reason\": \"TLS is required\"} if not input.connection.tls\n";

#[test]
fn a_jwt_over_tls_on_the_shared_listener_and_plain_text_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cert = SelfSignedCert::generate(dir.path(), "gate", "127.0.0.1").unwrap();
    let (pem, jwks) = keypair(dir.path(), "idp", "k1");
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks).unwrap();
    let tls_policy = dir.path().join("tls_only.rego");
    std::fs::write(&tls_policy, TLS_ONLY).unwrap();
    let auth = format!(
        "auth:\n  jwt:\n    issuers:\n      - {{issuer: \"{ISSUER}\", jwks_file: \"{}\", audience: gate}}\n",
        jwks_file.display()
    );
    let policies = format!(
        "{}  - {{path: \"{}\", stage: session}}\n",
        example_policy(),
        tls_policy.display()
    );
    let tls = TlsFiles::load(&cert.cert, &cert.key).unwrap();
    let stack = start_with(&auth, &policies, Some(tls));
    let shared = stack.gate.port;
    let alice = token(&pem, "k1", claims("alice", &[], "gate", now() + 300));
    let out = python(
        &format!(
            "client = pymongo.MongoClient(host='127.0.0.1', port={shared}, directConnection=True, tls=True, \
             tlsCAFile='{}', username='alice', password=__import__('os').environ['TOKEN'], authMechanism='PLAIN', \
             serverSelectionTimeoutMS=5000)\n\
             print(client.shop.customers.find_one({{'_id': 3}})['email'])",
            cert.ca.display()
        ),
        &[("TOKEN", alice)],
    );
    assert_eq!(out.trim(), "*************.com");
    // A wrong token: code 18, as for a wrong password.
    let wrong = python(
        &format!(
            "client = pymongo.MongoClient(host='127.0.0.1', port={shared}, directConnection=True, tls=True, \
             tlsCAFile='{}', username='alice', password='not.a.token', authMechanism='PLAIN', serverSelectionTimeoutMS=5000)\n\
             try:\n    client.shop.customers.find_one()\nexcept pymongo.errors.OperationFailure as e:\n    print(e.code)",
            cert.ca.display()
        ),
        &[],
    );
    assert_eq!(wrong.trim(), "18");
    // The same listener without TLS: MongoDB detected, logged in, refused by the session policy.
    let plain = python(
        &format!(
            "client = pymongo.MongoClient('mongodb://app:app-pw@127.0.0.1:{shared}/?directConnection=true&serverSelectionTimeoutMS=5000')\n\
             try:\n    client.shop.customers.find_one()\nexcept pymongo.errors.OperationFailure as e:\n    print(e.code, e.details['errmsg'])"
        ),
        &[],
    );
    assert_eq!(plain.trim(), "13 TLS is required");
    let audit = audit_file_when(&stack.gate.audit, |a| {
        a.contains("\"identity\":\"alice\"") && a.contains("TLS is required")
    });
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"identity\":\"alice\"") && l.contains("\"protocol\":\"mongodb\"")),
        "{audit}"
    );
}
