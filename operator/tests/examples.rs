//! The example objects in `docs/examples/k8s/` against the generated CRD schemas: every field
//! known (a structural schema would silently prune a typo), types, enums and required fields
//! as the schema says, the CRDs' CEL rules, and each object deserializes into its Rust type.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use gate_operator::crd::{AccessRequest, Group, Policy, Resource};
use serde_json::Value;

/// Every violation of `schema` by `value`, with its path.
fn violations(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    if value.is_null() && schema["nullable"] == true {
        return;
    }
    let ok = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !ok {
        out.push(format!("{path}: expected {}, got {value}", schema["type"]));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        out.push(format!("{path}: {value} is not one of {allowed:?}"));
    }
    if let Some(object) = value.as_object() {
        for required in schema["required"].as_array().into_iter().flatten() {
            let key = required.as_str().unwrap();
            if !object.contains_key(key) {
                out.push(format!("{path}.{key}: required"));
            }
        }
        let properties = schema["properties"].as_object();
        for (key, item) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(sub) => violations(sub, item, &format!("{path}.{key}"), out),
                None if schema["additionalProperties"].is_object() => violations(
                    &schema["additionalProperties"],
                    item,
                    &format!("{path}.{key}"),
                    out,
                ),
                // The API server supplies apiVersion, kind and metadata for every CRD.
                None if path.is_empty()
                    && ["apiVersion", "kind", "metadata"].contains(&key.as_str()) => {}
                None if schema["x-kubernetes-preserve-unknown-fields"] == true => {}
                None => out.push(format!("{path}.{key}: unknown field")),
            }
        }
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            violations(&schema["items"], item, &format!("{path}[{i}]"), out);
        }
    }
}

fn schemas() -> Vec<(String, Value)> {
    gate_operator::crd::all()
        .into_iter()
        .map(|(_, crd)| {
            let crd = serde_json::to_value(crd).unwrap();
            let schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
            (
                crd["spec"]["names"]["kind"].as_str().unwrap().to_owned(),
                schema,
            )
        })
        .collect()
}

fn examples() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/k8s");
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, doc) in text.split("\n---\n").enumerate() {
            let value: Value = yaml_serde::from_str(doc)
                .unwrap_or_else(|e| panic!("{}[{i}]: {e}", path.display()));
            docs.push((
                format!("{}[{i}]", path.file_name().unwrap().to_string_lossy()),
                value,
            ));
        }
    }
    docs
}

#[test]
fn examples_match_the_generated_schemas() {
    let schemas = schemas();
    let mut checked = 0;
    for (name, doc) in examples() {
        if doc["apiVersion"] != "gate.dev/v1alpha1" {
            continue;
        }
        let kind = doc["kind"].as_str().unwrap();
        let (_, schema) = schemas
            .iter()
            .find(|(k, _)| k == kind)
            .unwrap_or_else(|| panic!("{name}: no CRD for {kind}"));
        let mut out = Vec::new();
        violations(schema, &doc, "", &mut out);
        assert!(out.is_empty(), "{name}: {out:?}");
        // The CRDs' CEL rules (x-kubernetes-validations), as the API server would run them.
        kube::core::cel::Validator::new()
            .validate(schema, &doc, None)
            .unwrap_or_else(|e| panic!("{name}: CEL: {e:?}"));
        let typed = match kind {
            "Resource" => serde_json::from_value::<Resource>(doc.clone()).map(|_| ()),
            "Policy" => serde_json::from_value::<Policy>(doc.clone()).map(|_| ()),
            "Group" => serde_json::from_value::<Group>(doc.clone()).map(|_| ()),
            "AccessRequest" => serde_json::from_value::<AccessRequest>(doc.clone()).map(|_| ()),
            other => panic!("{name}: unexpected kind {other}"),
        };
        typed.unwrap_or_else(|e| panic!("{name}: {e}"));
        checked += 1;
    }
    assert_eq!(checked, 5, "every gate.dev example checked");
}

#[test]
fn an_example_broken_against_a_cel_rule_is_refused() {
    let schemas = schemas();
    let (_, mut doc) = examples()
        .into_iter()
        .find(|(_, d)| d["kind"] == "AccessRequest")
        .unwrap();
    let (_, schema) = schemas.iter().find(|(k, _)| k == "AccessRequest").unwrap();
    doc["spec"]["duration"] = "200h".into();
    let mut out = Vec::new();
    violations(schema, &doc, "", &mut out);
    assert!(out.is_empty(), "structurally fine: {out:?}");
    let refused = kube::core::cel::Validator::new()
        .validate(schema, &doc, None)
        .unwrap_err();
    assert!(format!("{refused:?}").contains("168h"), "{refused:?}");
}

#[test]
fn the_checker_catches_typos_wrong_types_and_bad_enums() {
    let schemas = schemas();
    let schema = &schemas.iter().find(|(k, _)| k == "Resource").unwrap().1;
    let bad = serde_json::json!({"apiVersion": "gate.dev/v1alpha1", "kind": "Resource", "metadata": {"name": "x"},
        "spec": {"protocol": "oracle", "endpoint": {"host": "h", "port": "5432"}, "requireAccesGrant": true}});
    let mut out = Vec::new();
    violations(schema, &bad, "", &mut out);
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(out.iter().any(|v| v.contains(".spec.protocol")), "{out:?}");
    assert!(
        out.iter().any(|v| v.contains(".spec.endpoint.port")),
        "{out:?}"
    );
    assert!(
        out.iter()
            .any(|v| v.contains("requireAccesGrant: unknown field")),
        "{out:?}"
    );
}
