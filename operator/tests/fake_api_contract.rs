//! Contract tests of the fake API server: the Kubernetes semantics the operator's tests rely on,
//! exercised through kube-rs exactly as the operator talks to a real API server.
#![allow(clippy::unwrap_used)]

mod fake_api;

use std::collections::BTreeMap;
use std::time::Duration;

use fake_api::FakeApi;
use futures_util::StreamExt;
use gate_operator::crd::{Endpoint, Protocol, Resource, ResourceSpec};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

const PREFIX: &str = "apis/gate.dev/v1alpha1";

fn resource(name: &str, host: &str) -> Resource {
    let mut r = Resource::new(
        name,
        ResourceSpec {
            protocol: Protocol::Postgres,
            endpoint: Endpoint {
                host: host.into(),
                port: 5432,
            },
            database: None,
            listen_port: None,
            labels: BTreeMap::new(),
            require_access_grant: false,
            approver_groups: vec![],
            credentials_secret_ref: None,
            connector_selector: BTreeMap::new(),
        },
    );
    r.metadata.namespace = Some("apps".into());
    r
}

fn code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn versions_generation_conflicts_and_status_subresource() {
    let fake = FakeApi::start().await;
    let api: Api<Resource> = Api::namespaced(fake.client(), "apps");
    let created = api
        .create(&PostParams::default(), &resource("db", "a"))
        .await
        .unwrap();
    let rv1: u64 = created
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some());
    assert_eq!(
        code(
            api.create(&PostParams::default(), &resource("db", "a"))
                .await
                .unwrap_err()
        ),
        409
    );

    // A spec change bumps generation and resourceVersion; a stale replace is refused.
    let mut changed = created.clone();
    changed.spec.endpoint.host = "b".into();
    let replaced = api
        .replace("db", &PostParams::default(), &changed)
        .await
        .unwrap();
    let rv2: u64 = replaced
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);
    assert_eq!(replaced.metadata.generation, Some(2));
    assert_eq!(
        code(
            api.replace("db", &PostParams::default(), &changed)
                .await
                .unwrap_err()
        ),
        409
    );

    // Metadata changes do not bump generation; status goes only through /status.
    let labelled = api
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"a": "b"}}, "status": {"controlPlaneId": "x"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(2));
    assert!(
        labelled.status.is_none(),
        "the main endpoint ignores status"
    );
    let status = api
        .patch_status("db", &PatchParams::apply("gate-operator").force(),
            &Patch::Apply(json!({"apiVersion": "gate.dev/v1alpha1", "kind": "Resource", "status": {"controlPlaneId": "cp-1"}, "spec": {"endpoint": {"host": "ignored", "port": 1}}})))
        .await
        .unwrap();
    assert_eq!(
        status.status.unwrap().control_plane_id.as_deref(),
        Some("cp-1")
    );
    assert_eq!(
        status.spec.endpoint.host, "b",
        "/status changes nothing but status"
    );
    assert_eq!(status.metadata.generation, Some(2));
    let managers: Vec<String> = status
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, vec!["gate-operator"]);
    // Apply needs a field manager; strategic merge is not for custom resources.
    assert_eq!(
        code(
            api.patch_status("db", &PatchParams::default(), &Patch::Apply(json!({})))
                .await
                .unwrap_err()
        ),
        400
    );
    assert_eq!(
        code(
            api.patch("db", &PatchParams::default(), &Patch::Strategic(json!({})))
                .await
                .unwrap_err()
        ),
        415
    );
    // A failed JSON-patch test refuses the whole patch.
    let ops: json_patch::Patch = serde_json::from_value(
        json!([{"op": "test", "path": "/metadata/finalizers", "value": ["x"]}]),
    )
    .unwrap();
    assert_eq!(
        code(
            api.patch("db", &PatchParams::default(), &Patch::Json::<()>(ops))
                .await
                .unwrap_err()
        ),
        422
    );
    assert_eq!(code(api.get("missing").await.unwrap_err()), 404);
    // `test` of null on a missing path passes (how finalizers are added to a fresh object).
    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["gate.dev/control-plane"]}]))
    .unwrap();
    let added = api
        .patch("db", &PatchParams::default(), &Patch::Json::<()>(ops))
        .await
        .unwrap();
    assert_eq!(
        added.metadata.finalizers,
        Some(vec!["gate.dev/control-plane".to_owned()])
    );
}

#[tokio::test]
async fn delete_waits_for_finalizers() {
    let fake = FakeApi::start().await;
    let api: Api<Resource> = Api::namespaced(fake.client(), "apps");
    let mut r = resource("db", "a");
    r.metadata.finalizers = Some(vec!["gate.dev/control-plane".into()]);
    api.create(&PostParams::default(), &r).await.unwrap();
    api.delete("db", &DeleteParams::default()).await.unwrap();
    let marked = api.get("db").await.unwrap();
    assert!(
        marked.metadata.deletion_timestamp.is_some(),
        "still there, marked for deletion"
    );
    // No new finalizers while deleting; removing the last one deletes the object.
    let add = api
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["gate.dev/control-plane", "other"]}})),
        )
        .await;
    assert_eq!(code(add.unwrap_err()), 422);
    api.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(code(api.get("db").await.unwrap_err()), 404);
    assert!(fake.get(PREFIX, "resources", "apps", "db").is_none());
    // Without finalizers, DELETE removes at once.
    api.create(&PostParams::default(), &resource("plain", "a"))
        .await
        .unwrap();
    api.delete("plain", &DeleteParams::default()).await.unwrap();
    assert_eq!(code(api.get("plain").await.unwrap_err()), 404);
}

