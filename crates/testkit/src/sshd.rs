//! Throwaway OpenSSH server: its own host key, config and `authorized_keys`,
//! `UsePAM no`, run in the foreground on a free 127.0.0.1 port, with a
//! generated client key that may log in as the current user.

use std::fs;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::error::{Error, Result};
use crate::process::{
    ServerDir, ServerProcess, chmod, free_port, require_program, run, run_stdout,
};

/// What to set up before a test connects.
#[derive(Debug, Clone, Default)]
pub struct SshdOptions {
    /// Extra public keys (OpenSSH format) allowed to log in, besides the generated client key.
    pub authorized_keys: Vec<String>,
    /// Extra `sshd_config` lines.
    pub config: Vec<String>,
}

/// A running throwaway sshd; stopped and deleted on drop.
#[derive(Debug)]
pub struct Sshd {
    process: ServerProcess,
    port: u16,
    client_key: PathBuf,
    host_public_key: String,
    dir: ServerDir,
}

impl Sshd {
    /// Generate keys and config, start sshd and wait for its banner.
    pub fn start(options: SshdOptions) -> Result<Self> {
        let sshd = require_program("/usr/sbin/sshd")?;
        let keygen = require_program("ssh-keygen")?;
        fs::create_dir_all("/run/sshd").map_err(Error::io("create /run/sshd"))?;
        let dir = ServerDir::create("sshd")?;
        // sshd reads AuthorizedKeysFile as the target user: keep the dir traversable.
        chmod(dir.path(), 0o755)?;
        let host_key = dir.path().join("host_ed25519");
        let client_key = dir.path().join("client_ed25519");
        for key in [&host_key, &client_key] {
            generate_key(&keygen, key, "gate-testkit")?;
        }
        let read =
            |p: &Path| fs::read_to_string(p).map_err(Error::io(format!("read {}", p.display())));
        let mut authorized = read(&client_key.with_extension("pub"))?;
        for key in &options.authorized_keys {
            authorized.push_str(key.trim_end());
            authorized.push('\n');
        }
        let authorized_path = dir.path().join("authorized_keys");
        fs::write(&authorized_path, authorized).map_err(Error::io("write authorized_keys"))?;
        chmod(&authorized_path, 0o644)?;

        let port = free_port()?;
        let config_path = dir.path().join("sshd_config");
        let mut config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nPidFile {pid}\n\
             AuthorizedKeysFile {auth}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n\
             Subsystem sftp internal-sftp\nLogLevel VERBOSE\n",
            host = host_key.display(),
            pid = dir.path().join("sshd.pid").display(),
            auth = authorized_path.display(),
        );
        for line in &options.config {
            config.push_str(line);
            config.push('\n');
        }
        fs::write(&config_path, config).map_err(Error::io("write sshd_config"))?;
        run(Command::new(&sshd).arg("-t").arg("-f").arg(&config_path))?;

        let log = dir.path().join("sshd.log");
        let mut command = Command::new(&sshd);
        command.args(["-D", "-e", "-f"]).arg(&config_path);
        let mut process = ServerProcess::spawn("sshd", &mut command, &dir, log, Signal::SIGTERM)?;
        process.wait_ready(|_| banner(port).is_some_and(|b| b.starts_with("SSH-2.0-")))?;
        let host_public_key = read(&host_key.with_extension("pub"))?;
        Ok(Self {
            process,
            port,
            client_key,
            host_public_key,
            dir,
        })
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Private key (OpenSSH format, no passphrase) authorized for the current user.
    pub fn client_key(&self) -> &Path {
        &self.client_key
    }

    /// The server's host public key line (`ssh-ed25519 AAAA… gate-testkit`).
    pub fn host_public_key(&self) -> &str {
        &self.host_public_key
    }

    /// The server log so far (last lines).
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// `known_hosts` content that trusts this server's host key.
    pub fn known_hosts_line(&self) -> String {
        format!(
            "[127.0.0.1]:{} {}",
            self.port,
            self.host_public_key.trim_end()
        )
    }

    /// Run `command` remotely as the current user with the OpenSSH client; returns stdout.
    pub fn ssh(&self, command: &str) -> Result<String> {
        let known_hosts = self.dir.path().join("known_hosts");
        fs::write(&known_hosts, self.known_hosts_line() + "\n")
            .map_err(Error::io("write known_hosts"))?;
        let user = std::env::var("USER").unwrap_or_else(|_| "root".to_owned());
        run_stdout(
            Command::new(require_program("ssh")?)
                .args([
                    "-F",
                    "/dev/null",
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "IdentitiesOnly=yes",
                ])
                .arg("-o")
                .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
                .args(["-o", "StrictHostKeyChecking=yes", "-i"])
                .arg(&self.client_key)
                .args(["-p", &self.port.to_string()])
                .arg(format!("{user}@127.0.0.1"))
                .arg(command),
        )
    }
}

fn generate_key(keygen: &Path, path: &Path, comment: &str) -> Result<()> {
    run(Command::new(keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path))
    .map(drop)
}

/// Generate an ed25519 key pair without passphrase at `path` (and `path.pub`); returns the
/// public key line.
pub fn ssh_keygen(path: &Path) -> Result<String> {
    generate_key(&require_program("ssh-keygen")?, path, "gate-testkit")?;
    let public = path.with_extension("pub");
    let line =
        fs::read_to_string(&public).map_err(Error::io(format!("read {}", public.display())))?;
    Ok(line.trim().to_owned())
}

/// The identification line an SSH server sends first, if one answers.
fn banner(port: u16) -> Option<String> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(buf.get(..n)?).into_owned())
}
