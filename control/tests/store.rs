//! The store suite, run against both stores: embedded SQLite and a real PostgreSQL 15.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Db, postgres_store};
use gate_config::control::DatabaseConfig;
use gate_control::store::{AuditFilter, PolicyInsert, PolicyPatch, Store, StoreError};
use gate_proto::v1::{AuditEvent, Group, Identity, Resource};

struct Opened {
    store: Store,
    _dir: tempfile::TempDir,
    _pg: Option<gate_testkit::Postgres>,
}

async fn open(db: Db) -> Opened {
    let dir = tempfile::tempdir().unwrap();
    let mut config = DatabaseConfig {
        sqlite_path: dir.path().join("nested/gate.db").display().to_string(),
        ..DatabaseConfig::default()
    };
    let pg = match db {
        Db::Sqlite => None,
        Db::Postgres => {
            let (pg, dsn) = postgres_store();
            config.dsn = Some(dsn);
            Some(pg)
        }
    };
    let store = Store::open(&config).await.unwrap();
    Opened {
        store,
        _dir: dir,
        _pg: pg,
    }
}

/// Run one suite function against both stores.
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Db::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::Db::Postgres).await;
            }
        }
    )*};
}

both_stores!(
    resources_are_scoped_to_their_organization,
    policy_versions_states_and_history,
    identities_get_groups_from_membership,
    audit_ingest_is_idempotent_and_filters_page_newest_first,
    connectors_register_by_name_and_go_offline,
    registrations_succeed_while_others_write,
    deleting_an_organization_deletes_its_rows,
    revisions_grow_with_every_change,
);

fn resource(org: &str, name: &str) -> Resource {
    Resource {
        id: gate_control::util::new_id(),
        org_id: org.to_owned(),
        name: name.to_owned(),
        protocol: "postgres".into(),
        host: "db.internal".into(),
        port: 5432,
        database: "appdb".into(),
        labels: [("env".to_owned(), "prod".to_owned())].into(),
        require_access_grant: true,
        origin: "api".into(),
        ..Resource::default()
    }
}

