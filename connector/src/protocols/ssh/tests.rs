//! Unit tests of the login-name routing and the audit text of SSH requests.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

use gate_config::{ConnectorConfig, load_str};
use gate_policy::{SshForward, SshInfo, SshPty};

use super::{audit_text, route};

fn resources() -> ConnectorConfig {
    let r =
        "protocol: ssh, host: h, port: 22, username: u, password: p, insecure_skip_host_key: true";
    let yaml = format!(
        "resources:\n  - {{name: pg, protocol: postgres, host: h, port: 5432}}\n  - {{name: web1, {r}}}\n  - {{name: web2, {r}}}\n"
    );
    load_str("c.yaml", &yaml, &|_| None).unwrap()
}

#[test]
fn the_login_name_selects_identity_and_resource() {
    let config = resources();
    let r = &config.resources;
    assert_eq!(route(r, None, "alice@web2"), Some((2, "alice".into())));
    assert_eq!(route(r, None, "alice@web1"), Some((1, "alice".into())));
    // Two SSH resources: a bare name on the shared listener selects none; pg is not SSH.
    assert_eq!(route(r, None, "alice"), None);
    assert_eq!(route(r, None, "alice@pg"), None);
    assert_eq!(route(r, None, "@web1"), None);
    // A dedicated port: its resource, named or not; another name is refused.
    assert_eq!(route(r, Some(1), "alice"), Some((1, "alice".into())));
    assert_eq!(route(r, Some(1), "alice@web1"), Some((1, "alice".into())));
    assert_eq!(route(r, Some(1), "alice@web2"), None);
    // Only the first `@` splits: the rest is the resource name.
    assert_eq!(route(r, None, "alice@web1@gate"), None);
}

#[test]
fn requests_are_audited_by_what_they_ask() {
    let info = |request: &str| SshInfo {
        request: request.into(),
        ..Default::default()
    };
    let mut exec = info("exec");
    exec.command = Some("uptime".into());
    assert_eq!(audit_text(&exec), "exec: uptime");
    let mut forward = info("forward_local");
    forward.forward = Some(SshForward {
        host: "db".into(),
        port: 5432,
    });
    assert_eq!(audit_text(&forward), "forward_local: db:5432");
    let mut pty = info("pty");
    pty.pty = Some(SshPty {
        term: "xterm".into(),
        cols: 80,
        rows: 24,
    });
    assert_eq!(audit_text(&pty), "pty: xterm");
    assert_eq!(audit_text(&info("shell")), "shell");
}
