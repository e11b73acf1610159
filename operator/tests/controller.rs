//! The controllers end to end: the fake API server, a real gate-control, and the operator in
//! between: apply → control-plane object → Ready; change → synced; drift → set back with an
//! Event; delete → gone and finalizer removed; objects created elsewhere are never taken over.
#![allow(clippy::unwrap_used)]

mod fake_api;
mod support;

use std::collections::BTreeMap;

use fake_api::FakeApi;
use gate_operator::crd::{
    Endpoint, Group, GroupSpec, Policy, PolicySpec, PolicyState, Protocol, Resource, ResourceSpec,
};
use gate_proto::v1 as pb;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::{Cp, eventually, operator};

const GATE: &str = "apis/gate.dev/v1alpha1";
const BLOCK_DROP: &str = "package gate.test\n\npre_request := {\"action\": \"block\", \"reason\": \"no drop\"} if {\n    input.query.type == \"drop\"\n}\n";

fn resource(name: &str, host: &str) -> Resource {
    Resource::new(
        name,
        ResourceSpec {
            protocol: Protocol::Postgres,
            endpoint: Endpoint {
                host: host.into(),
                port: 5432,
            },
            database: Some("app".into()),
            listen_port: None,
            labels: BTreeMap::from([("env".to_owned(), "prod".to_owned())]),
            require_access_grant: true,
            approver_groups: vec![],
            credentials_secret_ref: None,
            connector_selector: BTreeMap::new(),
        },
    )
}

fn condition(object: &Value, type_: &str) -> Option<(String, String)> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_owned(),
                c["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
}

async fn cp_resource(cp: &Cp, name: &str) -> Option<pb::Resource> {
    let list = cp
        .admin()
        .await
        .list_resources(pb::ListResourcesRequest {})
        .await
        .unwrap()
        .into_inner();
    list.resources.into_iter().find(|r| r.name == name)
}

async fn cp_group(cp: &Cp, name: &str) -> Option<pb::Group> {
    let list = cp
        .admin()
        .await
        .list_groups(pb::ListGroupsRequest {})
        .await
        .unwrap()
        .into_inner();
    list.groups.into_iter().find(|g| g.name == name)
}

