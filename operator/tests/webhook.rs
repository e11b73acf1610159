//! The admission webhook over real HTTPS with curl as the client: an
//! AdmissionReview fixture gets the injection patch, a malformed body a 400
//! that says why, and a rotated certificate is served without a restart; the credentials
//! Secret of a named `Resource` is read through the (fake) Kubernetes API and mounted.
#![allow(clippy::unwrap_used)]

mod fake_api;

use std::process::Command;
use std::sync::Arc;

use gate_operator::inject::InjectConfig;
use gate_operator::webhook;
use gate_testkit::SelfSignedCert;
use serde_json::Value;

/// POST `body` to the webhook trusting `ca`; (HTTP status, body).
fn post(port: u16, ca: &std::path::Path, body: &str) -> (u16, String) {
    post_to(port, "/mutate", ca, body)
}

fn post_to(port: u16, path: &str, ca: &std::path::Path, body: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}", "--cacert"])
        .arg(ca)
        .args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ])
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn the_webhook_patches_pods_over_https_and_follows_certificate_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let first = SelfSignedCert::generate(dir.path(), "webhook", "localhost").unwrap();
    let files =
        webhook::tls_files(first.cert.to_str().unwrap(), first.key.to_str().unwrap()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    runtime.spawn(webhook::serve(
        listener,
        Arc::new(files),
        webhook::Injector {
            config: Arc::new(InjectConfig::default()),
            kube: None,
        },
    ));
    let fixture = std::fs::read_to_string(format!(
        "{}/tests/fixtures/admission/opt-in.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let (status, body) = post(port, &first.ca, &fixture);
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["response"]["allowed"], true);
    assert_eq!(answer["response"]["patchType"], "JSONPatch");
    assert!(
        !answer["response"]["patch"].is_null(),
        "an opted-in pod gets the sidecar patch: {body}"
    );

    let (status, body) = post(port, &first.ca, "{\"kind\": 3}");
    assert_eq!(status, 400);
    assert!(body.contains("not an AdmissionReview"), "{body}");

    // An AccessRequest filed by alice in bob's name is recorded as alice's.
    let access = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "ar-1",
            "kind": {"group": "gate.dev", "version": "v1alpha1", "kind": "AccessRequest"},
            "resource": {"group": "gate.dev", "version": "v1alpha1", "resource": "accessrequests"},
            "namespace": "team-a",
            "operation": "CREATE",
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": {
                "apiVersion": "gate.dev/v1alpha1",
                "kind": "AccessRequest",
                "metadata": {"name": "db-fix", "namespace": "team-a"},
                "spec": {"resource": "orders-db", "subject": "alice", "requestedBy": "bob",
                         "reason": "fix", "duration": "1h"}
            }
        }
    });
    let (status, body) = post_to(
        port,
        "/mutate-accessrequests",
        &first.ca,
        &access.to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["response"]["uid"], "ar-1");
    let patch = match &answer["response"]["patch"] {
        Value::String(text) => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap()
        }
        other => serde_json::from_value::<Vec<u8>>(other.clone()).unwrap(),
    };
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    assert_eq!(
        patch,
        serde_json::json!([{"op": "add", "path": "/spec/requestedBy", "value": "alice"}])
    );

    // Rotate: a new CA and key written over the same files; the next
    // connection is served the new certificate, and the old CA no longer
    // verifies it.
    let rotated_dir = tempfile::tempdir().unwrap();
    let second = SelfSignedCert::generate(rotated_dir.path(), "webhook", "localhost").unwrap();
    std::fs::copy(&second.key, &first.key).unwrap();
    std::fs::copy(&second.cert, &first.cert).unwrap();
    let (status, body) = post(port, &second.ca, &fixture);
    assert_eq!(status, 200, "the rotated certificate is served: {body}");
    let (status, _) = post(port, &first.ca, &fixture);
    assert_eq!(status, 0, "the old CA does not verify the new certificate");
}

/// The JSON patch of an AdmissionReview answer.
fn patch_of(answer: &Value) -> Value {
    let bytes = match &answer["response"]["patch"] {
        Value::String(text) => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap()
        }
        other => serde_json::from_value::<Vec<u8>>(other.clone()).unwrap(),
    };
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn the_credentials_secret_of_each_named_resource_is_read_from_its_namespace() {
    use gate_operator::crd::Resource;
    use kube::api::{Api, PostParams};

    let dir = tempfile::tempdir().unwrap();
    let cert = SelfSignedCert::generate(dir.path(), "webhook", "localhost").unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let fake = runtime.block_on(fake_api::FakeApi::start());
    let resource: Resource = serde_json::from_value(serde_json::json!({
        "apiVersion": "gate.dev/v1alpha1", "kind": "Resource",
        "metadata": {"name": "orders-db", "namespace": "apps"},
        "spec": {"protocol": "postgres", "endpoint": {"host": "db.apps", "port": 5432},
                 "credentialsSecretRef": {"name": "orders-db-credentials", "usernameKey": "user"}}
    }))
    .unwrap();
    let api: Api<Resource> = Api::namespaced(fake.client(), "apps");
    runtime
        .block_on(api.create(&PostParams::default(), &resource))
        .unwrap();
    // The same name in another namespace is not this pod's resource.
    let other: Api<Resource> = Api::namespaced(fake.client(), "elsewhere");
    let mut billing = resource.clone();
    billing.metadata.name = Some("billing".into());
    billing.metadata.namespace = Some("elsewhere".into());
    runtime
        .block_on(other.create(&PostParams::default(), &billing))
        .unwrap();

    let serve = |kube: kube::Client| {
        let files =
            webhook::tls_files(cert.cert.to_str().unwrap(), cert.key.to_str().unwrap()).unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        runtime.spawn(webhook::serve(
            listener,
            Arc::new(files),
            webhook::Injector {
                config: Arc::new(InjectConfig::default()),
                kube: Some(kube),
            },
        ));
        port
    };
    let fixture = std::fs::read_to_string(format!(
        "{}/tests/fixtures/admission/opt-in.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let port = serve(fake.client());
    let (status, body) = post(port, &cert.ca, &fixture);
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["response"]["allowed"], true, "{body}");
    let patch = patch_of(&answer);
    let volumes = patch
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["path"] == "/spec/volumes")
        .unwrap();
    assert_eq!(
        volumes["value"][1],
        serde_json::json!({"name": "gate-credentials-0", "secret": {"secretName": "orders-db-credentials",
            "items": [{"key": "user", "path": "username"}, {"key": "password", "path": "password"}]}})
    );
    assert_eq!(
        volumes["value"].as_array().unwrap().len(),
        2,
        "billing has no Resource in the pod's namespace: no Secret mounted"
    );

    // An API that cannot be read refuses the pod (fail closed), saying why.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let unreachable = kube::Client::try_from(kube::Config::new(
        format!("http://127.0.0.1:{closed}").parse().unwrap(),
    ))
    .unwrap();
    let port = serve(unreachable);
    let (status, body) = post(port, &cert.ca, &fixture);
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["response"]["allowed"], false, "{body}");
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot read Resource apps/orders-db"),
        "{body}"
    );
}
