//! The sidecar injector from AdmissionReview fixtures: an opted-in pod gets the connector as a
//! native sidecar, first among its init containers; re-injecting changes nothing; pods without
//! the annotation pass untouched; bad annotations are refused with the reason.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use std::collections::BTreeMap;

use gate_operator::crd::SecretKeysRef;
use gate_operator::inject::{InjectConfig, parse_amounts, review, review_with_credentials};
use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::AdmissionReview;
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/admission/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Run the injector on `reviewed` and return (allowed, message, patched pod).
fn run(reviewed: &Value) -> (bool, String, Value) {
    run_with(reviewed, &InjectConfig::default())
}

fn run_with(reviewed: &Value, config: &InjectConfig) -> (bool, String, Value) {
    run_credentials(reviewed, config, &BTreeMap::new())
}

fn run_credentials(
    reviewed: &Value,
    config: &InjectConfig,
    credentials: &BTreeMap<String, SecretKeysRef>,
) -> (bool, String, Value) {
    let parsed: AdmissionReview<Pod> = serde_json::from_value(reviewed.clone()).unwrap();
    let answer = if credentials.is_empty() {
        serde_json::to_value(review(parsed, config)).unwrap()
    } else {
        serde_json::to_value(review_with_credentials(parsed, config, credentials)).unwrap()
    };
    let response = &answer["response"];
    assert_eq!(
        response["uid"], reviewed["request"]["uid"],
        "the answer names the request"
    );
    let mut pod = reviewed["request"]["object"].clone();
    // kube-rs sends the patch bytes as a JSON array of numbers, which the API server's Go
    // decoder accepts for `[]byte` just like base64.
    let bytes: Option<Vec<u8>> = match &response["patch"] {
        Value::String(text) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap(),
        ),
        Value::Array(_) => Some(serde_json::from_value(response["patch"].clone()).unwrap()),
        _ => None,
    };
    if let Some(bytes) = bytes {
        assert_eq!(response["patchType"], "JSONPatch");
        let ops: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        json_patch::patch(&mut pod, &ops).unwrap();
    }
    let message = response["status"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    (response["allowed"] == true, message, pod)
}

fn with_object(mut review: Value, pod: Value) -> Value {
    review["request"]["object"] = pod;
    review
}

#[test]
fn opted_in_pods_get_a_native_sidecar_once() {
    let input = fixture("opt-in.json");
    let (allowed, _, pod) = run(&input);
    assert!(allowed);
    let sidecar = &pod["spec"]["initContainers"][0];
    assert_eq!(sidecar["name"], "gate-connector");
    assert_eq!(
        sidecar["restartPolicy"], "Always",
        "native sidecar: starts first, never blocks Job completion"
    );
    let ports: Vec<&Value> = sidecar["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["containerPort"])
        .collect();
    assert_eq!(ports, vec![&json!(6432), &json!(15433), &json!(9090)]);
    let env = sidecar["env"].as_array().unwrap();
    let value = |name: &str| env.iter().find(|e| e["name"] == name).cloned().unwrap();
    assert_eq!(
        value("GATE_SIDECAR_RESOURCES")["value"],
        "orders-db:6432,billing:15433"
    );
    assert_eq!(
        value("GATE_CONTROL_TOKEN")["valueFrom"]["secretKeyRef"],
        json!({"name": "gate-connector-token", "key": "token"}),
        "the control-plane token from the operator's --sidecar-token-secret"
    );
    assert_eq!(value("GATE_STATE_DIR")["value"], "/var/lib/gate");
    assert_eq!(
        sidecar["volumeMounts"],
        json!([{"name": "gate-connector-state", "mountPath": "/var/lib/gate"}]),
        "a read-only root filesystem, state on an emptyDir"
    );
    assert_eq!(
        pod["spec"]["volumes"],
        json!([{"name": "gate-connector-state", "emptyDir": {}}])
    );
    assert_eq!(
        value("POD_SERVICE_ACCOUNT")["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.serviceAccountName"
    );
    assert_eq!(
        sidecar["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": 9090})
    );
    assert_eq!(
        sidecar["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": 9090})
    );
    assert_eq!(
        sidecar["resources"]["limits"]["memory"], "128Mi",
        "annotation wins over the default"
    );
    assert_eq!(sidecar["resources"]["requests"]["cpu"], "50m");
    assert_eq!(pod["metadata"]["annotations"]["gate.dev/injected"], "true");
    assert_eq!(
        pod["spec"]["containers"], input["request"]["object"]["spec"]["containers"],
        "the app is untouched"
    );
    // Idempotent: the injected pod comes back unchanged.
    let (allowed, _, again) = run(&with_object(input.clone(), pod.clone()));
    assert!(allowed);
    assert_eq!(again, pod);
}