#[tokio::test]
async fn list_pages_and_watch_resumes_from_a_version() {
    let fake = FakeApi::start().await;
    let api: Api<Resource> = Api::namespaced(fake.client(), "apps");
    for name in ["a", "b", "c"] {
        api.create(&PostParams::default(), &resource(name, "h"))
            .await
            .unwrap();
    }
    let other: Api<Resource> = Api::namespaced(fake.client(), "other");
    let mut elsewhere = resource("z", "h");
    elsewhere.metadata.namespace = Some("other".into());
    other
        .create(&PostParams::default(), &elsewhere)
        .await
        .unwrap();
    let page = api
        .list(&kube::api::ListParams::default().limit(2))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    let token = page.metadata.continue_.clone().unwrap();
    let rest = api
        .list(
            &kube::api::ListParams::default()
                .limit(2)
                .continue_token(&token),
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(rest.metadata.continue_.is_none());
    let all: Api<Resource> = Api::all(fake.client());
    assert_eq!(all.list(&Default::default()).await.unwrap().items.len(), 4);

    let version = page.metadata.resource_version.clone().unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let mut watch = api
        .watch(&WatchParams::default().timeout(5), &version)
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Deleted(r) => assert_eq!(r.metadata.name.as_deref(), Some("a")),
        other => panic!("expected the deletion, got {other:?}"),
    }
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"endpoint": {"host": "new"}}})),
    )
    .await
    .unwrap();
    match tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Modified(r) => assert_eq!(r.spec.endpoint.host, "new"),
        other => panic!("expected the change, got {other:?}"),
    }
}

#[tokio::test]
async fn leases_take_turns_by_resource_version() {
    use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
    let fake = FakeApi::start().await;
    let leases: Api<Lease> = Api::namespaced(fake.client(), "gate");
    let mut lease = Lease::default();
    lease.metadata.name = Some("gate-operator".into());
    lease.spec = Some(LeaseSpec {
        holder_identity: Some("a".into()),
        ..LeaseSpec::default()
    });
    let held = leases.create(&PostParams::default(), &lease).await.unwrap();
    let mut by_b = held.clone();
    by_b.spec.as_mut().unwrap().holder_identity = Some("b".into());
    leases
        .replace("gate-operator", &PostParams::default(), &by_b)
        .await
        .unwrap();
    // A takeover based on the old version loses.
    assert_eq!(
        code(
            leases
                .replace("gate-operator", &PostParams::default(), &held)
                .await
                .unwrap_err()
        ),
        409
    );
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(fake.client(), "gate");
    assert!(
        events
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn mutating_webhook_configurations_are_cluster_scoped_and_json_patched() {
    use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;

    let fake = FakeApi::start().await;
    let api: Api<MutatingWebhookConfiguration> = Api::all(fake.client());
    let mwc: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "gate-operator"},
        "webhooks": [{"name": "inject.gate.dev", "admissionReviewVersions": ["v1"],
                      "sideEffects": "None",
                      "clientConfig": {"service": {"name": "gate-operator", "namespace": "gate-system"}}}]
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &mwc).await.unwrap();
    assert_eq!(
        created.metadata.namespace, None,
        "no namespace on a cluster-scoped object"
    );
    let rv1 = created.metadata.resource_version.clone().unwrap();
    assert_eq!(
        code(api.create(&PostParams::default(), &mwc).await.unwrap_err()),
        409
    );
    // There is no namespaced endpoint for a cluster-scoped kind.
    let resource = kube::api::ApiResource::erase::<MutatingWebhookConfiguration>(&());
    let namespaced: Api<kube::api::DynamicObject> =
        Api::namespaced_with(fake.client(), "gate-system", &resource);
    assert_eq!(
        code(namespaced.get("gate-operator").await.unwrap_err()),
        404
    );
    assert_eq!(code(api.get("missing").await.unwrap_err()), 404);

    // A JSON patch whose `test` fails changes nothing (422); one that passes bumps the version.
    let failing: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/webhooks/0/name", "value": "other.gate.dev"},
        {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "Y2E="}
    ]))
    .unwrap();
    let params = PatchParams::default();
    assert_eq!(
        code(
            api.patch("gate-operator", &params, &Patch::Json::<()>(failing))
                .await
                .unwrap_err()
        ),
        422
    );
    assert_eq!(
        api.get("gate-operator")
            .await
            .unwrap()
            .metadata
            .resource_version,
        Some(rv1.clone())
    );
    let passing: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/webhooks/0/name", "value": "inject.gate.dev"},
        {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "Y2E="}
    ]))
    .unwrap();
    let patched = api
        .patch("gate-operator", &params, &Patch::Json::<()>(passing))
        .await
        .unwrap();
    assert_ne!(patched.metadata.resource_version, Some(rv1));
    let webhooks = patched.webhooks.unwrap();
    assert_eq!(
        webhooks[0].client_config.ca_bundle.as_ref().unwrap().0,
        b"ca"
    );
    assert_eq!(
        fake.list(
            "apis/admissionregistration.k8s.io/v1",
            "mutatingwebhookconfigurations"
        )
        .len(),
        1
    );
}
