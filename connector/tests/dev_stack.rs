//! `make dev` end to end: scripts/dev.sh starts PostgreSQL with sample data
//! (and the MariaDB, JSON API and nx-27017 samples) and the real
//! gate-connector binary; psql, mariadb and the printed pymongo one-liner see
//! masked data and a refused DROP, the printed ssh line reaches the sample
//! sshd and its session is recorded, shipped and playable from the control
//! plane; SIGTERM stops everything and removes the sample database.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the dev stack's process group if the test fails midway.
struct Group(i32);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

#[test]
fn make_dev_serves_masked_sample_data_and_stops_cleanly() {
    let repo = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let port = gate_testkit::free_port().unwrap();
    let health = gate_testkit::free_port().unwrap();
    let control = gate_testkit::free_port().unwrap();
    let mysql = gate_testkit::free_port().unwrap();
    let mongo = gate_testkit::free_port().unwrap();
    let ssh_port = gate_testkit::free_port().unwrap();
    let state = tempfile::tempdir().unwrap();
    let connector_bin = Path::new(env!("CARGO_BIN_EXE_gate-connector"));
    let mut dev = Command::new(repo.join("scripts/dev.sh"));
    // A workspace test run has built gate-control next to gate-connector; otherwise dev.sh builds it.
    let control_bin = connector_bin.with_file_name("gate-control");
    if control_bin.exists() {
        dev.env("GATE_CONTROL_BIN", &control_bin);
    }
    let mut dev = dev
        .current_dir(repo)
        .env("GATE_CONNECTOR_BIN", connector_bin)
        .env("GATE_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("GATE_HEALTH_ADDR", format!("127.0.0.1:{health}"))
        .env("GATE_CONTROL_LISTEN_ADDR", format!("127.0.0.1:{control}"))
        .env("GATE_MYSQL_LISTEN_PORT", mysql.to_string())
        .env("GATE_MONGO_LISTEN_PORT", mongo.to_string())
        .env("GATE_SSH_LISTEN_PORT", ssh_port.to_string())
        .env(
            "GATE_SSH_HOST_KEY_FILE",
            state.path().join("ssh_host_ed25519"),
        )
        .env("GATE_SQLITE_PATH", state.path().join("gate.db"))
        .env("GATE_CONNECTOR_STATE_DIR", state.path().join("connector"))
        .env("GATE_CONNECTOR_SPOOL_DIR", state.path().join("spool"))
        .env(
            "GATE_CONNECTOR_RECORDING_DIR",
            state.path().join("recordings"),
        )
        .env(
            "GATE_RECORDING_DIR",
            state.path().join("control-recordings"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let _group = Group(dev.id() as i32);
    let mut stderr = BufReader::new(dev.stderr.take().unwrap());
    let mut log = String::new();
    let started = Instant::now();
    let mut temp_dir = None;
    while !log.contains("Ctrl-C stops everything") {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "dev stack not ready:\n{log}"
        );
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("dev.sh exited early:\n{log}");
        }
        if let Some(dir) = line
            .strip_prefix("dev: starting PostgreSQL")
            .and_then(|l| l.split('(').nth(1))
            .and_then(|s| s.strip_suffix(")\n"))
        {
            temp_dir.get_or_insert_with(|| dir.to_owned());
        }
        log.push_str(&line);
    }
    assert!(
        log.contains(&format!(
            "PGPASSWORD=app psql -h localhost -p {port} -U app -d appdb"
        )),
        "{log}"
    );
    // The MariaDB sample, through the MySQL port the log names.
    assert!(
        log.contains(&format!(
            "mariadb -h 127.0.0.1 -P {mysql} -u app -papp orders-db"
        )),
        "{log}"
    );
    let mariadb = |sql: &str| {
        Command::new("mariadb")
            .args(["--no-defaults", "-h", "127.0.0.1", "-P", &mysql.to_string()])
            .args([
                "-u",
                "app",
                "-papp",
                "orders-db",
                "--batch",
                "--skip-column-names",
                "-e",
                sql,
            ])
            .output()
            .unwrap()
    };
    let rows = mariadb("select email, ssn from customers where id = 1");
    assert_eq!(
        String::from_utf8_lossy(&rows.stdout),
        "*************.com\t***\n",
        "{}",
        String::from_utf8_lossy(&rows.stderr)
    );
    // The MongoDB sample (nx-27017), with the pymongo one-liner the log prints.
    let one_liner = log
        .lines()
        .find(|l| l.contains("import pymongo"))
        .unwrap_or_else(|| panic!("no pymongo one-liner:\n{log}"))
        .trim()
        .to_owned();
    assert!(
        one_liner.contains(&format!("127.0.0.1:{mongo}/")),
        "{one_liner}"
    );
    let (python, script) = one_liner.split_once(" -c ").unwrap();
    let emails = Command::new(python)
        .arg("-c")
        .arg(script.trim_matches('"'))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&emails.stdout),
        "[{'email': '*************.com'}, {'email': '*****************.org'}, {'email': '*************.net'}]\n",
        "{}",
        String::from_utf8_lossy(&emails.stderr)
    );
    // The SSH sample, with the ssh line the log prints (a command instead of the shell).
    let ssh_line = log
        .lines()
        .find(|l| l.trim_start().starts_with("ssh -i "))
        .unwrap_or_else(|| panic!("no ssh line:\n{log}"))
        .trim()
        .to_owned();
    assert!(
        ssh_line.ends_with(&format!("-p {ssh_port} app@localhost")),
        "{ssh_line}"
    );
    let ssh = Command::new("ssh")
        .args(ssh_line.split_whitespace().skip(1))
        .args(["-o", "BatchMode=yes", "echo", "through-gate"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ssh.stdout),
        "through-gate\n",
        "{}",
        String::from_utf8_lossy(&ssh.stderr)
    );
    let drop = mariadb("drop table customers");
    assert!(
        String::from_utf8_lossy(&drop.stderr).contains("ERROR 1142 (42000)"),
        "{}",
        String::from_utf8_lossy(&drop.stderr)
    );

    let out = Command::new("/usr/lib/postgresql/15/bin/psql")
        .env("PGPASSWORD", "app")
        .args([
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "app",
            "-d",
            "appdb",
        ])
        .args([
            "-c",
            "select email, ssn from customers where id = 1",
            "-c",
            "select email as x from customers where id = 2",
        ])
        .args([
            "-c",
            "drop table customers",
            "-c",
            "select count(*) from customers",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["*************.com|***", "*****************.org", "3"],
        "{err}"
    );
    assert!(err.contains("destructive queries are not allowed"), "{err}");

    // The sample JSON API through Gate, as the printed curl lines show it.
    assert!(
        log.contains(&format!(
            "curl -s -u app:app http://localhost:{port}/v1/customers"
        )),
        "{log}"
    );
    let api = |path: &str| {
        let out = Command::new("curl")
            .args(["-s", "-u", "app:app", "-w", "\n%{http_code}"])
            .arg(format!("http://localhost:{port}{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let customers = api("/v1/customers");
    let (body, code) = customers.rsplit_once('\n').unwrap();
    assert_eq!(code, "200", "{body}");
    let rows: serde_json::Value = serde_json::from_str(body).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "closed customers filtered out: {body}");
    assert_eq!(rows[0]["email"], "*************.com");
    assert_eq!(rows[0]["ssn"], "***");
    let keys = api("/v1/admin/keys");
    assert!(keys.ends_with("\n403"), "{keys}");
    assert!(!keys.contains("sk-live"), "{keys}");

    let ready = Command::new("curl")
        .arg("-sf")
        .arg(format!("http://127.0.0.1:{health}/readyz"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ready.stdout),
        "ready\n",
        "the real binary serves /readyz"
    );

    // The control plane is up, healthy and serving the API (insecure, as make dev runs it).
    let curl = |path: &str| {
        let out = Command::new("curl")
            .arg("-s")
            .arg(format!("http://127.0.0.1:{control}{path}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl("/health"), r#"{"database":"ok","status":"ok"}"#);
    assert_eq!(curl("/api/v1/resources"), r#"{"resources":[]}"#);
    // Recordings are on at both ends: the ssh exec above (record: true) was written to the
    // connector's spool, shipped, and is listed and playable from the control plane.
    let mut listed = String::new();
    for _ in 0..100 {
        listed = curl("/api/v1/recordings?protocol=ssh");
        if listed.contains(r#""command":"echo through-gate""#) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let recordings: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let recording = recordings["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["command"] == "echo through-gate")
        .unwrap_or_else(|| panic!("the ssh exec was not recorded: {listed}"));
    assert_eq!(recording["resource"], "bastion-web1", "{recording}");
    assert_eq!(recording["exit_status"], 0, "{recording}");
    let cast = curl(&format!(
        "/api/v1/recordings/{}/cast",
        recording["id"].as_str().unwrap()
    ));
    assert!(cast.starts_with(r#"{"version":2"#), "{cast}");
    assert!(cast.contains("through-gate"), "{cast}");
    assert!(
        state.path().join("recordings").is_dir(),
        "the connector's recording spool"
    );
    assert!(
        state.path().join("gate.db").exists(),
        "SQLite store created on first start"
    );

    // The connector registered, and a policy posted to the control plane (the README's
    // walkthrough) is enforced on the next statement.
    let connectors = curl("/api/v1/connectors");
    assert!(connectors.contains(r#""status":"online""#), "{connectors}");
    let posted = Command::new("curl")
        .args([
            "-s",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            "@docs/examples/close-customers.json",
        ])
        .arg(format!("http://127.0.0.1:{control}/api/v1/policies"))
        .current_dir(repo)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&posted.stdout).contains(r#""state":"active""#));
    let psql_once = |sql: &str| {
        Command::new("/usr/lib/postgresql/15/bin/psql")
            .env("PGPASSWORD", "app")
            .args(["-X", "-A", "-t", "-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-U", "app", "-d", "appdb", "-c", sql])
            .output()
            .unwrap()
    };
    let started = Instant::now();
    loop {
        let out = psql_once("select count(*) from customers");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if err.contains("customers is closed for maintenance") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "central policy not enforced: {err}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        state.path().join("connector/snapshot.json").exists(),
        "last snapshot saved"
    );

    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(dev.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = dev.wait().unwrap();
    assert!(status.success(), "dev.sh exit: {status}");
    let dir = temp_dir.expect("dev.sh names its temp dir");
    assert!(!Path::new(&dir).exists(), "{dir} left behind");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "gate-connector still listening"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", control)).is_err(),
        "gate-control still listening"
    );
}
