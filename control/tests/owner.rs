//! Ownership marks: `origin` and `owner` (the Kubernetes operator's CR UID) are set on create and
//! survive updates, on both stores, for resources, policies and groups.
#![allow(clippy::unwrap_used)]

mod common;

use common::{BLOCK_DROP, Db, ROOT_KEY, start_cp};
use gate_proto::v1::*;

async fn marks_are_set_on_create_and_kept_by_updates(db: Db) {
    let cp = start_cp(db).await;
    let mut root = cp.admin(Some(ROOT_KEY), None).await;

    let created = root
        .create_resource(CreateResourceRequest {
            resource: Some(Resource {
                name: "db".into(),
                protocol: "postgres".into(),
                host: "localhost".into(),
                port: 5432,
                origin: "kubernetes".into(),
                owner: "uid-1".into(),
                ..Resource::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (created.origin.as_str(), created.owner.as_str()),
        ("kubernetes", "uid-1")
    );
    // An update cannot take the object over: origin and owner stay.
    let updated = root
        .update_resource(UpdateResourceRequest {
            resource: Some(Resource {
                host: "elsewhere".into(),
                origin: "api".into(),
                owner: "uid-2".into(),
                ..created.clone()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.host, "elsewhere");
    assert_eq!(
        (updated.origin.as_str(), updated.owner.as_str()),
        ("kubernetes", "uid-1")
    );

    let policy = root
        .create_policy(CreatePolicyRequest {
            name: "no-drop".into(),
            rego: BLOCK_DROP.into(),
            origin: "kubernetes".into(),
            owner: "uid-3".into(),
            ..CreatePolicyRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let read = root
        .get_policy(GetPolicyRequest { id: policy.id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (read.origin.as_str(), read.owner.as_str()),
        ("kubernetes", "uid-3")
    );
    let plain = root
        .create_policy(CreatePolicyRequest {
            name: "plain".into(),
            rego: BLOCK_DROP.into(),
            ..CreatePolicyRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((plain.origin.as_str(), plain.owner.as_str()), ("api", ""));

    let group = root
        .create_group(CreateGroupRequest {
            group: Some(Group {
                name: "dbas".into(),
                origin: "kubernetes".into(),
                owner: "uid-4".into(),
                ..Group::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let listed = root
        .list_groups(ListGroupsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.groups[0].id, group.id);
    assert_eq!(listed.groups[0].owner, "uid-4");

    // A bad origin or an oversized owner is refused with the field named.
    let bad = root
        .create_policy(CreatePolicyRequest {
            name: "bad".into(),
            rego: BLOCK_DROP.into(),
            origin: "terraform".into(),
            ..CreatePolicyRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("origin"), "{}", bad.message());
    let long = root
        .create_group(CreateGroupRequest {
            group: Some(Group {
                name: "long".into(),
                owner: "x".repeat(300),
                ..Group::default()
            }),
        })
        .await
        .unwrap_err();
    assert!(long.message().contains("group.owner"), "{}", long.message());
}

#[tokio::test]
async fn marks_on_sqlite() {
    marks_are_set_on_create_and_kept_by_updates(Db::Sqlite).await;
}

#[tokio::test]
async fn marks_on_postgres() {
    marks_are_set_on_create_and_kept_by_updates(Db::Postgres).await;
}
