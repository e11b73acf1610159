//! caching_sha2_password full authentication on Gate's client side, with
//! real drivers: a user's first login since Gate started (nothing cached, as
//! on a MySQL 8 server) gets `perform_full_authentication`; PyMySQL then
//! does the RSA key exchange without TLS (asks for Gate's public key),
//! mysql-connector-python sends the password over TLS; later logins take
//! the fast path. Wrong passwords and unknown users get ERR 1045 either way.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;

use common::{GateRun, example_policy, mariadb_shop, python_lines, start_gate};
use gate_connector::tls::TlsFiles;
use gate_testkit::{MariaDb, SelfSignedCert};

struct Stack {
    _gate: GateRun,
    port: u16,
    _db: MariaDb,
    _dir: tempfile::TempDir,
}

fn start(tls: bool) -> Stack {
    start_with(tls, "")
}

/// [`start`] with more top-level config (`auth:`).
fn start_with(tls: bool, extra: &str) -> Stack {
    let db = mariadb_shop(Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let tls = tls.then(|| {
        let cert = SelfSignedCert::generate(dir.path(), "gate", "127.0.0.1").unwrap();
        TlsFiles::load(&cert.cert, &cert.key).unwrap()
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let yaml = format!(
        "identities:\n  - {{name: app, password: app-pw}}\n  - {{name: other, password: other-pw}}\n\
         resources:\n  - {{name: orders-db, protocol: mysql, host: 127.0.0.1, port: {}, database: shop, username: gate_app, password: gate-app-pw, listen_port: {port}}}\n{}{extra}",
        db.port(),
        example_policy(),
    );
    let gate = start_gate(&yaml, tls, vec![listener]);
    Stack {
        _gate: gate,
        port,
        _db: db,
        _dir: dir,
    }
}

/// Run `script` with `port user password` as arguments; its stdout lines.
fn python(script: &str, port: u16, user: &str, password: &str) -> Vec<String> {
    python_lines(&["-c", script, &port.to_string(), user, password])
}

/// PyMySQL without TLS: whether it had to fetch Gate's RSA key, and what `select 1` gave.
const PYMYSQL_PLAIN: &str = r#"
import sys, pymysql
try:
    c = pymysql.connect(host="127.0.0.1", port=int(sys.argv[1]), user=sys.argv[2], password=sys.argv[3],
        database="shop", ssl_disabled=True)
    key = c.server_public_key or b""
    cur = c.cursor(); cur.execute("select 40 + 2"); (value,) = cur.fetchone()
    print("ok", value, "rsa" if key.startswith(b"-----BEGIN PUBLIC KEY-----") else "fast")
except pymysql.err.OperationalError as e:
    print("refused", e.args[0], e.args[1])
"#;

#[test]
fn pymysql_without_tls_logs_in_first_by_rsa_key_exchange_then_by_the_fast_path() {
    let stack = start(false);
    let login = |user: &str, password: &str| python(PYMYSQL_PLAIN, stack.port, user, password);
    // Wrong passwords before the first success: full authentication, refused.
    assert_eq!(
        login("app", "wrong"),
        ["refused 1045 Access denied for user 'app'@'127.0.0.1' (using password: YES)"]
    );
    assert_eq!(
        login("nobody", "app-pw"),
        ["refused 1045 Access denied for user 'nobody'@'127.0.0.1' (using password: YES)"]
    );
    assert_eq!(login("app", "app-pw"), ["ok 42 rsa"]);
    assert_eq!(
        login("app", "app-pw"),
        ["ok 42 fast"],
        "cached after full auth"
    );
    // Each identity is cached on its own.
    assert_eq!(login("other", "other-pw"), ["ok 42 rsa"]);
    // A wrong password for a cached user is still refused (by full authentication).
    assert_eq!(
        login("app", "wrong"),
        ["refused 1045 Access denied for user 'app'@'127.0.0.1' (using password: YES)"]
    );
    assert_eq!(login("app", "app-pw"), ["ok 42 fast"]);
}

/// mysql-connector-python (pure) over TLS, printing the AuthMoreData codes it receives.
const CONNECTOR_TLS: &str = r#"
import sys, mysql.connector
from mysql.connector.plugins import caching_sha2_password as plugin
seen = []
original = plugin.MySQLCachingSHA2PasswordAuthPlugin.auth_response
def spy(self, auth_data, **kwargs):
    if auth_data and len(auth_data) == 1:
        seen.append({3: "fast", 4: "full"}.get(auth_data[0], str(auth_data[0])))
    return original(self, auth_data, **kwargs)
plugin.MySQLCachingSHA2PasswordAuthPlugin.auth_response = spy
try:
    c = mysql.connector.connect(host="127.0.0.1", port=int(sys.argv[1]), user=sys.argv[2], password=sys.argv[3],
        database="shop", use_pure=True, ssl_disabled=False, ssl_verify_cert=False, auth_plugin="caching_sha2_password")
    cur = c.cursor(); cur.execute("select 40 + 2"); (value,) = cur.fetchone()
    print("ok", value, ",".join(seen))
except mysql.connector.Error as e:
    print("refused", e.errno, e.sqlstate, ",".join(seen))
"#;

#[test]
fn mysql_connector_over_tls_sends_the_password_on_full_authentication() {
    let stack = start(true);
    let login = |user: &str, password: &str| python(CONNECTOR_TLS, stack.port, user, password);
    assert_eq!(login("app", "wrong"), ["refused 1045 28000 full"]);
    assert_eq!(login("app", "app-pw"), ["ok 42 full"]);
    assert_eq!(login("app", "app-pw"), ["ok 42 fast"]);
    assert_eq!(login("nobody", "x"), ["refused 1045 28000 full"]);
}

#[test]
fn a_jwt_over_tls_logs_in_by_caching_sha2_full_authentication() {
    use common::jwt::{claims, now, token, trusted_issuer};
    let dir = tempfile::tempdir().unwrap();
    let (pem, auth) = trusted_issuer(dir.path());
    let stack = start_with(true, &auth);
    let good = token(
        &pem,
        "k1",
        claims("carol", &["admins"], "gate", now() + 300),
    );
    let login = |jwt: &str| python(CONNECTOR_TLS, stack.port, "carol", jwt);
    // No cleartext plugin needed: the token is the password of the full authentication.
    assert_eq!(login(&good), ["ok 42 full"]);
    let expired = token(
        &pem,
        "k1",
        claims("carol", &["admins"], "gate", now() - 300),
    );
    assert_eq!(login(&expired), ["refused 1045 28000 full"]);
}
