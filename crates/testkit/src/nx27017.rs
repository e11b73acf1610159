//! Throwaway `nx-27017` (a MongoDB wire-protocol server on SQLite, from the
//! test venv): in-memory data, its own pid and log files, on a free
//! 127.0.0.1 port. It has no SCRAM and no compression.

use std::process::Command;

use nix::sys::signal::Signal;

use crate::error::{Error, Result};
use crate::process::{ServerDir, ServerProcess, free_port, port_open, venv_python};

/// A running nx-27017; stopped and deleted on drop.
#[derive(Debug)]
pub struct Nx27017 {
    process: ServerProcess,
    port: u16,
    _dir: ServerDir,
}

impl Nx27017 {
    /// Start it from the test venv and wait for its port.
    pub fn start() -> Result<Self> {
        let python = venv_python()?;
        let bin = python.with_file_name("nx-27017");
        if !bin.exists() {
            return Err(Error::Missing(format!(
                "{} (add nx-27017 to scripts/test-requirements.txt and run scripts/test-venv.sh)",
                bin.display()
            )));
        }
        let dir = ServerDir::create("nx27017")?;
        let port = free_port()?;
        let log = dir.path().join("nx.log");
        let mut command = Command::new(&bin);
        command
            .args([
                "--db",
                "memory",
                "--host",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .arg("--pid-file")
            .arg(dir.path().join("nx.pid"))
            .arg("--log-file")
            .arg(&log);
        let mut process =
            ServerProcess::spawn("nx-27017", &mut command, &dir, log, Signal::SIGTERM)?;
        process.wait_ready(|_| port_open(port))?;
        Ok(Self {
            process,
            port,
            _dir: dir,
        })
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's PID.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}