async fn resources_are_scoped_to_their_organization(db: Db) {
    let opened = open(db).await;
    let store = &opened.store;
    let other = store.create_org("acme").await.unwrap();
    let created = store
        .insert_resource(&resource("default", "primary-db"))
        .await
        .unwrap();
    assert_eq!(created.labels["env"], "prod");
    assert!(created.require_access_grant);
    // The same name in another org is fine; twice in one org is a conflict.
    store
        .insert_resource(&resource(&other.id, "primary-db"))
        .await
        .unwrap();
    let err = store
        .insert_resource(&resource("default", "primary-db"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");

    let fetched = store
        .get_resource("default", &created.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fetched.host, "db.internal");
    assert_eq!(fetched.port, 5432);
    assert!(
        store
            .get_resource(&other.id, &created.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.list_resources("default").await.unwrap().len(), 1);

    let mut changed = fetched.clone();
    changed.port = 6543;
    changed.org_id = other.id.clone();
    assert!(
        store.update_resource(&changed).await.unwrap().is_none(),
        "another org cannot update it"
    );
    changed.org_id = "default".into();
    assert_eq!(
        store.update_resource(&changed).await.unwrap().unwrap().port,
        6543
    );
    assert!(!store.delete_resource(&other.id, &created.id).await.unwrap());
    assert!(store.delete_resource("default", &created.id).await.unwrap());
    assert!(store.list_resources("default").await.unwrap().is_empty());
}

async fn policy_versions_states_and_history(db: Db) {
    let opened = open(db).await;
    let store = &opened.store;
    let stages = vec!["pre_request".to_owned()];
    let targets = vec!["prod-*".to_owned()];
    let policy = store
        .insert_policy(PolicyInsert {
            org_id: "default",
            name: "no-drop",
            description: "first",
            stages: &stages,
            targets: &targets,
            state: "draft",
            rego: "package a\n",
            origin: "api",
            owner: "",
            by: "alice",
        })
        .await
        .unwrap();
    assert_eq!((policy.version, policy.state.as_str()), (1, "draft"));
    assert_eq!(policy.targets, targets);

    let patch = PolicyPatch {
        rego: Some("package a\n# v2\n"),
        ..PolicyPatch::default()
    };
    let v2 = store
        .update_policy("default", &policy.id, patch, "bob")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (v2.version, v2.rego.as_str(), v2.updated_by.as_str()),
        (2, "package a\n# v2\n", "bob")
    );
    assert_eq!(v2.description, "first", "unset fields are kept");

    let active = store
        .set_policy_state("default", &policy.id, "active", None, "carol")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((active.state.as_str(), active.version), ("active", 2));
    let rolled = store
        .set_policy_state("default", &policy.id, "dry_run", Some(1), "dave")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (rolled.state.as_str(), rolled.version, rolled.rego.as_str()),
        ("dry_run", 1, "package a\n")
    );
    let err = store
        .set_policy_state("default", &policy.id, "active", Some(9), "eve")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.contains("version 9")),
        "{err}"
    );

    // A new text after a rollback is version 3, not 2 again.
    let patch = PolicyPatch {
        rego: Some("package a\n# v3\n"),
        ..PolicyPatch::default()
    };
    let v3 = store
        .update_policy("default", &policy.id, patch, "frank")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v3.version, 3);

    let history = store
        .policy_history("default", &policy.id)
        .await
        .unwrap()
        .unwrap();
    let versions: Vec<(u32, &str)> = history
        .versions
        .iter()
        .map(|v| (v.version, v.created_by.as_str()))
        .collect();
    assert_eq!(versions, [(1, "alice"), (2, "bob"), (3, "frank")]);
    let changes: Vec<(&str, &str, u32, u32, &str)> = history
        .changes
        .iter()
        .map(|c| {
            (
                c.from_state.as_str(),
                c.to_state.as_str(),
                c.from_version,
                c.to_version,
                c.changed_by.as_str(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("", "draft", 0, 1, "alice"),
            ("draft", "draft", 1, 2, "bob"),
            ("draft", "active", 2, 2, "carol"),
            ("active", "dry_run", 2, 1, "dave"),
            ("dry_run", "dry_run", 1, 3, "frank"),
        ]
    );
    assert!(
        store
            .policy_history("other", &policy.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.delete_policy("default", &policy.id).await.unwrap());
    assert!(
        store
            .get_policy("default", &policy.id)
            .await
            .unwrap()
            .is_none()
    );
}

async fn identities_get_groups_from_membership(db: Db) {
    let opened = open(db).await;
    let store = &opened.store;
    let alice = store
        .insert_identity(&Identity {
            id: "id-alice".into(),
            org_id: "default".into(),
            name: "alice".into(),
            email: "alice@example.com".into(),
            kind: "user".into(),
            origin: "api".into(),
            ssh_keys: vec!["ssh-ed25519 AAAAC3Nza alice@laptop".into()],
            ..Identity::default()
        })
        .await
        .unwrap();
    for name in ["engineering", "admins"] {
        let group = Group {
            id: format!("g-{name}"),
            org_id: "default".into(),
            name: name.into(),
            origin: "api".into(),
            ..Group::default()
        };
        store.insert_group(&group).await.unwrap();
        store
            .set_membership("default", &group.id, &alice.id, true)
            .await
            .unwrap();
    }
    // Adding twice is harmless.
    store
        .set_membership("default", "g-admins", &alice.id, true)
        .await
        .unwrap();
    let fetched = store
        .get_identity("default", &alice.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fetched.groups, ["admins", "engineering"]);
    assert_eq!(fetched.ssh_keys, ["ssh-ed25519 AAAAC3Nza alice@laptop"]);
    assert_eq!(
        store.list_identities("default").await.unwrap()[0].groups,
        ["admins", "engineering"]
    );
    assert_eq!(
        store
            .get_group("default", "g-admins")
            .await
            .unwrap()
            .unwrap()
            .members,
        ["id-alice"]
    );

    store
        .set_membership("default", "g-admins", &alice.id, false)
        .await
        .unwrap();
    assert!(
        store
            .delete_group("default", "g-engineering")
            .await
            .unwrap()
    );
    assert!(
        store
            .get_identity("default", &alice.id)
            .await
            .unwrap()
            .unwrap()
            .groups
            .is_empty()
    );
    assert!(store.delete_identity("default", &alice.id).await.unwrap());
    assert!(
        store
            .get_group("default", "g-admins")
            .await
            .unwrap()
            .unwrap()
            .members
            .is_empty()
    );
}

fn event(i: usize, identity: &str) -> (i64, AuditEvent) {
    let time = 1_700_000_000_000 + i64::try_from(i).unwrap() * 1000;
    (
        time,
        AuditEvent {
            id: format!("evt-{i:05}"),
            identity: identity.into(),
            resource: "primary-db".into(),
            action: if i.is_multiple_of(2) {
                "allow"
            } else {
                "block"
            }
            .into(),
            statement: format!("select {i}"),
            stage: "pre_request".into(),
            policies: vec!["example".into()],
            rows: 1,
            ..AuditEvent::default()
        },
    )
}

async fn audit_ingest_is_idempotent_and_filters_page_newest_first(db: Db) {
    let opened = open(db).await;
    let store = &opened.store;
    let events: Vec<_> = (0..300)
        .map(|i| event(i, if i < 200 { "alice" } else { "bob" }))
        .collect();
    assert_eq!(
        store.ingest_audit("default", &events).await.unwrap(),
        (300, 0)
    );
    // A retried batch that overlaps: only the new ones count.
    let retry: Vec<_> = (250..350).map(|i| event(i, "bob")).collect();
    assert_eq!(
        store.ingest_audit("default", &retry).await.unwrap(),
        (50, 50)
    );
    // Ids are unique per organization: another org's connector storing the
    // same ids learns nothing about the first org's events.
    let other_org: Vec<_> = (0..10).map(|i| event(i, "mallory")).collect();
    assert_eq!(
        store.ingest_audit("elsewhere", &other_org).await.unwrap(),
        (10, 0)
    );
    assert_eq!(
        store
            .query_audit(
                "elsewhere",
                &AuditFilter {
                    limit: 100,
                    ..AuditFilter::default()
                }
            )
            .await
            .unwrap()
            .len(),
        10
    );

    let all = AuditFilter {
        limit: 1000,
        ..AuditFilter::default()
    };
    let stored = store.query_audit("default", &all).await.unwrap();
    assert_eq!(stored.len(), 350);
    assert_eq!(stored[0].id, "evt-00349", "newest first");
    assert!(store.query_audit("other", &all).await.unwrap().is_empty());

    let filter = AuditFilter {
        identity: Some("alice".into()),
        action: Some("block".into()),
        from_ms: Some(1_700_000_010_000),
        to_ms: Some(1_700_000_020_000),
        limit: 1000,
        ..AuditFilter::default()
    };
    let ids: Vec<String> = store
        .query_audit("default", &filter)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(
        ids,
        [
            "evt-00019",
            "evt-00017",
            "evt-00015",
            "evt-00013",
            "evt-00011"
        ]
    );
    let by_stage = |stage: &str| AuditFilter {
        stage: Some(stage.into()),
        limit: 1000,
        ..AuditFilter::default()
    };
    let pre = store
        .query_audit("default", &by_stage("pre_request"))
        .await
        .unwrap();
    assert_eq!(pre.len(), 350);
    let sessions = store
        .query_audit("default", &by_stage("session"))
        .await
        .unwrap();
    assert!(sessions.is_empty());

    // Keyset pages: every event exactly once.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = AuditFilter {
            limit: 64,
            before: before.clone(),
            ..AuditFilter::default()
        };
        let events = store.query_audit("default", &page).await.unwrap();
        let Some(last) = events.last() else { break };
        before = Some((
            gate_control::util::parse_rfc3339(&last.time).unwrap(),
            last.id.clone(),
        ));
        seen.extend(events.into_iter().map(|e| e.id));
    }
    assert_eq!(seen.len(), 350);
    let unique: std::collections::BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 350);
}