fn events(fake: &FakeApi, reason: &str) -> Vec<Value> {
    fake.list("apis/events.k8s.io/v1", "events")
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_lifecycle_with_drift_and_finalizer() {
    let fake = FakeApi::start().await;
    let cp = Cp::start().await;
    let (_ctx, _stop) = operator(&fake, &cp).await;
    let api: Api<Resource> = Api::namespaced(fake.client(), "apps");
    let created = api
        .create(&PostParams::default(), &resource("orders-db", "db-1"))
        .await
        .unwrap();
    let uid = created.metadata.uid.clone().unwrap();

    // Applied → control-plane object marked as ours → Ready=True with its id.
    let mirrored = eventually(10, "control-plane resource", || async {
        cp_resource(&cp, "orders-db").await
    })
    .await;
    assert_eq!(
        (mirrored.origin.as_str(), mirrored.owner.as_str()),
        ("kubernetes", uid.as_str())
    );
    assert_eq!(
        (
            mirrored.host.as_str(),
            mirrored.port,
            mirrored.database.as_str()
        ),
        ("db-1", 5432, "app")
    );
    assert!(mirrored.require_access_grant);
    let ready = eventually(10, "Ready=True", || async {
        let o = fake.get(GATE, "resources", "apps", "orders-db")?;
        (condition(&o, "Ready")? == ("True".into(), "Created".into())
            || condition(&o, "Ready")?.0 == "True")
            .then_some(o)
    })
    .await;
    assert_eq!(ready["status"]["controlPlaneId"], json!(mirrored.id));
    assert_eq!(
        ready["metadata"]["finalizers"],
        json!(["gate.dev/control-plane"])
    );
    // Status went through the status subresource under the operator's own field manager.
    let managers: Vec<&str> = ready["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert_eq!(managers, vec!["gate-operator"]);
    assert_eq!(condition(&ready, "Owned").unwrap().0, "True");

    // A spec change reaches the control plane; observedGeneration follows.
    api.patch(
        "orders-db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"endpoint": {"host": "db-2"},
                                       "connectorSelector": {"region": "eu"}}})),
    )
    .await
    .unwrap();
    let eu = std::collections::HashMap::from([("region".to_owned(), "eu".to_owned())]);
    eventually(10, "new host and connector selector", || async {
        cp_resource(&cp, "orders-db")
            .await
            .filter(|r| r.host == "db-2" && r.connector_selector == eu)
    })
    .await;
    eventually(10, "observedGeneration 2", || async {
        fake.get(GATE, "resources", "apps", "orders-db")
            .filter(|o| o["status"]["observedGeneration"] == json!(2))
    })
    .await;

    // Drift made through the API is set back, with an Event saying so.
    let mut changed = cp_resource(&cp, "orders-db").await.unwrap();
    changed.host = "hijacked".into();
    changed.connector_selector.clear();
    cp.admin()
        .await
        .update_resource(pb::UpdateResourceRequest {
            resource: Some(changed),
        })
        .await
        .unwrap();
    eventually(10, "drift corrected", || async {
        cp_resource(&cp, "orders-db")
            .await
            .filter(|r| r.host == "db-2" && r.connector_selector == eu)
    })
    .await;
    eventually(10, "DriftCorrected event", || async {
        (!events(&fake, "DriftCorrected").is_empty()).then_some(())
    })
    .await;

    // Delete → control-plane object gone → finalizer removed → object gone.
    api.delete("orders-db", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, "object gone", || async {
        fake.get(GATE, "resources", "apps", "orders-db")
            .is_none()
            .then_some(())
    })
    .await;
    assert!(cp_resource(&cp, "orders-db").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_created_elsewhere_are_not_taken_over() {
    let fake = FakeApi::start().await;
    let cp = Cp::start().await;
    let theirs = pb::Resource {
        name: "billing".into(),
        protocol: "postgres".into(),
        host: "api-made".into(),
        port: 5432,
        ..Default::default()
    };
    cp.admin()
        .await
        .create_resource(pb::CreateResourceRequest {
            resource: Some(theirs),
        })
        .await
        .unwrap();
    let (_ctx, _stop) = operator(&fake, &cp).await;
    let api: Api<Resource> = Api::namespaced(fake.client(), "apps");
    api.create(&PostParams::default(), &resource("billing", "k8s-made"))
        .await
        .unwrap();
    let refused = eventually(10, "Owned=False", || async {
        let o = fake.get(GATE, "resources", "apps", "billing")?;
        (condition(&o, "Owned")?.0 == "False").then_some(o)
    })
    .await;
    assert_eq!(condition(&refused, "Owned").unwrap().1, "OriginMismatch");
    assert_eq!(
        condition(&refused, "Ready").unwrap(),
        ("False".into(), "OriginMismatch".into())
    );
    assert!(!events(&fake, "OriginMismatch").is_empty());
    assert_eq!(
        cp_resource(&cp, "billing").await.unwrap().host,
        "api-made",
        "never overwritten"
    );
    // Deleting the refused object leaves the other object alone.
    api.delete("billing", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, "object gone", || async {
        fake.get(GATE, "resources", "apps", "billing")
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(cp_resource(&cp, "billing").await.unwrap().origin, "api");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_groups_are_mirrored() {
    let fake = FakeApi::start().await;
    let cp = Cp::start().await;
    let (_ctx, _stop) = operator(&fake, &cp).await;
    // The policy text comes from a ConfigMap.
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(fake.client(), "apps");
    let mut map = k8s_openapi::api::core::v1::ConfigMap::default();
    map.metadata.name = Some("rego".into());
    map.data = Some(BTreeMap::from([(
        "policy.rego".to_owned(),
        BLOCK_DROP.to_owned(),
    )]));
    maps.create(&PostParams::default(), &map).await.unwrap();
    let policies: Api<Policy> = Api::namespaced(fake.client(), "apps");
    let spec = PolicySpec {
        description: "no drops".into(),
        rego: None,
        config_map_ref: Some(gate_operator::crd::ConfigMapKeyRef {
            name: "rego".into(),
            key: "policy.rego".into(),
        }),
        state: PolicyState::Active,
        targets: vec!["prod-*".into()],
        stages: vec![gate_operator::crd::Stage::PreRequest],
    };
    policies
        .create(&PostParams::default(), &Policy::new("no-drop", spec))
        .await
        .unwrap();
    let find_policy = || async {
        let list = cp
            .admin()
            .await
            .list_policies(pb::ListPoliciesRequest {})
            .await
            .unwrap()
            .into_inner();
        list.policies.into_iter().find(|p| p.name == "no-drop")
    };
    let policy = eventually(10, "control-plane policy", find_policy).await;
    assert_eq!(
        (
            policy.state.as_str(),
            policy.rego.as_str(),
            policy.origin.as_str()
        ),
        ("active", BLOCK_DROP, "kubernetes")
    );
    assert_eq!(
        (policy.targets.clone(), policy.stages.clone()),
        (vec!["prod-*".to_owned()], vec!["pre_request".to_owned()])
    );
    // Moving the state in Kubernetes moves it in the control plane.
    policies
        .patch(
            "no-drop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"state": "dry_run"}})),
        )
        .await
        .unwrap();
    eventually(10, "dry_run", || async {
        find_policy().await.filter(|p| p.state == "dry_run")
    })
    .await;
    // An invalid policy text is refused as InvalidSpec, with the compiler's message.
    let bad = PolicySpec {
        description: String::new(),
        rego: Some("package x\nthis is not rego".into()),
        config_map_ref: None,
        state: PolicyState::Draft,
        targets: vec![],
        stages: vec![],
    };
    policies
        .create(&PostParams::default(), &Policy::new("broken", bad))
        .await
        .unwrap();
    let refused = eventually(10, "InvalidSpec", || async {
        let o = fake.get(GATE, "policies", "apps", "broken")?;
        (condition(&o, "Ready")?.1 == "InvalidSpec").then_some(o)
    })
    .await;
    assert!(
        refused["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("rego"),
        "{refused}"
    );

    // Groups: members by name or email, unknown ones created as identities.
    let groups: Api<Group> = Api::namespaced(fake.client(), "apps");
    let spec = GroupSpec {
        description: "DBAs".into(),
        members: vec!["alice@example.com".into(), "bob".into()],
    };
    groups
        .create(&PostParams::default(), &Group::new("dbas", spec))
        .await
        .unwrap();
    let group = eventually(10, "group with members", || async {
        cp_group(&cp, "dbas").await.filter(|g| g.members.len() == 2)
    })
    .await;
    assert_eq!(
        (group.origin.as_str(), group.description.as_str()),
        ("kubernetes", "DBAs")
    );
    groups
        .patch(
            "dbas",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"members": ["bob"]}})),
        )
        .await
        .unwrap();
    eventually(10, "one member left", || async {
        cp_group(&cp, "dbas").await.filter(|g| g.members.len() == 1)
    })
    .await;
    let ready = fake.get(GATE, "groups", "apps", "dbas").unwrap();
    assert_eq!(condition(&ready, "Ready").unwrap().0, "True", "{ready}");
}

/// One HTTP/1.1 GET over a fresh connection: (status line, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    let fake = FakeApi::start().await;
    let cp = Cp::start().await;
    let (ctx, _stop) = operator(&fake, &cp).await;
    let health = Arc::new(gate_operator::run::Health::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = gate_operator::run::router(ctx.clone(), health.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    assert!(get(addr, "/healthz").await.0.contains("200"));
    assert!(
        get(addr, "/readyz").await.0.contains("503"),
        "not ready before the election decided"
    );
    health.ready.store(true, Ordering::Relaxed);
    assert_eq!(get(addr, "/readyz").await.1, "ready (standby)\n");

    let api: Api<Resource> = Api::namespaced(fake.client(), "apps");
    api.create(&PostParams::default(), &resource("metrics-db", "h"))
        .await
        .unwrap();
    eventually(10, "mirrored", || async {
        cp_resource(&cp, "metrics-db").await
    })
    .await;
    let (status, metrics) = get(addr, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    let line = metrics
        .lines()
        .find(|l| l.starts_with("gate_operator_reconciles_total{kind=\"Resource\"}"))
        .unwrap_or_else(|| panic!("{metrics}"));
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 1.0, "{line}");
    assert!(
        metrics.contains("gate_operator_reconcile_duration_seconds_bucket{"),
        "{metrics}"
    );
}
