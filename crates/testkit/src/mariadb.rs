//! Throwaway MariaDB: one pristine datadir per machine and MariaDB version
//! (built once with `mariadb-install-db`, ~5 s), copied per server (~0.3 s to
//! start), always `--no-defaults`, bound to 127.0.0.1 on a free port.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::Signal;

use crate::error::{Error, Result};
use crate::process::{
    ServerDir, ServerProcess, chown_tree, free_port, require_program, run, run_stdout,
    system_account, testkit_root,
};

/// What to set up before a test connects.
#[derive(Debug, Clone, Default)]
pub struct MariaDbOptions {
    /// Databases to create.
    pub databases: Vec<String>,
    /// `(user, password)` accounts created for `'user'@'127.0.0.1'` with all privileges.
    pub users: Vec<(String, String)>,
    /// SQL scripts run as root (over the socket) after the databases and users exist.
    pub seed: Vec<String>,
}

/// A running throwaway MariaDB server; killed and deleted on drop.
///
/// `root@127.0.0.1` exists with an empty password and all privileges.
#[derive(Debug)]
pub struct MariaDb {
    process: ServerProcess,
    port: u16,
    dir: ServerDir,
}

impl MariaDb {
    /// Copy the pristine datadir, start the server and apply `options`.
    pub fn start(options: MariaDbOptions) -> Result<Self> {
        let (uid, gid) = system_account("mysql")?;
        let mariadbd = require_program("/usr/sbin/mariadbd")?;
        let pristine = pristine_datadir()?;
        let dir = ServerDir::create("mariadb")?;
        let data = dir.path().join("data");
        run(Command::new("cp").arg("-a").arg(&pristine).arg(&data))?;
        chown_tree(dir.path(), uid, gid)?;

        let port = free_port()?;
        let socket = dir.path().join("mariadb.sock");
        let log = dir.path().join("mariadb.log");
        let mut command = Command::new(mariadbd);
        command
            .arg("--no-defaults")
            .arg("--user=mysql")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mariadb.pid").display()
            ))
            .arg(format!("--log-error={}", log.display()))
            .args(["--skip-name-resolve", "--innodb-buffer-pool-size=64M"])
            .args(["--innodb-flush-log-at-trx-commit=0", "--skip-log-bin"]);
        let mut process =
            ServerProcess::spawn("mariadb", &mut command, &dir, log, Signal::SIGKILL)?;
        process.wait_ready(|p| p.log_contains("ready for connections"))?;
        let server = Self { process, port, dir };

        let mut setup = String::from(
            "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; \
             GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;",
        );
        for db in &options.databases {
            setup.push_str(&format!(" CREATE DATABASE `{}`;", db.replace('`', "``")));
        }
        for (user, password) in &options.users {
            let user = user.replace('\'', "''");
            let password = password.replace('\'', "''");
            setup.push_str(&format!(
                " CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'; \
                 GRANT ALL PRIVILEGES ON *.* TO '{user}'@'127.0.0.1';"
            ));
        }
        server.sql(&setup)?;
        for sql in &options.seed {
            server.sql(sql)?;
        }
        Ok(server)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The Unix socket path.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("mariadb.sock")
    }

    /// The server log so far (last lines).
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// Run SQL as root over the Unix socket with the `mariadb` client; returns
    /// tab-separated rows without a header.
    pub fn sql(&self, sql: &str) -> Result<String> {
        run_stdout(
            Command::new(require_program("mariadb")?)
                .arg("--no-defaults")
                .arg(format!("--socket={}", self.socket().display()))
                .args(["-u", "root", "--batch", "--skip-column-names", "-e", sql]),
        )
    }
}

/// The pristine datadir for this MariaDB version, created once under a lock.
fn pristine_datadir() -> Result<PathBuf> {
    let version =
        run_stdout(Command::new(require_program("/usr/sbin/mariadbd")?).arg("--version"))?;
    let tag: String = version
        .split_whitespace()
        .find(|w| w.contains("MariaDB"))
        .unwrap_or("unknown")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let root = testkit_root();
    fs::create_dir_all(&root).map_err(Error::io(format!("create {}", root.display())))?;
    let target = root.join(format!("mariadb_pristine_{tag}"));
    let lock_path = root.join(format!("mariadb_pristine_{tag}.lock"));
    let lock = fs::File::create(&lock_path).map_err(Error::io("create pristine lock"))?;
    lock.lock().map_err(Error::io("lock pristine datadir"))?;
    if target.join("data").join("mysql").is_dir() {
        return Ok(target.join("data"));
    }
    let building = root.join(format!("mariadb_pristine_{tag}.building"));
    let _ = fs::remove_dir_all(&building);
    fs::create_dir_all(&building).map_err(Error::io("create pristine build dir"))?;
    install_db(&building)?;
    let _ = fs::remove_dir_all(&target);
    fs::rename(&building, &target).map_err(Error::io("publish pristine datadir"))?;
    Ok(target.join("data"))
}

fn install_db(dir: &Path) -> Result<()> {
    let (uid, gid) = system_account("mysql")?;
    chown_tree(dir, uid, gid)?;
    run(Command::new(require_program("mariadb-install-db")?)
        .args(["--no-defaults", "--user=mysql"])
        .arg(format!("--datadir={}", dir.join("data").display()))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
        .arg("--skip-name-resolve"))?;
    Ok(())
}
