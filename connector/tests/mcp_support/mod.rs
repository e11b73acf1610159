//! The MCP suites' peers: the official Python SDK's server (`mcp_peers/server.py`) and client
//! (`mcp_peers/client.py`), a Gate in front of the server with the suites' policy, and helpers.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)] // in tests a panic is the failure report

use std::process::{Child, Command, Stdio};

use super::common::*;

pub(crate) const POLICY: &str = r#"package gate.mcp_test

import rego.v1

default session := {"action": "allow"}

default pre_request := {"action": "allow"}

pre_request := {"action": "block", "reason": "delete_all needs admins"} if {
	input.mcp.tool_name == "delete_all"
	not "admins" in input.user.groups
}

pre_request := {"action": "block", "reason": "customer 13 is off limits"} if {
	input.mcp.tool_name == "customer_lookup"
	input.mcp.arguments.customer_id == 13
}

pre_request := {"action": "block", "reason": "rogue-agent may not call tools"} if {
	input.mcp.client.name == "rogue-agent"
	input.mcp.operation == "tool"
}

default post_request := {"action": "allow"}

post_request := {"action": "mask", "masks": [{"column": "email", "strategy": "email"}, {"column": "ssn", "strategy": "redact"}]} if {
	masked_operation
	not input.mcp.target == "echo"
	not "admins" in input.user.groups
}

masked_operation if input.mcp.operation in {"tool", "resource"}

# What the server sends on the GET stream is masked by the stream's verdict.
masked_operation if input.mcp.method == "stream/open"
"#;

pub(crate) struct Peer(pub(crate) Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn peers() -> std::path::PathBuf {
    repo().join("connector/tests/mcp_peers")
}

pub(crate) fn mcp_server(mode: &str, state: &str) -> (Peer, u16) {
    let port = gate_testkit::free_port().unwrap();
    let child = Command::new(gate_testkit::venv_python().unwrap())
        .arg(peers().join("server.py"))
        .args([&port.to_string(), mode, state])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed().as_secs() < 30,
            "the MCP server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    (Peer(child), port)
}

pub(crate) struct Setup {
    pub(crate) gate: GateOnly,
    pub(crate) port: u16,
    pub(crate) _server: Peer,
    pub(crate) _dir: tempfile::TempDir,
}

pub(crate) fn setup(mode: &str, state: &str) -> Setup {
    setup_with(mode, state, "", "")
}

/// [`setup`] with more fields on the resource (`, record: true`) and more top-level config.
pub(crate) fn setup_with(mode: &str, state: &str, resource_extra: &str, top_extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("mcp.rego");
    std::fs::write(&policy, POLICY).unwrap();
    let (server, upstream) = mcp_server(mode, state);
    let port = gate_testkit::free_port().unwrap();
    let yaml = format!(
        "identities:\n  - {{name: agent, password: agent-pw, groups: [bots]}}\n  - {{name: boss, password: boss-pw, groups: [admins]}}\n\
         masking: {{hash_key: mcp-test-key}}\n\
         resources:\n  - {{name: tools, protocol: mcp, host: 127.0.0.1, port: {upstream}, listen_port: {port}, endpoint_path: /mcp{resource_extra}}}\n{top_extra}\
         policies:\n  - {{path: '{p}', stage: session}}\n  - {{path: '{p}', stage: pre_request}}\n  - {{path: '{p}', stage: post_request}}\n",
        p = policy.display()
    );
    Setup {
        gate: start_yaml(&yaml, None),
        port,
        _server: server,
        _dir: dir,
    }
}

/// Run the SDK client through Gate; one JSON value per step.
pub(crate) fn client(s: &Setup, credentials: &str, steps: &[&str]) -> Vec<serde_json::Value> {
    client_as(s, &[], credentials, steps)
}

/// [`client`] with `MCP_*` environment for `client.py` (its clientInfo, User-Agent, mode).
pub(crate) fn client_as(
    s: &Setup,
    env: &[(&str, &str)],
    credentials: &str,
    steps: &[&str],
) -> Vec<serde_json::Value> {
    let out = Command::new(gate_testkit::venv_python().unwrap())
        .envs(env.iter().copied())
        .arg(peers().join("client.py"))
        .arg(format!("http://127.0.0.1:{}/mcp", s.port))
        .arg(credentials)
        .args(steps)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["out"].clone())
        .collect();
    assert_eq!(
        lines.len(),
        steps.len(),
        "client failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines
}

pub(crate) fn text_of(result: &serde_json::Value) -> serde_json::Value {
    let text = result["content"][0]["text"].as_str().unwrap();
    serde_json::from_str(text).unwrap()
}
