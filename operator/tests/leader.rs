//! Leader election: two replicas contend for one Lease; exactly one leads, and the other takes
//! over once the leader stops renewing. Also the operator's /healthz, /readyz and /metrics.
#![allow(clippy::unwrap_used)]

mod fake_api;

use std::time::Duration;

use fake_api::FakeApi;
use gate_operator::leader::{LeaseConfig, elect, try_acquire};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use tokio::sync::watch;

fn config(identity: &str) -> LeaseConfig {
    LeaseConfig {
        namespace: "gate".into(),
        name: "gate-operator".into(),
        identity: identity.into(),
        duration: Duration::from_secs(1),
        renew_every: Duration::from_millis(200),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_replicas_leads_and_the_other_takes_over() {
    let fake = FakeApi::start().await;
    let (a_tx, a_rx) = watch::channel(false);
    let (b_tx, b_rx) = watch::channel(false);
    let a = tokio::spawn(elect(fake.client(), config("a"), a_tx));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = tokio::spawn(elect(fake.client(), config("b"), b_tx));
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(*a_rx.borrow() && !*b_rx.borrow(), "a leads, b stands by");
    }
    let leases: Api<Lease> = Api::namespaced(fake.client(), "gate");
    let lease = leases.get("gate-operator").await.unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("a"));

    // The leader stops renewing: after the lease duration, b takes over.
    a.abort();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !*b_rx.borrow() {
        assert!(tokio::time::Instant::now() < deadline, "b never took over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lease = leases.get("gate-operator").await.unwrap().spec.unwrap();
    assert_eq!(
        (lease.holder_identity.as_deref(), lease.lease_transitions),
        (Some("b"), Some(1))
    );
    // a, back, does not steal a lease b keeps renewing.
    assert!(!try_acquire(&leases, &config("a")).await.unwrap());
    b.abort();
}
