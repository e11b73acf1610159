//! MySQL end to end: a real MariaDB upstream, Gate in-process on a
//! dedicated `listen_port`, and the real `mariadb` CLI as the client.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::process::{Command, Output};

use common::{GateRun, audit_file_when, example_policy, start_gate};
use gate_testkit::{MariaDb, MariaDbOptions};

const SEED: &str = "
    CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(64), email VARCHAR(128), ssn CHAR(11));
    INSERT INTO shop.customers VALUES (1, 'Alice', 'alice@example.com', '123-45-6789'), (2, 'Bob', NULL, '987-65-4321');
";

struct MyStack {
    gate: GateRun,
    /// The resource's own port.
    port: u16,
    db: MariaDb,
}

fn start(policy_yaml: &str) -> MyStack {
    let db = MariaDb::start(MariaDbOptions {
        databases: vec!["shop".into()],
        users: vec![("gate_app".into(), "gate-app-pw".into())],
        seed: vec![SEED.into()],
    })
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let yaml = format!(
        "identities:\n  - {{name: app, password: app-pw, groups: [engineering]}}\n  - {{name: boss, password: boss-pw, groups: [admins]}}\n\
         resources:\n  - {{name: orders-db, protocol: mysql, host: 127.0.0.1, port: {}, database: shop, username: gate_app, password: gate-app-pw, listen_port: {port}}}\n{policy_yaml}",
        db.port()
    );
    let gate = start_gate(&yaml, None, vec![listener]);
    MyStack { gate, port, db }
}

/// The `mariadb` CLI logged in to Gate's MySQL port, `--batch --skip-column-names`.
fn client(stack: &MyStack, user: &str, password: &str) -> Command {
    let mut command = Command::new("mariadb");
    command
        .arg("--no-defaults")
        .args(["-h", "127.0.0.1", "-P", &stack.port.to_string()])
        .args(["-u", user, &format!("-p{password}")])
        .args(["--batch", "--skip-column-names", "--connect-timeout=10"]);
    command
}

/// [`mariadb`] as the static identity `app` (masks apply to it).
fn as_app(stack: &MyStack, sql: &str) -> Output {
    mariadb(stack, "app", "app-pw", &[], sql)
}

/// The `mariadb` CLI through Gate running one `-e`.
fn mariadb(stack: &MyStack, user: &str, password: &str, extra: &[&str], sql: &str) -> Output {
    client(stack, user, password)
        .args(extra)
        .args(["-e", sql])
        .output()
        .unwrap()
}

