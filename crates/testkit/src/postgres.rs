//! Throwaway PostgreSQL 15: `initdb` as the `postgres` account into a temp dir,
//! started in the foreground on a free 127.0.0.1 port, optional SCRAM-only
//! `pg_hba.conf`, TLS with a generated certificate, and seed SQL.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::Signal;

use crate::error::{Error, Result};
use crate::process::{
    ServerDir, ServerProcess, chmod, chown_tree, free_port, require_program, run, run_stdout,
    system_account,
};
use crate::tls::SelfSignedCert;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// How TCP clients authenticate.
#[derive(Debug, Clone, Default)]
pub enum PgAuth {
    /// Anyone may connect as anyone (`trust`).
    #[default]
    Trust,
    /// Only SCRAM-SHA-256 over TCP; the superuser `postgres` gets this password.
    Scram {
        /// Password of the `postgres` superuser.
        password: String,
    },
    /// Only MD5 over TCP (the superuser's password stored as MD5).
    Md5 {
        /// Password of the `postgres` superuser.
        password: String,
    },
}

/// What to set up before a test connects.
#[derive(Debug, Clone, Default)]
pub struct PostgresOptions {
    /// TCP authentication (the Unix socket always trusts, for seeding).
    pub auth: PgAuth,
    /// Serve TLS with a generated self-signed certificate (see [`Postgres::tls_cert`]).
    pub tls: bool,
    /// Databases to create before seeding.
    pub databases: Vec<String>,
    /// `(database, sql)` scripts run in order with `ON_ERROR_STOP`.
    pub seed: Vec<(String, String)>,
    /// Extra `-c name=value` server settings.
    pub settings: Vec<(String, String)>,
}

/// A running throwaway PostgreSQL server; stopped (SIGQUIT) and deleted on drop.
#[derive(Debug)]
pub struct Postgres {
    // Field order matters: the process stops before its dir is removed.
    process: ServerProcess,
    port: u16,
    tls: Option<SelfSignedCert>,
    dir: ServerDir,
}

impl Postgres {
    /// Create a cluster, start it and apply `options`.
    pub fn start(options: PostgresOptions) -> Result<Self> {
        let (uid, gid) = system_account("postgres")?;
        let initdb = require_program(format!("{PG_BIN}/initdb"))?;
        let postgres = require_program(format!("{PG_BIN}/postgres"))?;
        let dir = ServerDir::create("postgres")?;
        chown_tree(dir.path(), uid, gid)?;
        chmod(dir.path(), 0o700)?;
        let data = dir.path().join("data");
        run(Command::new(&initdb)
            .uid(uid)
            .gid(gid)
            .current_dir(dir.path())
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .arg("-D")
            .arg(&data))?;
        let tls = if options.tls {
            let cert = SelfSignedCert::generate(dir.path(), "server", "127.0.0.1")?;
            chown_tree(&cert.key, uid, gid)?;
            chmod(&cert.key, 0o600)?;
            chown_tree(&cert.cert, uid, gid)?;
            Some(cert)
        } else {
            None
        };
        let tcp_method = match options.auth {
            PgAuth::Trust => "trust",
            PgAuth::Scram { .. } => "scram-sha-256",
            PgAuth::Md5 { .. } => "md5",
        };
        let hba = format!(
            "local all all trust\nhost all all 127.0.0.1/32 {tcp_method}\nhost all all ::1/128 {tcp_method}\n"
        );
        fs::write(data.join("pg_hba.conf"), hba).map_err(Error::io("write pg_hba.conf"))?;

        let port = free_port()?;
        let log = dir.path().join("postgres.log");
        let mut command = Command::new(&postgres);
        command
            .uid(uid)
            .gid(gid)
            .current_dir(dir.path())
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"]);
        if let Some(cert) = &tls {
            command
                .args(["-c", "ssl=on"])
                .arg("-c")
                .arg(format!("ssl_cert_file={}", cert.cert.display()))
                .arg("-c")
                .arg(format!("ssl_key_file={}", cert.key.display()));
        }
        for (name, value) in &options.settings {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        let mut process =
            ServerProcess::spawn("postgres", &mut command, &dir, log, Signal::SIGQUIT)?;
        process.wait_ready(|p| p.log_contains("ready to accept connections"))?;
        let server = Self {
            process,
            port,
            tls,
            dir,
        };

        match &options.auth {
            PgAuth::Trust => {}
            PgAuth::Scram { password } => {
                server.psql(
                    "postgres",
                    &format!(
                        "set password_encryption = 'scram-sha-256'; alter user postgres password {}",
                        quote_literal(password)
                    ),
                )?;
            }
            PgAuth::Md5 { password } => {
                server.psql(
                    "postgres",
                    &format!(
                        "set password_encryption = 'md5'; alter user postgres password {}",
                        quote_literal(password)
                    ),
                )?;
            }
        }
        for db in &options.databases {
            server.psql("postgres", &format!("create database {}", quote_ident(db)))?;
        }
        for (db, sql) in &options.seed {
            server.psql(db, sql)?;
        }
        Ok(server)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the Unix socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The certificate the server presents (and the CA to verify it), when TLS is on.
    pub fn tls_cert(&self) -> Option<&SelfSignedCert> {
        self.tls.as_ref()
    }

    /// PID of the postmaster.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The server log so far (last lines).
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// A libpq URL for `user` on `database` over TCP.
    pub fn url(&self, user: &str, database: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{database}", self.port)
    }

    /// Run SQL as the superuser over the Unix socket with psql; returns
    /// unaligned, tuples-only output.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String> {
        run_stdout(
            Command::new(psql_program()?)
                .args([
                    "-X",
                    "-A",
                    "-t",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-U",
                    "postgres",
                    "-h",
                ])
                .arg(self.socket_dir())
                .args(["-p", &self.port.to_string(), "-d", database, "-c", sql]),
        )
    }
}

/// The `psql` client of PostgreSQL 15.
pub(crate) fn psql_program() -> Result<PathBuf> {
    require_program(format!("{PG_BIN}/psql"))
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}
