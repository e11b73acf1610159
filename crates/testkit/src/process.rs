//! Shared plumbing: per-server temp dirs tagged with their owner, process-group
//! guards that stop a server by PID, the stale-server reaper, free ports and
//! command helpers.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::error::{Error, Result};

/// How long a server may take to accept connections.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The directory under which every server of every run lives.
pub fn testkit_root() -> PathBuf {
    std::env::temp_dir().join("gate-testkit")
}

/// A port that was free on 127.0.0.1 a moment ago.
///
/// The OS picks it; a concurrent test could grab it before the server binds,
/// so servers retry start-up once with a new port when they fail to bind.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(Error::io("bind 127.0.0.1:0"))?;
    let addr = listener.local_addr().map_err(Error::io("local_addr"))?;
    Ok(addr.port())
}

/// Start time of a process in clock ticks since boot (field 22 of
/// `/proc/PID/stat`), which tells a live owner from a recycled PID.
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it are plain.
    let after_comm = stat.rsplit_once(')')?.1;
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// The temp dir of one server: named after its kind and its owning process,
/// removed when dropped.
#[derive(Debug)]
pub(crate) struct ServerDir {
    path: PathBuf,
}

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

impl ServerDir {
    /// Reap stale servers, then create a fresh dir for a server of `kind`.
    pub(crate) fn create(kind: &str) -> Result<Self> {
        let root = testkit_root();
        fs::create_dir_all(&root).map_err(Error::io(format!("create {}", root.display())))?;
        reap_stale()?;
        let pid = std::process::id();
        let start = process_start_time(pid).unwrap_or(0);
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let path = root.join(format!("{kind}-{pid}-{start}-{n}"));
        if path.exists() {
            fs::remove_dir_all(&path).map_err(Error::io(format!("clear {}", path.display())))?;
        }
        fs::create_dir(&path).map_err(Error::io(format!("create {}", path.display())))?;
        Ok(Self { path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Record the server's PID (= its process group) so a later run can reap it.
    pub(crate) fn record_pid(&self, pid: u32) -> Result<()> {
        let file = self.path.join("server.pid");
        fs::write(&file, pid.to_string()).map_err(Error::io(format!("write {}", file.display())))
    }
}

impl Drop for ServerDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Kill the servers of test processes that no longer exist, and remove their dirs.
///
/// A dir belongs to a dead owner when no process has the PID and start time
/// in its name. Its `server.pid` names a process group, which gets SIGKILL.
pub fn reap_stale() -> Result<()> {
    let root = testkit_root();
    let Ok(entries) = fs::read_dir(&root) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let mut parts = name.split('-');
        let (Some(_kind), Some(pid), Some(start)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
            continue; // not a server dir (e.g. the MariaDB pristine image)
        };
        if process_start_time(pid) == Some(start) {
            continue; // owner still running
        }
        let dir = entry.path();
        if let Some(server) = fs::read_to_string(dir.join("server.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let _ = killpg(Pid::from_raw(server), Signal::SIGKILL);
            wait_gone(server as u32, Duration::from_secs(5));
        }
        let _ = fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// Poll until `/proc/PID` disappears or `timeout` passes.
fn wait_gone(pid: u32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        if fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        }) {
            return; // a zombie holds no port and no files
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running server process, leader of its own process group; stopped with
/// `stop_signal` on drop, then SIGKILL if it lingers.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    name: &'static str,
    child: Child,
    stop_signal: Signal,
    log: PathBuf,
}

impl ServerProcess {
    /// Spawn `command` in a new process group with stdout and stderr appended to `log`.
    pub(crate) fn spawn(
        name: &'static str,
        command: &mut Command,
        dir: &ServerDir,
        log: PathBuf,
        stop_signal: Signal,
    ) -> Result<Self> {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(Error::io(format!("open {}", log.display())))?;
        let err = out.try_clone().map_err(Error::io("clone log handle"))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(Error::io(format!("spawn {name} ({command:?})")))?;
        dir.record_pid(child.id())?;
        Ok(Self {
            name,
            child,
            stop_signal,
            log,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait until `ready()` holds, failing early if the process exits.
    pub(crate) fn wait_ready(&mut self, mut ready: impl FnMut(&Self) -> bool) -> Result<()> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::Exited {
                    server: self.name,
                    status: status.to_string(),
                    log: log_tail(&self.log),
                });
            }
            if ready(self) {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(Error::NotReady {
                    server: self.name,
                    waited: READY_TIMEOUT,
                    log: log_tail(&self.log),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server's log mentions `needle` yet.
    pub(crate) fn log_contains(&self, needle: &str) -> bool {
        fs::read_to_string(&self.log).is_ok_and(|log| log.contains(needle))
    }

    /// The last lines of the server's log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let group = Pid::from_raw(self.child.id() as i32);
        let _ = killpg(group, self.stop_signal);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                // The leader is gone; make sure no helper of the group survives it.
                let _ = killpg(group, Signal::SIGKILL);
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The last 40 lines of a log file.
pub(crate) fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub(crate) fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// Run a command to completion; a non-zero exit is an error carrying its stderr.
pub(crate) fn run(command: &mut Command) -> Result<Output> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(Error::io(format!("run {command:?}")))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(Error::Command {
            command: format!("{command:?}"),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// Run a command and return its trimmed stdout.
pub(crate) fn run_stdout(command: &mut Command) -> Result<String> {
    let output = run(command)?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned())
}

/// An absolute program path, or a `Missing` error naming it.
pub(crate) fn require_program(path: impl AsRef<OsStr>) -> Result<PathBuf> {
    let path = PathBuf::from(path.as_ref());
    if path.is_absolute() {
        return if path.exists() {
            Ok(path)
        } else {
            Err(Error::Missing(format!(
                "{} is not installed",
                path.display()
            )))
        };
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|dir| dir.join(&path))
            .find(|candidate| candidate.exists())
    });
    found.ok_or_else(|| Error::Missing(format!("`{}` is not on PATH", path.display())))
}

/// UID and GID of a system account, from `/etc/passwd`.
pub(crate) fn system_account(name: &str) -> Result<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").map_err(Error::io("read /etc/passwd"))?;
    passwd
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let user = fields.next()?;
            let uid = fields.nth(1)?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            (user == name).then_some((uid, gid))
        })
        .next()
        .ok_or_else(|| Error::Missing(format!("system account `{name}` does not exist")))
}

/// Recursively give `path` to `uid:gid`.
pub(crate) fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(Error::io(format!("chown {}", path.display())))?;
    if path.is_dir() && !path.is_symlink() {
        for entry in fs::read_dir(path).map_err(Error::io(format!("read {}", path.display())))? {
            let entry = entry.map_err(Error::io("read dir entry"))?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Set Unix permission bits.
pub(crate) fn chmod(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(Error::io(format!("chmod {mode:o} {}", path.display())))
}

/// The python of the test venv (`scripts/test-venv.sh`, which `make test`
/// runs; `GATE_TEST_VENV` overrides its location).
pub fn venv_python() -> Result<PathBuf> {
    let venv = std::env::var_os("GATE_TEST_VENV").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/gate/test-venv")
        },
        PathBuf::from,
    );
    let python = venv.join("bin/python");
    if !python.exists() {
        return Err(Error::Missing(format!(
            "{} (run scripts/test-venv.sh; make test does)",
            python.display()
        )));
    }
    Ok(python)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_self_is_known_and_of_nonexistent_pid_is_not() {
        assert!(process_start_time(std::process::id()).is_some());
        assert_eq!(process_start_time(u32::MAX - 1), None);
    }

    #[test]
    fn reaper_kills_the_group_of_a_dead_owner_and_removes_its_dir() {
        let root = testkit_root();
        fs::create_dir_all(&root).unwrap();
        // An owner that existed once: a child that has already exited.
        let mut owner = Command::new("true").spawn().unwrap();
        let owner_pid = owner.id();
        owner.wait().unwrap();
        let mut server = Command::new("sleep")
            .arg("300")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        // Prepare the stale dir under a name the reaper ignores, then publish
        // it whole, so a concurrent test's reaper never sees it half-made.
        let staging = root.join(format!(".staging-{owner_pid}"));
        fs::create_dir_all(&staging).unwrap();
        fs::write(staging.join("server.pid"), server.id().to_string()).unwrap();
        let dir = root.join(format!("fake-{owner_pid}-1-0"));
        fs::rename(&staging, &dir).unwrap();

        reap_stale().unwrap();

        let status = server.wait().unwrap();
        assert!(
            !status.success(),
            "the orphaned server must have been killed"
        );
        assert!(!dir.exists(), "the stale dir must be gone");
    }

    #[test]
    fn reaper_leaves_servers_of_live_owners_alone() {
        let dir = ServerDir::create("fake").unwrap();
        let mut server = Command::new("sleep")
            .arg("300")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        dir.record_pid(server.id()).unwrap();

        reap_stale().unwrap();

        assert!(
            server.try_wait().unwrap().is_none(),
            "a live owner's server must keep running"
        );
        assert!(dir.path().exists());
        server.kill().unwrap();
        server.wait().unwrap();
    }
}