/// The `mariadb` CLI reading `script` from stdin with `--force` (it goes on after errors).
fn mariadb_script(stack: &MyStack, user: &str, password: &str, script: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new("mariadb")
        .arg("--no-defaults")
        .args(["-h", "127.0.0.1", "-P", &stack.port.to_string()])
        .args(["-u", user, &format!("-p{password}")])
        .args([
            "--batch",
            "--skip-column-names",
            "--force",
            "--connect-timeout=10",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure, got {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn select_masks_and_drop_is_refused() {
    let stack = start(&example_policy());
    let rows = ok(&as_app(
        &stack,
        "select id, name, email, ssn from customers order by id",
    ));
    assert_eq!(
        rows,
        "1\tAlice\t*************.com\t***\n2\tBob\tNULL\t***\n"
    );
    // Renaming does not escape the mask: org_table/org_name say where it comes from.
    let renamed = ok(&as_app(
        &stack,
        "select email as x from customers c where id = 1",
    ));
    assert_eq!(renamed, "*************.com\n");
    // A derived table names itself as the source: untraced, so on_derived (block) applies.
    let derived = err(&as_app(
        &stack,
        "select x from (select email as x from customers) t",
    ));
    assert!(
        derived.contains("computed from a masked column"),
        "{derived}"
    );
    // Admins see clear values.
    let clear = ok(&mariadb(
        &stack,
        "boss",
        "boss-pw",
        &[],
        "select email from customers where id = 1",
    ));
    assert_eq!(clear, "alice@example.com\n");
    let refused = err(&as_app(&stack, "drop table customers"));
    assert!(refused.contains("ERROR 1142 (42000)"), "{refused}");
    assert!(
        refused.contains("destructive queries are not allowed"),
        "{refused}"
    );
    assert_eq!(
        stack
            .db
            .sql("select count(*) from shop.customers")
            .unwrap()
            .trim(),
        "2"
    );
}

#[test]
fn a_blocked_statement_leaves_the_connection_usable() {
    let stack = start(&example_policy());
    let out = mariadb_script(
        &stack,
        "app",
        "app-pw",
        "select 1; drop table customers; select 2;\nbegin; insert into customers (id, name) values (3, 'Carol'); drop table customers; commit;\nselect count(*) from customers;\n",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout, "1\n2\n3\n", "{stderr}");
    assert_eq!(stderr.matches("ERROR 1142 (42000)").count(), 2, "{stderr}");
    // Every decision is audited, with its rows.
    let audit = audit_when(&stack, |a| a.contains("select count(*) from customers"));
    let blocked: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains("\"action\":\"block\""))
        .collect();
    assert_eq!(blocked.len(), 2, "{audit}");
    assert!(
        blocked
            .iter()
            .all(|l| l.contains("\"protocol\":\"mysql\"") && l.contains("drop table customers")),
        "{audit}"
    );
    assert!(
        audit.lines().any(
            |l| l.contains("\"statement\":\"select count(*) from customers\"")
                && l.contains("\"rows\":1")
        ),
        "{audit}"
    );
}

/// The audit log once `done` holds for it, or after 5 s.
fn audit_when(stack: &MyStack, done: impl Fn(&str) -> bool) -> String {
    audit_file_when(&stack.gate.audit, done)
}

#[test]
fn unknown_user_and_wrong_password_look_the_same() {
    let stack = start(&example_policy());
    let unknown = err(&mariadb(&stack, "nobody", "app-pw", &[], "select 1"));
    let wrong = err(&mariadb(&stack, "app", "wrong", &[], "select 1"));
    assert!(
        unknown.contains(
            "ERROR 1045 (28000): Access denied for user 'nobody'@'127.0.0.1' (using password: YES)"
        ),
        "{unknown}"
    );
    assert_eq!(wrong.replace("'app'", "'nobody'"), unknown);
}

#[test]
fn login_with_native_password_and_unknown_database() {
    let stack = start(&example_policy());
    let native = ok(&mariadb(
        &stack,
        "app",
        "app-pw",
        &["--default-auth=mysql_native_password"],
        "select current_user()",
    ));
    assert_eq!(native, "gate_app@127.0.0.1\n");
    let missing = err(&mariadb(
        &stack,
        "app",
        "app-pw",
        &["-D", "nope"],
        "select 1",
    ));
    assert!(missing.contains("ERROR 1049 (42000)"), "{missing}");
    // USE of another schema the upstream account sees works.
    let other = ok(&mariadb(
        &stack,
        "app",
        "app-pw",
        &["-D", "mysql"],
        "select database()",
    ));
    assert_eq!(other, "mysql\n");
}

#[test]
fn data_movement_of_masked_columns_is_refused() {
    let stack = start(&example_policy());
    for sql in [
        "create table copy1 as select email from customers",
        "create table copy2 select * from customers",
        "insert into customers (id, name) select id + 10, email from customers",
        "select email into @stash from customers limit 1",
        "select email from customers into outfile '/tmp/gate-leak.txt'",
        "select @v := email from customers",
        "create view v as select email as e from customers",
    ] {
        let refused = err(&mariadb(&stack, "app", "app-pw", &[], sql));
        assert!(refused.contains("ERROR 1142 (42000)"), "{sql}: {refused}");
    }
    assert_eq!(
        stack
            .db
            .sql("select count(*) from shop.customers")
            .unwrap()
            .trim(),
        "2"
    );
    // Computed columns from masked ones follow on_derived (default block).
    let derived = err(&as_app(&stack, "select lower(email) from customers"));
    assert!(
        derived.contains("computed from a masked column"),
        "{derived}"
    );
}

#[test]
fn a_jwt_logs_in_through_the_cleartext_plugin_on_loopback() {
    use common::jwt::{claims, now, token, trusted_issuer};
    let dir = tempfile::tempdir().unwrap();
    let (pem, auth) = trusted_issuer(dir.path());
    let stack = start(&format!("{}{auth}", example_policy()));
    let admin = token(
        &pem,
        "k1",
        claims("carol", &["admins"], "gate", now() + 300),
    );
    let clear = ok(&mariadb(
        &stack,
        "carol",
        &admin,
        &[],
        "select email from customers where id = 1",
    ));
    assert_eq!(
        clear, "alice@example.com\n",
        "the token's groups reach the policy"
    );
    let expired = token(
        &pem,
        "k1",
        claims("carol", &["admins"], "gate", now() - 300),
    );
    let refused = err(&mariadb(&stack, "carol", &expired, &[], "select 1"));
    assert!(refused.contains("ERROR 1045 (28000)"), "{refused}");
}

#[test]
fn the_shared_listener_greets_silent_clients_as_mysql_and_routes_by_database() {
    let stack = start(&example_policy());
    let shared = |db: &str| {
        Command::new("mariadb")
            .arg("--no-defaults")
            .args(["-h", "127.0.0.1", "-P", &stack.gate.port.to_string()])
            .args(["-u", "app", "-papp-pw", "-D", db])
            .args(["--batch", "--skip-column-names", "-e", "select database()"])
            .output()
            .unwrap()
    };
    assert_eq!(ok(&shared("orders-db")), "shop\n");
    let unknown = err(&shared("elsewhere"));
    assert!(
        unknown.contains("ERROR 1049 (42000): Unknown database 'elsewhere'"),
        "{unknown}"
    );
}

#[test]
fn pooled_connections_are_reset_between_sessions_and_counted() {
    let stack = start(&example_policy());
    // (As an admin: no masks, so reading a user variable is not refused.)
    let id = |sql: &str| ok(&mariadb(&stack, "boss", "boss-pw", &[], sql));
    let first = id("set @leftover = 'secret'; select connection_id()");
    let second = id("select connection_id(), coalesce(@leftover, 'clean'), database()");
    let (conn, rest) = second.split_once('\t').unwrap();
    assert_eq!(conn, first.trim(), "the upstream connection was reused");
    assert_eq!(
        rest, "clean\tshop\n",
        "COM_RESET_CONNECTION cleared the user variable"
    );
    let (_, metrics) = common::http_get(stack.gate.health_port, "/metrics");
    assert!(
        metrics.contains("gate_connpool_active_connections{resource=\"orders-db\""),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "gate_request_duration_seconds_count{protocol=\"mysql\",resource=\"orders-db\"}"
        ),
        "{metrics}"
    );
}

#[test]
fn gate_logs_in_upstream_with_mariadb_ed25519() {
    let db = MariaDb::start(MariaDbOptions {
        databases: vec!["shop".into()],
        seed: vec![
            "INSTALL SONAME 'auth_ed25519'".into(),
            "CREATE USER 'gate_ed'@'127.0.0.1' IDENTIFIED VIA ed25519 USING PASSWORD('ed-pw'); GRANT ALL ON shop.* TO 'gate_ed'@'127.0.0.1'".into(),
        ],
        ..Default::default()
    })
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let yaml = format!(
        "identities:\n  - {{name: app, password: app-pw}}\n\
         resources:\n  - {{name: orders-db, protocol: mysql, host: 127.0.0.1, port: {}, database: shop, username: gate_ed, password: ed-pw, listen_port: {port}}}\n{}",
        db.port(),
        example_policy()
    );
    let gate = start_gate(&yaml, None, vec![listener]);
    let stack = MyStack { gate, port, db };
    assert_eq!(
        ok(&as_app(&stack, "select current_user()")),
        "gate_ed@127.0.0.1\n"
    );
}
