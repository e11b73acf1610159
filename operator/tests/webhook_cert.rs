//! The operator's own injector certificate against the fake API: it creates the Secret and the
//! webhooks' `caBundle`, leaves a valid pair alone, renews a pair past 2/3 of its lifetime (the
//! old CA kept in the bundle), and the running webhook server hands curl the new certificate
//! without a restart.
#![allow(clippy::unwrap_used)]

mod fake_api;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use fake_api::FakeApi;
use gate_operator::inject::InjectConfig;
use gate_operator::webhook::{self, Injector};
use gate_operator::webhook_cert::{
    CertConfig, EXPIRES_AT, ISSUED_AT, ServingCert, ensure, maintain,
};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::json;

const HOST: &str = "gate-operator.gate-system.svc";

fn config() -> CertConfig {
    CertConfig {
        namespace: "gate-system".into(),
        secret: "gate-operator-webhook-tls".into(),
        service: "gate-operator".into(),
        webhook_configuration: "gate-operator".into(),
        validity: Duration::from_secs(3600),
        check_every: Duration::from_millis(100),
    }
}

/// The chart's two webhooks, plus one of someone else's (a URL) that must be left alone.
async fn create_configuration(client: &kube::Client) {
    let service = json!({"name": "gate-operator", "namespace": "gate-system", "path": "/mutate"});
    let mwc: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": "gate-operator"},
        "webhooks": [
            {"name": "inject.gate.dev", "admissionReviewVersions": ["v1"], "sideEffects": "None",
             "clientConfig": {"service": service}},
            {"name": "external.example", "admissionReviewVersions": ["v1"], "sideEffects": "None",
             "clientConfig": {"url": "https://hooks.example/mutate"}},
            {"name": "accessrequests.gate.dev", "admissionReviewVersions": ["v1"],
             "sideEffects": "None", "clientConfig": {"service": service}}
        ]
    }))
    .unwrap();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &mwc)
        .await
        .unwrap();
}

