//! A real OpenID Connect provider for the UI sign-in tests: panva's `oidc-provider` from npm
//! (`control/tests/peers/oidc`, installed by `scripts/test-npm.sh`), a control plane whose
//! `ui.oidc` points at it, and the provider's login driven over plain HTTP with a cookie jar.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use gate_config::{ControlConfig, load_str};
use gate_control::http::limits::HttpLimits;
use gate_control::server::start_with;

use super::super::common::{Cp, ROOT_KEY, config_yaml};
use super::{FORM, Reply, form, request};

pub const CLIENT_ID: &str = "gate-admin-ui";
pub const CLIENT_SECRET: &str = "oidc-test-client-secret-0123456789";

/// The provider process (stopped on drop) and its issuer URL.
pub struct Idp {
    child: Child,
    _stdin: ChildStdin,
    pub issuer: String,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn npm_cache() -> PathBuf {
    std::env::var_os("GATE_TEST_NPM").map_or_else(
        || PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/gate/test-npm"),
        PathBuf::from,
    )
}

fn json_line(out: &mut BufReader<ChildStdout>) -> serde_json::Value {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("oidc provider said {line:?}: {e}"))
}

/// A control plane whose admin UI signs people in through a fresh provider; groups map as
/// `gate-admins` → admin, `staff` → readonly (`mallory` is in neither).
pub async fn start_cp_with_idp() -> (Cp, Idp) {
    let modules = npm_cache().join("node_modules/oidc-provider");
    assert!(
        modules.exists(),
        "{} is missing: run scripts/test-npm.sh (make test does)",
        modules.display()
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/oidc/provider.mjs");
    let mut child = Command::new("node")
        .arg(script)
        .env("GATE_TEST_NPM", npm_cache())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node (apt-get install nodejs npm)");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    let issuer = json_line(&mut out)["issuer"].as_str().unwrap().to_owned();

    let port = gate_testkit::free_port().unwrap();
    let redirect = format!("http://127.0.0.1:{port}/ui/oidc/callback");
    let client = serde_json::json!({
        "redirect_uri": redirect, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
    });
    writeln!(stdin, "{client}").unwrap();
    assert_eq!(json_line(&mut out)["ready"], true);
    // The provider logs to stdout; a closed pipe would kill it.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));

    let dir = tempfile::tempdir().unwrap();
    let yaml = config_yaml(dir.path(), None, Some(ROOT_KEY))
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
        + &format!(
            "ui:\n  oidc:\n    issuer: {issuer}\n    client_id: {CLIENT_ID}\n    \
             client_secret: \"${{OIDC_SECRET}}\"\n    redirect_url: {redirect}\n    \
             role_mapping:\n      gate-admins: admin\n      staff: readonly\n"
        );
    let env = |name: &str| (name == "OIDC_SECRET").then(|| CLIENT_SECRET.to_owned());
    let config: ControlConfig = load_str("control.yaml", &yaml, &env).unwrap();
    let running = start_with(&config, false, HttpLimits::default())
        .await
        .unwrap();
    let cp = Cp {
        running,
        dir,
        pg: None,
    };
    let idp = Idp {
        child,
        _stdin: stdin,
        issuer,
    };
    (cp, idp)
}

/// `http://127.0.0.1:1234/a?b` as its address and path.
pub fn split_url(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    (host.parse().unwrap(), format!("/{path}"))
}

/// Cookies by name, as a browser would keep them for one host.
#[derive(Default)]
pub struct Jar(Vec<(String, String)>);

impl Jar {
    pub fn take(&mut self, reply: &Reply) {
        for c in reply.set_cookies() {
            let first = c.split(';').next().unwrap_or_default();
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            self.0.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.0.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    pub fn header(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.join("; ")
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// GET `url` with `jar`'s cookies, keeping the ones it sets.
pub async fn get(jar: &mut Jar, url: &str) -> Reply {
    let (addr, path) = split_url(url);
    let cookies = jar.header();
    let reply = request(addr, "GET", &path, &[("Cookie", &cookies)], "").await;
    jar.take(&reply);
    reply
}

fn location(reply: &Reply, base: &str) -> String {
    let to = reply
        .header("location")
        .unwrap_or_else(|| panic!("no redirect: {} {}", reply.status, reply.body));
    if to.starts_with("http") {
        to.to_owned()
    } else {
        format!("{base}{to}")
    }
}

/// Sign in at the provider as `user` from the authorization `url` (the UI's redirect); returns
/// the URL the provider sends the browser back to (the UI's callback, with code and state).
pub async fn through_idp(idp: &Idp, url: &str, user: &str) -> String {
    let mut jar = Jar::default();
    let to_login = get(&mut jar, url).await;
    assert_eq!(to_login.status, 303, "{}", to_login.body);
    let login_url = location(&to_login, &idp.issuer);
    let page = get(&mut jar, &login_url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (addr, path) = split_url(&login_url);
    let cookies = jar.header();
    let posted = request(
        addr,
        "POST",
        &format!("{path}/login"),
        &[FORM, ("Cookie", &cookies)],
        &form(&[("login", user), ("password", "any")]),
    )
    .await;
    jar.take(&posted);
    assert_eq!(posted.status, 303, "{}", posted.body);
    let resumed = get(&mut jar, &location(&posted, &idp.issuer)).await;
    assert_eq!(resumed.status, 303, "{}", resumed.body);
    location(&resumed, &idp.issuer)
}
