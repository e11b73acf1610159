//! The `gate-operator` binary, run against the fake API server (through a kubeconfig) and a real
//! gate-control, exports every `gate_operator_*` metric the dashboards and alerts name
//! (`charts/gate/files/`), counting the reconciles it runs.
#![allow(clippy::unwrap_used)]

mod fake_api;
mod support;

use std::process::{Child, Command, Stdio};

use fake_api::FakeApi;
use gate_operator::crd::{Endpoint, Protocol, Resource, ResourceSpec};
use gate_testkit::free_port;
use gate_testkit::scrape::{monitored_names, sample_names};
use kube::api::{Api, PostParams};
use support::{Cp, eventually};

/// Kills the operator when the test ends.
struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scrape(port: u16) -> Option<String> {
    let out = Command::new("curl")
        .args(["-s", "-m", "2"])
        .arg(format!("http://127.0.0.1:{port}/metrics"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exports_every_operator_metric_the_dashboards_use() {
    let fake = FakeApi::start().await;
    let cp = Cp::start().await;
    let kubeconfig = cp.dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{}\"}}\nusers:\n- name: test\n  user: {{token: test}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: test, namespace: gate-system}}\ncurrent-context: fake\n",
            fake.url
        ),
    )
    .unwrap();
    let port = free_port().unwrap();
    let _operator = Operator(
        Command::new(env!("CARGO_BIN_EXE_gate-operator"))
            .arg("--resync-seconds=1")
            .env("KUBECONFIG", &kubeconfig)
            .env("GATE_CONTROL_URL", cp.running.url())
            .env("GATE_API_KEY", &cp.key)
            .env_remove("GATE_ORG_ID")
            .env_remove("GATE_WATCH_NAMESPACE")
            .env_remove("GATE_WEBHOOK_LISTEN")
            .env("POD_NAMESPACE", "gate-system")
            .env("POD_NAME", "gate-operator-0")
            .env("GATE_OPERATOR_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let resources: Api<Resource> = Api::namespaced(fake.client(), "apps");
    let spec = ResourceSpec {
        protocol: Protocol::Postgres,
        endpoint: Endpoint {
            host: "orders-db.apps".into(),
            port: 5432,
        },
        database: Some("orders".into()),
        listen_port: None,
        labels: Default::default(),
        require_access_grant: false,
        approver_groups: vec![],
        credentials_secret_ref: None,
        connector_selector: Default::default(),
    };
    resources
        .create(&PostParams::default(), &Resource::new("orders-db", spec))
        .await
        .unwrap();

    let exposition = eventually(30, "a Resource reconcile counted", || async {
        let text = scrape(port)?;
        text.contains("gate_operator_reconciles_total{kind=\"Resource\"}")
            .then_some(text)
    })
    .await;
    let scraped = sample_names(&exposition);
    let wanted = monitored_names("gate_operator_").unwrap();
    assert!(wanted.len() >= 3, "{wanted:?}");
    let missing: Vec<_> = wanted.iter().filter(|n| !scraped.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "dashboards/alerts name operator metrics the binary does not export: {missing:?}\n{exposition}"
    );
}
