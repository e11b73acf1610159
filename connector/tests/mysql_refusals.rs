//! MySQL refusals with MySQL's own semantics, through real drivers: a
//! multi-statement text runs up to its blocked statement, whose ERR 1142
//! ends it (the same shape as a statement the server itself fails); and a
//! session whose access grant expires or is revoked is killed with ERR 1927.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::process::Command;
use std::time::Duration;

use common::{example_policy, mariadb_shop, python_lines, start_gate, start_yaml};
use gate_connector::managed::Managed;
use gate_proto::v1::Grant;
use gate_testkit::{MariaDb, free_port};

const SEED: &str = "
    CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(64), email VARCHAR(128));
    INSERT INTO shop.customers VALUES (1, 'Alice', 'alice@example.com'), (2, 'Bob', NULL);
";

fn mariadb() -> MariaDb {
    mariadb_shop(vec![SEED.into()])
}

fn resource(db: &MariaDb, port: u16, extra: &str) -> String {
    format!(
        "identities:\n  - {{name: app, password: app-pw}}\n\
         resources:\n  - {{name: orders-db, protocol: mysql, host: 127.0.0.1, port: {}, database: shop, username: gate_app, password: gate-app-pw, listen_port: {port}{extra}}}\n{}",
        db.port(),
        example_policy()
    )
}

/// Run `script` with `args`; its stdout lines.
fn python(script: &str, args: &[&str]) -> Vec<String> {
    let mut all = vec!["-c", script];
    all.extend_from_slice(args);
    python_lines(&all)
}

/// Each multi-statement text (argv[4:]) with PyMySQL: every result until the error, then `select id`.
const MULTI: &str = r#"
import sys, pymysql
c = pymysql.connect(host="127.0.0.1", port=int(sys.argv[1]), user=sys.argv[2], password=sys.argv[3],
    database="shop", autocommit=True, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
cur = c.cursor()
for text in sys.argv[4:]:
    seen = []
    try:
        cur.execute(text)
        while True:
            seen.append(cur.fetchall() if cur.description else cur.rowcount)
            if not cur.nextset():
                break
    except pymysql.err.MySQLError as e:
        seen.append(e.args[0])
    cur.execute("select id from customers order by id")
    print(seen, [r[0] for r in cur.fetchall()])
"#;

#[test]
fn a_multi_statement_runs_up_to_its_blocked_statement() {
    let db = mariadb();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _gate = start_gate(&resource(&db, port, ""), None, vec![listener]);
    let texts = [
        // Blocked in the middle: the statement before it runs, the one after does not.
        "insert into customers (id, name) values (3, 'Carol'); drop table customers; insert into customers (id, name) values (4, 'Dan')",
        // A result set before the refusal (its EOF then says more results follow).
        "select name from customers where id = 1; truncate table customers; select 2",
        // Blocked first: nothing runs.
        "drop table customers; insert into customers (id, name) values (5, 'Eve')",
    ];
    let mut args = vec![port.to_string(), "app".into(), "app-pw".into()];
    args.extend(texts.iter().map(|t| (*t).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(
        python(MULTI, &args),
        [
            "[1, 1142] [1, 2, 3]",
            "[(('Alice',),), 1142] [1, 2, 3]",
            "[1142] [1, 2, 3]",
        ]
    );
    // The same shape as a statement the server itself fails, direct.
    let direct = python(
        MULTI,
        &[
            &db.port().to_string(),
            "gate_app",
            "gate-app-pw",
            "insert into customers (id, name) values (6, 'Fay'); select * from no_such_table; insert into customers (id, name) values (7, 'Gus')",
        ],
    );
    assert_eq!(direct, ["[1, 1146] [1, 2, 3, 6]"]);
}

/// Log in, query, wait argv[4] seconds (the grant ends meanwhile), query again.
const KILLED: &str = r#"
import sys, time, pymysql
c = pymysql.connect(host="127.0.0.1", port=int(sys.argv[1]), user=sys.argv[2], password=sys.argv[3], database="shop")
cur = c.cursor(); cur.execute("select 1"); print("before", cur.fetchall())
time.sleep(float(sys.argv[4]))
try:
    cur.execute("select 2"); print("after", cur.fetchall())
except pymysql.err.MySQLError as e:
    print("killed", e.args[0], e.args[1])
"#;

fn grant(expires_in: Duration) -> Grant {
    let expires_in = i64::try_from(expires_in.as_millis()).unwrap();
    Grant {
        access_request_id: "ar-1".into(),
        subject: "app".into(),
        resource: "orders-db".into(),
        expires_at: gate_proto::wire::rfc3339(gate_proto::wire::now_ms() + expires_in),
        ..Default::default()
    }
}

#[test]
fn a_session_is_killed_with_1927_when_its_grant_expires_or_is_revoked() {
    let db = mariadb();
    let port = free_port().unwrap();
    let gate = start_yaml(&resource(&db, port, ", require_access_grant: true"), None);
    let set_grants = |grants: Vec<Grant>| {
        let engine = gate_connector::startup::compile_policies(&gate.gate.config).unwrap();
        gate.gate.live.replace(
            engine,
            Managed {
                version: 1,
                grants,
                ..Default::default()
            },
        );
    };
    let args = |wait: &str| vec![port.to_string(), "app".into(), "app-pw".into(), wait.into()];
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        python(KILLED, &args)
    };

    // No grant: refused at login.
    let refused = Command::new(gate_testkit::venv_python().unwrap())
        .args(["-c", KILLED])
        .args(args("0"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("1044"),
        "{refused:?}"
    );

    // Expiry: the grant ends 3 s from now, the client waits 4 s.
    set_grants(vec![grant(Duration::from_secs(3))]);
    let out = run(args("4"));
    assert_eq!(out[0], "before ((1,),)");
    assert!(
        out[1]
            .starts_with("killed 1927 Connection was killed: access grant for \"orders-db\" ended"),
        "{out:?}"
    );

    // Revocation: a long grant, withdrawn while the client waits.
    set_grants(vec![grant(Duration::from_secs(3600))]);
    let waiting = args("3");
    let client = std::thread::spawn(move || run(waiting));
    std::thread::sleep(Duration::from_millis(1500));
    set_grants(Vec::new());
    let out = client.join().unwrap();
    assert_eq!(out[0], "before ((1,),)");
    assert!(out[1].starts_with("killed 1927 "), "{out:?}");
    let audit = gate.audit_when(|a| a.matches("ended (expired or revoked)").count() >= 2);
    assert!(
        audit.matches("ended (expired or revoked)").count() >= 2,
        "{audit}"
    );
}
