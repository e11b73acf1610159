//! Tests of the SSH settings' validation (`ssh.rs`).
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report
use crate::{ConnectorConfig, load_str};

fn load(yaml: &str) -> Result<ConnectorConfig, Vec<String>> {
    load_str::<ConnectorConfig>("c.yaml", yaml, &|_| None)
        .map_err(|e| e.errors.iter().map(ToString::to_string).collect())
}

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKb1 alice@laptop";

#[test]
fn an_ssh_resource_takes_the_issue_fields() {
    let config = load(&format!(
        "resources:\n  - {{name: bastion-web1, protocol: ssh, host: 10.1.2.3, port: 22, username: deploy, \
         private_key_file: /etc/gate/ssh/deploy_ed25519, known_hosts_file: /etc/gate/ssh/known_hosts, \
         listen_port: 2222, record: true, record_input: true}}\n\
         ssh: {{host_key_file: /var/lib/gate/ssh_host_ed25519}}\n\
         identities:\n  - {{name: alice, ssh_keys: [\"{KEY}\"], groups: [sre]}}\n"
    ))
    .unwrap();
    let r = &config.resources[0];
    assert_eq!(
        r.private_key_file.as_deref(),
        Some("/etc/gate/ssh/deploy_ed25519")
    );
    assert_eq!(
        r.known_hosts_file.as_deref(),
        Some("/etc/gate/ssh/known_hosts")
    );
    assert!(r.record && r.record_input && !r.insecure_skip_host_key);
    assert_eq!(config.ssh.host_key_file, "/var/lib/gate/ssh_host_ed25519");
    assert_eq!(config.identities[0].ssh_keys, vec![KEY.to_owned()]);
    assert!(config.identities[0].password.is_empty());
    let defaults = load("{}\n").unwrap();
    assert_eq!(
        defaults.ssh.host_key_file,
        ".data/connector/ssh_host_ed25519"
    );
}

#[test]
fn ssh_resource_problems_name_their_field() {
    let ssh = "{name: s, protocol: ssh, host: h, port: 22";
    for (fields, want) in [
        (
            ", private_key_file: k, known_hosts_file: kh}",
            "resources[0].username: required for ssh resources (the upstream account)",
        ),
        (
            ", username: u, known_hosts_file: kh}",
            "resources[0].private_key_file: required for ssh resources unless password is set",
        ),
        (
            ", username: u, password: pw}",
            "resources[0].known_hosts_file: required for ssh resources (or insecure_skip_host_key: true to trust any host key)",
        ),
        (
            ", username: u, password: pw, known_hosts_file: kh, insecure_skip_host_key: true}",
            "resources[0].insecure_skip_host_key: contradicts known_hosts_file: set one of them",
        ),
        (
            ", username: u, password: pw, insecure_skip_host_key: true, record_input: true}",
            "resources[0].record_input: needs record: true",
        ),
    ] {
        let problems = load(&format!("resources:\n  - {ssh}{fields}\n")).unwrap_err();
        assert_eq!(problems, vec![want.to_owned()], "{fields}");
    }
    let pg = "resources:\n  - {name: p, protocol: postgres, host: h, port: 5432, record: true, known_hosts_file: kh}\n";
    assert_eq!(
        load(pg).unwrap_err(),
        vec![
            "resources[0].known_hosts_file: only for ssh resources (this one is postgres)"
                .to_owned(),
            "resources[0].record: only for ssh and mcp resources (this one is postgres)".to_owned(),
        ]
    );
}

#[test]
fn identities_need_a_password_or_well_formed_ssh_keys() {
    let problems = load("identities:\n  - {name: bob}\n").unwrap_err();
    assert_eq!(
        problems,
        vec![
            "identities[0].password: must not be empty (or give ssh_keys for an SSH-only identity)"
                .to_owned()
        ]
    );
    let problems = load(
        "identities:\n  - {name: bob, ssh_keys: ['ssh-dss AAAA bob', 'ssh-ed25519 not*base64']}\n",
    )
    .unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("identities[0].ssh_keys[0]: expected an OpenSSH public key line starting with one of ssh-ed25519"), "{problems:?}");
    assert_eq!(
        problems[1],
        "identities[0].ssh_keys[1]: expected base64 key data after \"ssh-ed25519\""
    );
    let problems = load("ssh: {host_key_file: ''}\n").unwrap_err();
    assert_eq!(
        problems,
        vec!["ssh.host_key_file: must not be empty".to_owned()]
    );
}