fn data(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

fn ca_bundles(mwc: &MutatingWebhookConfiguration) -> Vec<Option<String>> {
    mwc.webhooks
        .iter()
        .flatten()
        .map(|w| {
            w.client_config
                .ca_bundle
                .as_ref()
                .map(|b| String::from_utf8(b.0.clone()).unwrap())
        })
        .collect()
}

/// The first certificate of a bundle of two, and the rest.
fn split_bundle(bundle: &str) -> (&str, &str) {
    let second = bundle.rfind("-----BEGIN CERTIFICATE-----").unwrap();
    bundle.split_at(second)
}

/// Serve the webhook from `serving` on a free port.
async fn serve(serving: Arc<ServingCert>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(webhook::serve(
        listener,
        serving,
        Injector {
            config: Arc::new(InjectConfig::default()),
            kube: None,
        },
    ));
    port
}

/// `GET /healthz` by the Service's DNS name, trusting only `ca_pem`: the HTTP status (0 when
/// the TLS handshake fails).
async fn healthz(port: u16, ca_pem: &str) -> u16 {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, ca_pem).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "--max-time",
                "10",
                "-w",
                "%{http_code}",
            ])
            .arg("--resolve")
            .arg(format!("{HOST}:{port}:127.0.0.1"))
            .arg("--cacert")
            .arg(&ca)
            .arg(format!("https://{HOST}:{port}/healthz"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[tokio::test]
async fn the_operator_issues_the_secret_and_the_ca_bundle_and_keeps_a_valid_pair() {
    let fake = FakeApi::start().await;
    let client = fake.client();
    create_configuration(&client).await;
    let serving = Arc::new(ServingCert::default());
    let port = serve(serving.clone()).await;
    assert_eq!(
        healthz(port, "").await,
        0,
        "nothing is served before a pair exists"
    );

    ensure(&client, &config(), &serving, webhook::alpn())
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "gate-system");
    let secret = secrets.get("gate-operator-webhook-tls").await.unwrap();
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let ca = data(&secret, "ca.crt");
    assert_eq!(ca.matches("BEGIN CERTIFICATE").count(), 1, "a new CA only");
    assert!(data(&secret, "tls.key").contains("PRIVATE KEY"));
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let mwc = mwcs.get("gate-operator").await.unwrap();
    assert_eq!(
        ca_bundles(&mwc),
        vec![Some(ca.clone()), None, Some(ca.clone())],
        "the webhooks calling the operator's Service get the CA; the URL one is not ours"
    );
    assert_eq!(healthz(port, &ca).await, 200, "the issued pair is served");

    // A valid pair is kept: neither the Secret nor the configuration is written again.
    ensure(&client, &config(), &serving, webhook::alpn())
        .await
        .unwrap();
    let again = secrets.get("gate-operator-webhook-tls").await.unwrap();
    assert_eq!(
        again.metadata.resource_version,
        secret.metadata.resource_version
    );
    let mwc_again = mwcs.get("gate-operator").await.unwrap();
    assert_eq!(
        mwc_again.metadata.resource_version,
        mwc.metadata.resource_version
    );

    // Another name for the Service is another certificate.
    let renamed = CertConfig {
        service: "gate-webhook".into(),
        ..config()
    };
    let other_secret = CertConfig {
        secret: "other".into(),
        ..renamed.clone()
    };
    ensure(&client, &renamed, &serving, webhook::alpn())
        .await
        .unwrap();
    let reissued = secrets.get("gate-operator-webhook-tls").await.unwrap();
    assert_ne!(data(&reissued, "tls.crt"), data(&secret, "tls.crt"));
    // A missing configuration is an error that names it (the Secret is still written).
    let missing = CertConfig {
        webhook_configuration: "absent".into(),
        ..other_secret
    };
    let error = ensure(&client, &missing, &serving, webhook::alpn())
        .await
        .unwrap_err();
    assert!(
        error.contains("MutatingWebhookConfiguration absent"),
        "{error}"
    );
    assert!(secrets.get_opt("other").await.unwrap().is_some());
}

#[tokio::test]
async fn a_pair_past_two_thirds_of_its_life_is_renewed_and_served_without_a_restart() {
    let fake = FakeApi::start().await;
    let client = fake.client();
    create_configuration(&client).await;
    let serving = Arc::new(ServingCert::default());
    ensure(&client, &config(), &serving, webhook::alpn())
        .await
        .unwrap();
    let port = serve(serving.clone()).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "gate-system");
    let mut first = secrets.get("gate-operator-webhook-tls").await.unwrap();
    let old_ca = data(&first, "ca.crt");
    assert_eq!(healthz(port, &old_ca).await, 200);

    // Make the pair look 50 of its 60 minutes old (the annotations are what the operator reads).
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let stamp = |s: i64| {
        k8s_openapi::jiff::Timestamp::from_second(s)
            .unwrap()
            .to_string()
    };
    let annotations = first.metadata.annotations.as_mut().unwrap();
    annotations.insert(ISSUED_AT.into(), stamp(now - 3000));
    annotations.insert(EXPIRES_AT.into(), stamp(now + 600));
    let aged = secrets
        .replace("gate-operator-webhook-tls", &PostParams::default(), &first)
        .await
        .unwrap();

    tokio::spawn(maintain(
        client.clone(),
        config(),
        serving.clone(),
        webhook::alpn(),
    ));
    let mut renewed = None;
    for _ in 0..100 {
        let secret = secrets.get("gate-operator-webhook-tls").await.unwrap();
        if secret.metadata.resource_version != aged.metadata.resource_version {
            renewed = Some(secret);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let renewed = renewed.expect("the aged pair is renewed");
    assert_ne!(data(&renewed, "tls.crt"), data(&aged, "tls.crt"));
    let bundle = data(&renewed, "ca.crt");
    let (new_ca, kept) = split_bundle(&bundle);
    assert_ne!(new_ca, old_ca);
    assert_eq!(kept, old_ca, "the old CA stays trusted until it expires");
    let mut patched = false;
    for _ in 0..100 {
        let mwc = Api::<MutatingWebhookConfiguration>::all(client.clone())
            .get("gate-operator")
            .await
            .unwrap();
        if ca_bundles(&mwc)[0].as_deref() == Some(bundle.as_str()) {
            patched = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(patched, "the webhooks' caBundle follows the Secret");

    // The same server, never restarted, now presents the new certificate.
    assert_eq!(
        healthz(port, new_ca).await,
        200,
        "the renewed pair is served"
    );
    assert_eq!(
        healthz(port, &old_ca).await,
        0,
        "the old CA alone does not verify the new certificate"
    );
}
