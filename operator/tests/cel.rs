//! The CEL rules of the generated CRDs, evaluated client-side with kube's `cel` feature exactly
//! as written into `crds/`: ports, durations (at most 7 days), the policy's one-of, member names,
//! scope operations, and the immutable AccessRequest spec.
#![allow(clippy::unwrap_used)]

use kube::core::cel::Validator;
use serde_json::{Value, json};

fn schema(kind: &str) -> Value {
    let (_, crd) = gate_operator::crd::all()
        .into_iter()
        .find(|(_, c)| c.spec.names.kind == kind)
        .unwrap();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

fn check(kind: &str, object: &Value, old: Option<&Value>) -> Result<(), String> {
    Validator::new()
        .validate(&schema(kind), object, old)
        .map_err(|e| format!("{e:?}"))
}

fn resource(port: i64, listen: Option<i64>) -> Value {
    let mut spec = json!({"protocol": "postgres", "endpoint": {"host": "db", "port": port}});
    if let Some(l) = listen {
        spec["listenPort"] = json!(l);
    }
    json!({"apiVersion": "gate.dev/v1alpha1", "kind": "Resource", "metadata": {"name": "db"}, "spec": spec})
}

fn request(duration: &str, operation: &str) -> Value {
    json!({"apiVersion": "gate.dev/v1alpha1", "kind": "AccessRequest", "metadata": {"name": "r"},
           "spec": {"resource": "db", "subject": "alice", "reason": "incident", "duration": duration,
                    "scopes": [{"operation": operation, "target": "public.orders"}]}})
}

#[test]
fn ports_are_1_to_65535() {
    assert!(check("Resource", &resource(5432, Some(6432)), None).is_ok());
    for (port, listen) in [
        (0, None),
        (65536, None),
        (5432, Some(0)),
        (5432, Some(70000)),
    ] {
        assert!(
            check("Resource", &resource(port, listen), None).is_err(),
            "{port} {listen:?}"
        );
    }
}

#[test]
fn durations_are_positive_and_at_most_seven_days() {
    for ok in ["30m", "4h", "1h30m", "168h"] {
        assert!(
            check("AccessRequest", &request(ok, "query"), None).is_ok(),
            "{ok}"
        );
    }
    for bad in ["0s", "169h", "7d", "soon", ""] {
        let err = check("AccessRequest", &request(bad, "query"), None).unwrap_err();
        assert!(err.contains("168h"), "{bad}: {err}");
    }
    assert!(
        check("AccessRequest", &request("1h", "select"), None)
            .unwrap_err()
            .contains("operation")
    );
}

#[test]
fn access_request_specs_are_immutable() {
    let old = request("4h", "query");
    let mut status_only = old.clone();
    status_only["status"] = json!({"phase": "Approved"});
    assert!(check("AccessRequest", &status_only, Some(&old)).is_ok());
    let longer = request("8h", "query");
    assert!(
        check("AccessRequest", &longer, Some(&old))
            .unwrap_err()
            .contains("immutable")
    );
}

#[test]
fn policies_need_exactly_one_source_and_groups_valid_members() {
    let policy = |spec: Value| json!({"apiVersion": "gate.dev/v1alpha1", "kind": "Policy", "metadata": {"name": "p"}, "spec": spec});
    assert!(check("Policy", &policy(json!({"rego": "package a"})), None).is_ok());
    assert!(
        check(
            "Policy",
            &policy(json!({"configMapRef": {"name": "m", "key": "k"}})),
            None
        )
        .is_ok()
    );
    assert!(
        check("Policy", &policy(json!({})), None)
            .unwrap_err()
            .contains("exactly one")
    );
    assert!(
        check(
            "Policy",
            &policy(json!({"rego": "a", "configMapRef": {"name": "m", "key": "k"}})),
            None
        )
        .is_err()
    );
    let group = |members: Value| json!({"apiVersion": "gate.dev/v1alpha1", "kind": "Group", "metadata": {"name": "g"}, "spec": {"members": members}});
    assert!(check("Group", &group(json!(["alice@example.com", "bob"])), None).is_ok());
    assert!(check("Group", &group(json!(["system:serviceaccount:a:b"])), None).is_err());
}
