//! AccessRequest both ways: a CR becomes a control-plane request; approval through the API shows
//! in `.status` within seconds; deleting the CR revokes the grant; bad specs are refused.
#![allow(clippy::unwrap_used)]

mod fake_api;
mod support;

use fake_api::FakeApi;
use gate_operator::crd::{AccessRequest, AccessRequestSpec, Scope};
use gate_proto::v1 as pb;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use support::{Cp, eventually, operator};

const GATE: &str = "apis/gate.dev/v1alpha1";

fn request(resource: &str, duration: &str) -> AccessRequest {
    AccessRequest::new(
        "alice-orders",
        AccessRequestSpec {
            resource: resource.into(),
            subject: "alice".into(),
            requested_by: Some("alice@example.com".into()),
            reason: "incident 42".into(),
            duration: duration.into(),
            scopes: vec![Scope {
                operation: "query".into(),
                target: "public.orders".into(),
            }],
        },
    )
}

fn phase(fake: &FakeApi, name: &str, want: &str) -> Option<Value> {
    fake.get(GATE, "accessrequests", "apps", name)
        .filter(|o| o["status"]["phase"] == want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_in_the_control_plane_shows_in_status_and_delete_revokes() {
    let fake = FakeApi::start().await;
    let cp = Cp::start().await;
    let mut admin = cp.admin().await;
    let db = pb::Resource {
        name: "orders-db".into(),
        protocol: "postgres".into(),
        host: "h".into(),
        port: 5432,
        ..Default::default()
    };
    admin
        .create_resource(pb::CreateResourceRequest { resource: Some(db) })
        .await
        .unwrap();
    let alice = pb::Identity {
        name: "alice".into(),
        kind: "user".into(),
        ..Default::default()
    };
    admin
        .create_identity(pb::CreateIdentityRequest {
            identity: Some(alice),
        })
        .await
        .unwrap();
    let (_ctx, _stop) = operator(&fake, &cp).await;
    let api: Api<AccessRequest> = Api::namespaced(fake.client(), "apps");
    api.create(&PostParams::default(), &request("orders-db", "4h"))
        .await
        .unwrap();

    let pending = eventually(10, "Pending", || async {
        phase(&fake, "alice-orders", "Pending")
    })
    .await;
    let id = pending["status"]["controlPlaneId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mirrored = admin
        .get_access_request(pb::GetAccessRequestRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (mirrored.subject.as_str(), mirrored.requested_by.as_str()),
        ("alice", "alice@example.com")
    );
    assert_eq!(
        (mirrored.duration_seconds, mirrored.reason.as_str()),
        (4 * 3600, "incident 42")
    );
    assert_eq!(
        mirrored.scopes,
        vec![pb::GrantScope {
            operation: "query".into(),
            target: "public.orders".into()
        }]
    );

    admin
        .approve_access_request(pb::ApproveAccessRequestRequest {
            id: id.clone(),
            approved_by: "bob".into(),
        })
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let approved = eventually(5, "Approved", || async {
        phase(&fake, "alice-orders", "Approved")
    })
    .await;
    assert!(
        started.elapsed().as_secs() < 3,
        "approval took {:?}",
        started.elapsed()
    );
    assert_eq!(approved["status"]["approvedBy"], json!("bob"));
    assert!(
        approved["status"]["expiresAt"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{approved}"
    );

    // Deleting the CR revokes the grant in the control plane, then the finalizer goes.
    api.delete("alice-orders", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, "CR gone", || async {
        fake.get(GATE, "accessrequests", "apps", "alice-orders")
            .is_none()
            .then_some(())
    })
    .await;
    let revoked = admin
        .get_access_request(pb::GetAccessRequestRequest { id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.status, "revoked");
    assert!(
        revoked.revoked_by.contains("apps/alice-orders"),
        "{}",
        revoked.revoked_by
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_unknown_resources_are_refused_with_a_reason() {
    let fake = FakeApi::start().await;
    let cp = Cp::start().await;
    let (_ctx, _stop) = operator(&fake, &cp).await;
    let api: Api<AccessRequest> = Api::namespaced(fake.client(), "apps");
    api.create(&PostParams::default(), &request("nope", "1h"))
        .await
        .unwrap();
    let refused = eventually(10, "InvalidSpec", || async {
        let o = fake.get(GATE, "accessrequests", "apps", "alice-orders")?;
        let ready = o["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready")?
            .clone();
        (ready["reason"] == "InvalidSpec").then_some(ready)
    })
    .await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("no resource \"nope\""),
        "{refused}"
    );
    let list = cp
        .admin()
        .await
        .list_access_requests(pb::ListAccessRequestsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(list.access_requests.is_empty());
}
