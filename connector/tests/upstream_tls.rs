//! Upstream TLS: Gate encrypts its own connection to PostgreSQL as
//! `upstream_tls.mode` says, and `verify-full` refuses a server whose
//! certificate does not chain to `ca_file`.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use common::*;
use gate_testkit::{PgAuth, SelfSignedCert};

const SSL_IN_USE: &str = "select ssl from pg_stat_ssl where pid = pg_backend_pid()";

fn through_gate(stack: &Stack, sql: &str) -> (String, String) {
    let out = psql(stack, "app", "app", "appdb", &[sql]);
    (text(&out.stdout).trim().to_owned(), text(&out.stderr))
}

#[test]
fn upstream_modes_disable_require_and_verify_full() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, expect_ssl) in [
        (String::new(), "f"),
        (", upstream_tls: {mode: require}".to_owned(), "t"),
    ] {
        let stack = start_on(
            upstream(
                PgAuth::Scram {
                    password: "s".into(),
                },
                true,
            ),
            &extra,
            &example_policy(),
            None,
        );
        let (out, err) = through_gate(&stack, SSL_IN_USE);
        assert_eq!(out, expect_ssl, "{extra}: {err}");
    }
    let pg = upstream(
        PgAuth::Scram {
            password: "s".into(),
        },
        true,
    );
    let ca = pg.tls_cert().unwrap().ca.display().to_string();
    let stack = start_on(
        pg,
        &format!(", upstream_tls: {{mode: verify-full, ca_file: \"{ca}\"}}"),
        &example_policy(),
        None,
    );
    let (out, err) = through_gate(&stack, SSL_IN_USE);
    assert_eq!(out, "t", "{err}");

    // A CA that did not sign the server's certificate: no session, and the client learns only that.
    let stranger = SelfSignedCert::generate(dir.path(), "stranger", "127.0.0.1").unwrap();
    let pg = upstream(
        PgAuth::Scram {
            password: "s".into(),
        },
        true,
    );
    let stack = start_on(
        pg,
        &format!(
            ", upstream_tls: {{mode: verify-full, ca_file: \"{}\"}}",
            stranger.ca.display()
        ),
        &example_policy(),
        None,
    );
    let (out, err) = through_gate(&stack, "select 1");
    assert_eq!(out, "");
    assert!(
        err.contains("FATAL:  could not connect to resource \"primary-db\""),
        "{err}"
    );
}

#[test]
fn a_server_without_tls_is_refused_when_tls_is_required() {
    let stack = start_on(
        upstream(PgAuth::Trust, false),
        ", upstream_tls: {mode: require}",
        &example_policy(),
        None,
    );
    let (out, err) = through_gate(&stack, "select 1");
    assert_eq!(out, "");
    assert!(
        err.contains("could not connect to resource \"primary-db\""),
        "{err}"
    );
}