async fn connectors_register_by_name_and_go_offline(db: Db) {
    let opened = open(db).await;
    let store = &opened.store;
    let resources = vec!["primary-db".to_owned()];
    let first = store
        .register_connector(
            "default",
            "edge-1",
            "0.1.0",
            &resources,
            "node-a",
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(first.status, "online");
    let again = store
        .register_connector(
            "default",
            "edge-1",
            "0.2.0",
            &resources,
            "node-b",
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            again.id.as_str(),
            again.version.as_str(),
            again.host.as_str()
        ),
        (first.id.as_str(), "0.2.0", "node-b")
    );
    assert!(store.heartbeat("default", &first.id).await.unwrap());
    assert!(!store.heartbeat("other", &first.id).await.unwrap());
    assert!(store.deregister("default", &first.id).await.unwrap());
    let listed = store.list_connectors("default").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, "offline");
    assert_eq!(listed[0].resources, resources);
}

/// Connectors registering with labels at the same moment as other writes all succeed (on
/// SQLite a transaction that reads before it writes would fail with SQLITE_BUSY).
async fn registrations_succeed_while_others_write(db: Db) {
    let opened = open(db).await;
    let store = &opened.store;
    let labels: std::collections::HashMap<String, String> =
        [("zone".to_owned(), "a".to_owned())].into();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let store = store.clone();
        let labels = labels.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                store
                    .register_connector("default", &format!("edge-{i}"), "1", &[], "h", &labels)
                    .await
                    .map(|_| ())
            } else {
                store.bump_revision("default").await.map(|_| ())
            }
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(store.list_connectors("default").await.unwrap().len(), 12);
}

