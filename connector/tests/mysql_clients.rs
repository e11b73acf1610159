//! MySQL drivers through Gate with client TLS: mysql-connector-python
//! (caching_sha2_password over TLS, binary-protocol prepared statements)
//! and PyMySQL (caching_sha2 fast path, multiple result sets), against a
//! real MariaDB; a session policy admits only TLS connections.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use std::process::Command;

use common::{example_policy, start_gate};
use gate_connector::tls::TlsFiles;
use gate_testkit::{MariaDb, MariaDbOptions, SelfSignedCert};

const SEED: &str = "
    CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(64), email VARCHAR(128), ssn CHAR(11), born DATE, score DECIMAL(6,2));
    INSERT INTO shop.customers VALUES (1, 'Alice', 'alice@example.com', '123-45-6789', '1990-05-17', 12.50), (2, 'Bob', NULL, '987-65-4321', NULL, NULL);
";

const TLS_ONLY: &str = "package tls_only\nimport rego.v1\nsession := {\"action\": \"block\", \"reason\": \"TLS is required\"} if not input.connection.tls\n";

/// Run a Python script with the test venv's interpreter; its stdout.
fn python(script: &str, port: u16) -> (bool, String, String) {
    let out = Command::new(gate_testkit::venv_python().unwrap())
        .args(["-c", script, &port.to_string()])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const CONNECTOR: &str = r#"
import sys, mysql.connector
port = int(sys.argv[1])
c = mysql.connector.connect(host="127.0.0.1", port=port, user="app", password="app-pw", database="shop",
    use_pure=True, ssl_disabled=False, ssl_verify_cert=False, auth_plugin="caching_sha2_password")
cur = c.cursor(prepared=True)
cur.execute("select id, name, email, ssn, born, score from customers where id = %s", (1,))
print(cur.fetchall())
cur.execute("select id, email from customers where id > %s order by id", (0,))
print(cur.fetchall())
try:
    cur.execute("drop table customers")
except mysql.connector.Error as e:
    print("refused", e.errno, e.sqlstate, e.msg)
cur.execute("select count(*) from customers where name = %s", ("Alice",))
print(cur.fetchall())
"#;

const PYMYSQL: &str = r#"
import sys, pymysql
port = int(sys.argv[1])
c = pymysql.connect(host="127.0.0.1", port=port, user="app", password="app-pw", database="shop",
    ssl={"fake_flag_to_enable_tls": True}, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
print("tls", c._sock.version() is not None)
cur = c.cursor()
cur.execute("select 1; select email, ssn from customers order by id; select name from customers where id = 2")
print(cur.fetchall())
cur.nextset(); print(cur.fetchall())
cur.nextset(); print(cur.fetchall())
"#;

const PLAIN: &str = r#"
import sys, pymysql
try:
    pymysql.connect(host="127.0.0.1", port=int(sys.argv[1]), user="app", password="app-pw", database="shop", ssl_disabled=True)
    print("admitted")
except pymysql.err.OperationalError as e:
    print("refused", e.args[0], e.args[1])
"#;

#[test]
fn drivers_over_tls_with_prepared_statements_and_multiple_results() {
    let db = MariaDb::start(MariaDbOptions {
        databases: vec!["shop".into()],
        users: vec![("gate_app".into(), "gate-app-pw".into())],
        seed: vec![SEED.into()],
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = SelfSignedCert::generate(dir.path(), "gate", "127.0.0.1").unwrap();
    let tls_policy = dir.path().join("tls_only.rego");
    std::fs::write(&tls_policy, TLS_ONLY).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let yaml = format!(
        "identities:\n  - {{name: app, password: app-pw, groups: [engineering]}}\n\
         resources:\n  - {{name: orders-db, protocol: mysql, host: 127.0.0.1, port: {}, database: shop, username: gate_app, password: gate-app-pw, listen_port: {port}}}\n\
         {}  - {{path: \"{}\", stage: session}}\n",
        db.port(),
        example_policy(),
        tls_policy.display()
    );
    let tls = TlsFiles::load(&cert.cert, &cert.key).unwrap();
    let _gate = start_gate(&yaml, Some(tls), vec![listener]);

    let (_, plain, stderr) = python(PLAIN, port);
    assert_eq!(plain.trim(), "refused 1044 TLS is required", "{stderr}");

    let (success, out, stderr) = python(CONNECTOR, port);
    assert!(success, "{out}\n{stderr}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "[(1, 'Alice', '*************.com', '***', datetime.date(1990, 5, 17), Decimal('12.50'))]",
            "[(1, '*************.com'), (2, None)]",
            "refused 1142 42000 destructive queries are not allowed",
            "[(1,)]",
        ],
        "{stderr}"
    );

    let (success, out, stderr) = python(PYMYSQL, port);
    assert!(success, "{out}\n{stderr}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "tls True",
            "((1,),)",
            "(('*************.com', '***'), (None, '***'))",
            "(('Bob',),)",
        ],
        "{stderr}"
    );
}
