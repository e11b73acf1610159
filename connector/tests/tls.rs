//! Client TLS: psql with `sslmode=verify-full`, `input.connection.tls` for
//! policies, certificate rotation without restart, and a plain decline (`N`)
//! when TLS is not configured.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use gate_connector::tls::TlsFiles;
use gate_testkit::{PgAuth, SelfSignedCert};

const TLS_ONLY: &str = "package tls_only\nimport rego.v1\ndefault session := {\"action\": \"block\", \"reason\": \"TLS is required\"}\n\
    session := {\"action\": \"allow\"} if input.connection.tls\npre_request := {\"action\": \"allow\"}\n";

fn psql_tls(stack: &Stack, conninfo: &str, sql: &str) -> Output {
    Command::new(PSQL)
        .env("PGPASSWORD", "app")
        .args(["-X", "-A", "-t", "-c", sql])
        .arg(format!(
            "host=127.0.0.1 port={} user=app dbname=appdb {conninfo}",
            stack.port
        ))
        .output()
        .unwrap()
}

fn tls_stack(dir: &Path, cert: &SelfSignedCert) -> Stack {
    let policy = dir.join("tls_only.rego");
    std::fs::write(&policy, TLS_ONLY).unwrap();
    let p = policy.display();
    start_with(
        PgAuth::Trust,
        "",
        &format!(
            "policies:\n  - {{path: \"{p}\", stage: session}}\n  - {{path: \"{p}\", stage: pre_request}}\n"
        ),
        Some(TlsFiles::load(&cert.cert, &cert.key).unwrap()),
    )
}

#[test]
fn psql_verifies_gates_certificate_and_policies_see_tls() {
    let dir = tempfile::tempdir().unwrap();
    let cert = SelfSignedCert::generate(dir.path(), "gate", "127.0.0.1").unwrap();
    let stack = tls_stack(dir.path(), &cert);
    let out = psql_tls(
        &stack,
        &format!("sslmode=verify-full sslrootcert={}", cert.ca.display()),
        "select 'over tls'",
    );
    assert_eq!(
        text(&out.stdout).trim(),
        "over tls",
        "{}",
        text(&out.stderr)
    );
    let out = psql_tls(
        &stack,
        &format!("sslmode=verify-full sslrootcert={}", cert.ca.display()),
        "\\conninfo",
    );
    assert!(
        text(&out.stdout).contains("SSL connection (protocol: TLSv1.3"),
        "{}",
        text(&out.stdout)
    );
    let plain = psql_tls(&stack, "sslmode=disable", "select 1");
    assert!(
        text(&plain.stderr).contains("FATAL:  TLS is required"),
        "{}",
        text(&plain.stderr)
    );
}

#[test]
fn a_rotated_certificate_is_served_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = SelfSignedCert::generate(dir.path(), "first", "127.0.0.1").unwrap();
    let second_dir = dir.path().join("second");
    std::fs::create_dir_all(&second_dir).unwrap();
    let second = SelfSignedCert::generate(&second_dir, "second", "127.0.0.1").unwrap();
    // Gate serves whatever is at the first paths.
    let served = SelfSignedCert {
        cert: dir.path().join("served.crt"),
        key: dir.path().join("served.key"),
        ca: first.ca.clone(),
    };
    std::fs::copy(&first.cert, &served.cert).unwrap();
    std::fs::copy(&first.key, &served.key).unwrap();
    let stack = tls_stack(dir.path(), &served);
    let verify = |root: &Path| {
        psql_tls(
            &stack,
            &format!("sslmode=verify-full sslrootcert={}", root.display()),
            "select 1",
        )
    };
    assert!(verify(&first.ca).status.success());

    std::fs::copy(&second.cert, &served.cert).unwrap();
    std::fs::copy(&second.key, &served.key).unwrap();
    let out = verify(&second.ca);
    assert!(
        out.status.success(),
        "the new certificate is served: {}",
        text(&out.stderr)
    );
    let old = verify(&first.ca);
    assert!(!old.status.success());
    assert!(
        text(&old.stderr).contains("certificate verify failed"),
        "{}",
        text(&old.stderr)
    );
}

#[test]
fn without_tls_configured_ssl_is_declined_and_plain_works() {
    let stack = start(PgAuth::Trust, &example_policy());
    let required = psql_tls(&stack, "sslmode=require", "select 1");
    assert!(
        text(&required.stderr).contains("server does not support SSL"),
        "{}",
        text(&required.stderr)
    );
    let preferred = psql_tls(&stack, "sslmode=prefer", "select 1");
    assert_eq!(
        text(&preferred.stdout).trim(),
        "1",
        "{}",
        text(&preferred.stderr)
    );
}

/// A PostgreSQL client that opens with TLS directly (PostgreSQL 17's
/// `sslnegotiation=direct`, ALPN `postgresql`): the shared listener
/// terminates TLS, detects PostgreSQL inside, and the login starts.
#[test]
fn direct_tls_on_the_shared_listener_reaches_postgres() {
    use rustls_pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let cert = SelfSignedCert::generate(dir.path(), "gate", "127.0.0.1").unwrap();
    let stack = tls_stack(dir.path(), &cert);
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(&cert.ca).unwrap();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (alpn, tag) = runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", stack.port))
            .await
            .unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let mut startup = bytes::BytesMut::new();
        gate_connector::protocols::postgres::codec::encode_startup(
            &[("user", "app"), ("database", "appdb")],
            &mut startup,
        );
        tls.write_all(&startup).await.unwrap();
        let mut tag = [0u8; 1];
        tls.read_exact(&mut tag).await.unwrap();
        (alpn, tag[0])
    });
    assert_eq!(alpn.as_deref(), Some(&b"postgresql"[..]));
    assert_eq!(
        tag, b'R',
        "an authentication request: PostgreSQL inside TLS"
    );
}
