//! Each throwaway server accepts a login from its real client and runs one command.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::process::Command;

use gate_testkit::{
    MariaDb, MariaDbOptions, Nginx, NginxOptions, PgAuth, Postgres, PostgresOptions, Sshd,
    SshdOptions,
};

fn output(command: &mut Command) -> (bool, String, String) {
    let out = command.output().expect("client runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn psql_tcp(pg: &Postgres, password: Option<&str>, extra_conninfo: &str, sql: &str) -> Command {
    let mut cmd = Command::new("/usr/lib/postgresql/15/bin/psql");
    cmd.env_remove("PGPASSWORD");
    if let Some(pw) = password {
        cmd.env("PGPASSWORD", pw);
    }
    cmd.args(["-X", "-A", "-t", "-w", "-c", sql]).arg(format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres {extra_conninfo}",
        pg.port()
    ));
    cmd
}

#[test]
fn postgres_accepts_psql_over_tcp_and_runs_seed_sql() {
    let pg = Postgres::start(PostgresOptions {
        databases: vec!["appdb".into()],
        seed: vec![(
            "appdb".into(),
            "create table t (n int); insert into t values (41), (1);".into(),
        )],
        ..Default::default()
    })
    .unwrap();
    let (ok, out, err) = output(&mut psql_tcp(
        &pg,
        None,
        "dbname=appdb",
        "select sum(n) from t",
    ));
    assert!(ok, "psql failed: {err}");
    assert_eq!(out, "42");
    let version = pg.psql("postgres", "show server_version_num").unwrap();
    assert!(
        version.starts_with("15"),
        "expected PostgreSQL 15, got {version}"
    );
}

#[test]
fn postgres_scram_only_rejects_wrong_password_and_accepts_right_one() {
    let pg = Postgres::start(PostgresOptions {
        auth: PgAuth::Scram {
            password: "s3cret".into(),
        },
        ..Default::default()
    })
    .unwrap();
    let (ok, _, err) = output(&mut psql_tcp(&pg, Some("wrong"), "", "select 1"));
    assert!(!ok);
    assert!(err.contains("password authentication failed"), "{err}");
    let (ok, out, err) = output(&mut psql_tcp(
        &pg,
        Some("s3cret"),
        "",
        "select rolpassword like 'SCRAM-SHA-256$%' from pg_authid where rolname = 'postgres'",
    ));
    assert!(ok, "{err}");
    assert_eq!(out, "t", "the stored verifier must be SCRAM");
    let hba = pg.psql(
        "postgres",
        "select auth_method from pg_hba_file_rules where type = 'host' limit 1",
    );
    assert_eq!(hba.unwrap(), "scram-sha-256");
}

#[test]
fn postgres_tls_serves_the_generated_certificate() {
    let pg = Postgres::start(PostgresOptions {
        tls: true,
        ..Default::default()
    })
    .unwrap();
    let cert = pg.tls_cert().expect("tls on").ca.display().to_string();
    let (ok, out, err) = output(&mut psql_tcp(
        &pg,
        None,
        &format!("sslmode=verify-full sslrootcert={cert}"),
        "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
    ));
    assert!(ok, "{err}");
    assert_eq!(out, "t");
}

#[test]
fn postgres_is_gone_after_drop() {
    let pg = Postgres::start(PostgresOptions::default()).unwrap();
    let pid = pg.pid();
    let port = pg.port();
    let dir = pg.socket_dir().to_path_buf();
    drop(pg);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "postmaster still running"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port still open"
    );
    assert!(!dir.exists(), "temp dir left behind");
}

#[test]
fn mariadb_accepts_the_mariadb_client_over_tcp() {
    let db = MariaDb::start(MariaDbOptions {
        databases: vec!["shop".into()],
        users: vec![("app".into(), "apppw".into())],
        seed: vec![
            "CREATE TABLE shop.items (n INT); INSERT INTO shop.items VALUES (40), (2);".into(),
        ],
    })
    .unwrap();
    let (ok, out, err) = output(
        Command::new("mariadb")
            .args([
                "--no-defaults",
                "-h",
                "127.0.0.1",
                "-P",
                &db.port().to_string(),
            ])
            .args([
                "-u",
                "app",
                "-papppw",
                "--batch",
                "--skip-column-names",
                "shop",
            ])
            .args(["-e", "SELECT SUM(n) FROM items"]),
    );
    assert!(ok, "mariadb client failed: {err}");
    assert_eq!(out, "42");
    let (ok, _, err) = output(
        Command::new("mariadb")
            .args([
                "--no-defaults",
                "-h",
                "127.0.0.1",
                "-P",
                &db.port().to_string(),
            ])
            .args(["-u", "app", "-pwrong", "-e", "SELECT 1"]),
    );
    assert!(!ok);
    assert!(err.contains("Access denied"), "{err}");
}

#[test]
fn sshd_accepts_the_generated_key_with_the_openssh_client() {
    let sshd = Sshd::start(SshdOptions::default()).unwrap();
    let out = sshd.ssh("echo hello-from-$((40 + 2))").unwrap_or_else(|e| {
        panic!("ssh failed: {e}\nsshd log:\n{}", sshd.log_tail());
    });
    assert_eq!(out, "hello-from-42");
}

#[test]
fn sshd_refuses_an_unknown_key() {
    let sshd = Sshd::start(SshdOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("other");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    let (ok, _, err) = output(
        Command::new("ssh")
            .args([
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
            ])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-i",
            ])
            .arg(&key)
            .args(["-p", &sshd.port().to_string(), "root@127.0.0.1", "true"]),
    );
    assert!(!ok);
    assert!(err.contains("Permission denied"), "{err}");
}

#[test]
fn nginx_serves_files_to_curl() {
    let nginx = Nginx::start(NginxOptions {
        files: vec![("api/items.json".into(), r#"[{"id":1}]"#.into())],
        server_config: "location = /teapot { return 418 'short and stout'; }".into(),
        ..Default::default()
    })
    .unwrap();
    let (ok, out, err) = output(
        Command::new("curl")
            .args(["-sS", "-f"])
            .arg(format!("{}/api/items.json", nginx.base_url())),
    );
    assert!(ok, "curl failed: {err}\n{}", nginx.log_tail());
    assert_eq!(out, r#"[{"id":1}]"#);
    let (_, code, _) = output(
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("{}/teapot", nginx.base_url())),
    );
    assert_eq!(code, "418");
}