async fn deleting_an_organization_deletes_its_rows(db: Db) {
    let opened = open(db).await;
    let store = &opened.store;
    let acme = store.create_org("acme").await.unwrap();
    assert!(matches!(
        store.create_org("acme").await.unwrap_err(),
        StoreError::Conflict(_)
    ));
    store
        .insert_resource(&resource(&acme.id, "db"))
        .await
        .unwrap();
    store
        .insert_resource(&resource("default", "db"))
        .await
        .unwrap();
    store
        .ingest_audit(&acme.id, &[event(1, "alice")])
        .await
        .unwrap();
    assert!(store.delete_org(&acme.id).await.unwrap());
    assert!(store.get_org(&acme.id).await.unwrap().is_none());
    assert!(store.list_resources(&acme.id).await.unwrap().is_empty());
    let all = AuditFilter {
        limit: 10,
        ..AuditFilter::default()
    };
    assert!(store.query_audit(&acme.id, &all).await.unwrap().is_empty());
    assert_eq!(
        store.list_resources("default").await.unwrap().len(),
        1,
        "other orgs keep their rows"
    );
    assert!(!store.delete_org(&acme.id).await.unwrap());
}

async fn revisions_grow_with_every_change(db: Db) {
    let opened = open(db).await;
    let store = &opened.store;
    let start = store.revision("default").await.unwrap();
    let r = store
        .insert_resource(&resource("default", "db"))
        .await
        .unwrap();
    store.delete_resource("default", &r.id).await.unwrap();
    assert_eq!(store.revision("default").await.unwrap(), start + 2);
    assert_eq!(store.revision("elsewhere").await.unwrap(), 0);
}

/// Migrations from a directory are applied once; editing an applied file stops the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_from_a_directory_refuse_edited_files() {
    let dir = tempfile::tempdir().unwrap();
    let migrations = dir.path().join("migrations");
    std::fs::create_dir_all(migrations.join("sqlite")).unwrap();
    let repo =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/sqlite/0001_init.sql");
    std::fs::copy(&repo, migrations.join("sqlite/0001_init.sql")).unwrap();
    std::fs::write(
        migrations.join("sqlite/0002_extra.sql"),
        "CREATE TABLE extra_notes (id TEXT PRIMARY KEY);\n",
    )
    .unwrap();
    let config = DatabaseConfig {
        sqlite_path: dir.path().join("gate.db").display().to_string(),
        migrations_path: Some(migrations.display().to_string()),
        ..DatabaseConfig::default()
    };
    let store = Store::open(&config).await.unwrap();
    drop(store);
    Store::open(&config).await.unwrap();
    std::fs::write(
        migrations.join("sqlite/0002_extra.sql"),
        "CREATE TABLE extra_notes (id TEXT);\n",
    )
    .unwrap();
    let err = Store::open(&config).await.unwrap_err().to_string();
    assert!(
        err.contains("0002_extra.sql was changed after it was applied"),
        "{err}"
    );
    std::fs::write(migrations.join("sqlite/bad-name.sql"), "").unwrap();
    let err = Store::open(&config).await.unwrap_err().to_string();
    assert!(
        err.contains("bad-name.sql: expected a name like 0001_description.sql"),
        "{err}"
    );
}