#[test]
fn existing_init_containers_run_after_the_sidecar() {
    let mut input = fixture("opt-in.json");
    input["request"]["object"]["spec"]["initContainers"] =
        json!([{"name": "migrate", "image": "example/migrate:1"}]);
    let (_, _, pod) = run(&input);
    let names: Vec<&str> = pod["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["gate-connector", "migrate"]);
}

#[test]
fn other_pods_pass_and_bad_annotations_are_refused() {
    let mut plain = fixture("opt-in.json");
    plain["request"]["object"]["metadata"]["annotations"] = json!({});
    let (allowed, _, pod) = run(&plain);
    assert!(allowed);
    assert_eq!(pod, plain["request"]["object"]);

    for (annotation, want) in [
        ("", "name at least one resource"),
        ("db:0", "port must be 1-65535"),
        ("db:1,db:2", "repeats"),
        ("bad name", "not a resource name"),
    ] {
        let mut bad = fixture("opt-in.json");
        bad["request"]["object"]["metadata"]["annotations"]["gate.dev/resources"] =
            json!(annotation);
        let (allowed, message, _) = run(&bad);
        assert!(!allowed, "{annotation:?} should be refused");
        assert!(message.contains(want), "{annotation:?}: {message}");
    }
}

/// The patched pod is a valid Kubernetes 1.33 Pod by the API's own schema
/// (PyPI `kubernetes-validate --strict`: unknown fields are errors too).
/// Credentials of `orders-db` in the Secret `orders-db-credentials`, password under `pw`.
fn orders_credentials() -> BTreeMap<String, SecretKeysRef> {
    BTreeMap::from([(
        "orders-db".to_owned(),
        SecretKeysRef {
            name: "orders-db-credentials".into(),
            username_key: None,
            password_key: Some("pw".into()),
        },
    )])
}

#[test]
fn a_resources_credentials_secret_is_mounted_read_only_into_the_sidecar_only() {
    let mut input = fixture("opt-in.json");
    input["request"]["object"]["spec"]["volumes"] = json!([{"name": "cache", "emptyDir": {}}]);
    let (allowed, _, pod) =
        run_credentials(&input, &InjectConfig::default(), &orders_credentials());
    assert!(allowed);
    assert_eq!(
        pod["spec"]["volumes"],
        json!([
            {"name": "cache", "emptyDir": {}},
            {"name": "gate-connector-state", "emptyDir": {}},
            {"name": "gate-credentials-0", "secret": {"secretName": "orders-db-credentials", "items": [
                {"key": "username", "path": "username"}, {"key": "pw", "path": "password"}]}},
        ]),
        "the pod's own volumes are kept"
    );
    let sidecar = &pod["spec"]["initContainers"][0];
    assert_eq!(
        sidecar["volumeMounts"][1],
        json!({"name": "gate-credentials-0", "mountPath": "/var/run/gate/credentials/orders-db", "readOnly": true})
    );
    assert!(
        pod["spec"]["containers"][0].get("volumeMounts").is_none(),
        "the app container does not see the credentials"
    );
    let (_, _, again) = run_credentials(
        &with_object(input, pod.clone()),
        &InjectConfig::default(),
        &orders_credentials(),
    );
    assert_eq!(again, pod, "idempotent");
}

#[test]
fn the_patched_pod_passes_kubernetes_schema_validation() {
    let (allowed, _, mut pod) = run_credentials(
        &fixture("opt-in.json"),
        &InjectConfig::default(),
        &orders_credentials(),
    );
    assert!(allowed);
    // Admission sees a ReplicaSet's pod before the API server names it
    // (only `generateName`); the validator wants the name it will get.
    pod["metadata"]["name"] = json!("orders-api-7d9f-x2k4p");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pod.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&pod).unwrap()).unwrap();
    let python = gate_testkit::venv_python().unwrap();
    let validate = python.with_file_name("kubernetes-validate");
    let check = |path: &std::path::Path| {
        std::process::Command::new(&validate)
            .args(["--strict", "-k", "1.33.0"])
            .arg(path)
            .output()
            .unwrap()
    };
    let out = check(&file);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("passed for resource pod/"), "{text}");
    // The check is real: a misspelt field in the sidecar fails it.
    let mut broken = pod.clone();
    broken["spec"]["initContainers"][0]["restartPolicyy"] = json!("Always");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, serde_json::to_vec_pretty(&broken).unwrap()).unwrap();
    assert!(!check(&bad).status.success(), "a misspelt field is caught");
}

#[test]
fn sidecar_defaults_come_from_the_operator_flags() {
    let config = InjectConfig {
        requests: parse_amounts("--sidecar-requests", "cpu=100m, memory=96Mi").unwrap(),
        limits: parse_amounts("--sidecar-limits", "memory=512Mi").unwrap(),
        ..InjectConfig::default()
    };
    let (allowed, _, pod) = run_with(&fixture("opt-in.json"), &config);
    assert!(allowed);
    let resources = &pod["spec"]["initContainers"][0]["resources"];
    assert_eq!(
        resources["requests"],
        json!({"cpu": "100m", "memory": "96Mi"})
    );
    assert_eq!(
        resources["limits"]["memory"], "128Mi",
        "the pod's annotation still wins"
    );

    for (text, error) in [
        ("cpu", "is not name=amount"),
        ("gpu=1", "is not cpu or memory"),
        ("memory=lots", "is not a quantity"),
        ("cpu=1,cpu=2", "cpu is given twice"),
    ] {
        let e = parse_amounts("--sidecar-requests", text).unwrap_err();
        assert!(
            e.starts_with("--sidecar-requests: ") && e.contains(error),
            "{text}: {e}"
        );
    }
    assert!(parse_amounts("--sidecar-limits", "").unwrap().is_empty());
}
