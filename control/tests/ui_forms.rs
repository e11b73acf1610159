//! The admin UI's edit forms over plain HTTP: identities and webhooks are created, edited and
//! deleted through the same API calls (CSRF-checked; a readonly key sees no buttons and the
//! server refuses it), and the audit page's protocol filter narrows the list and the export.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;
mod ui_support;

use common::{Db, start_cp};
use serde_json::{Value, json};
use ui_support::{FORM, form, request, sign_in};

#[tokio::test]
async fn identities_are_edited_and_deleted_and_a_readonly_key_is_refused() {
    let cp = start_cp(Db::Sqlite).await;
    let org = cp.org("acme").await;
    let editor = sign_in(cp.addr(), &cp.key(&org, "editor").await).await;
    let viewer = sign_in(cp.addr(), &cp.key(&org, "readonly").await).await;
    let key_line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ7ErIGJBk06Q9lNDVWXCYR8NHsfzA6+2RCrJJVqxODJ alice@laptop";
    let body = json!({"name": "alice", "email": "alice@old.example", "kind": "user", "ssh_keys": [key_line]});
    let (status, created) = cp
        .root(
            "POST",
            "/api/v1/identities",
            Some(&org),
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    // The editor sees Edit and Delete; the form holds the current values.
    let page = editor.get("/ui/identities").await;
    assert!(
        page.body.contains(&format!("/ui/identities/{id}/edit")),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(&format!("/ui/identities/{id}/delete")),
        "{}",
        page.body
    );
    let edit = editor.get(&format!("/ui/identities/{id}/edit")).await;
    assert_eq!(edit.status, 200, "{}", edit.body);
    assert!(
        edit.body.contains("alice@old.example") && edit.body.contains("alice@laptop"),
        "{}",
        edit.body
    );

    // Saved through UpdateIdentity; a bad value comes back with the API's message.
    let fields = [
        ("name", "alice"),
        ("email", "alice@new.example"),
        ("kind", "user"),
        ("ssh_keys", key_line),
    ];
    let saved = editor.post(&format!("/ui/identities/{id}"), &fields).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let (_, now) = cp
        .root("GET", &format!("/api/v1/identities/{id}"), Some(&org), None)
        .await;
    assert_eq!(now["email"], "alice@new.example", "{now}");
    assert_eq!(now["ssh_keys"][0], key_line, "the keys are kept: {now}");
    let bad = editor
        .post(
            &format!("/ui/identities/{id}"),
            &[("name", "alice"), ("kind", "robot")],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(
        bad.body.contains("id=\"form-error\"") && bad.body.contains("kind"),
        "{}",
        bad.body
    );

    // readonly: no buttons, and the server refuses the edit and the delete.
    let page = viewer.get("/ui/identities").await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("/edit\""), "{}", page.body);
    assert!(!page.body.contains("/delete\""), "{}", page.body);
    let refused = viewer.post(&format!("/ui/identities/{id}"), &fields).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("needs write"), "{}", refused.body);
    assert_eq!(
        viewer
            .post(&format!("/ui/identities/{id}/delete"), &[])
            .await
            .status,
        403
    );

    // Without the CSRF token nothing changes, even for the editor.
    let forged = request(
        cp.addr(),
        "POST",
        &format!("/ui/identities/{id}/delete"),
        &[FORM, ("Cookie", &editor.cookie)],
        "",
    )
    .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let deleted = editor
        .post(&format!("/ui/identities/{id}/delete"), &[])
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    let (status, _) = cp
        .root("GET", &format!("/api/v1/identities/{id}"), Some(&org), None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn webhooks_are_edited_and_deleted_by_admins_only() {
    let cp = start_cp(Db::Sqlite).await;
    let org = cp.org("acme").await;
    let admin = sign_in(cp.addr(), &cp.key(&org, "admin").await).await;
    let viewer = sign_in(cp.addr(), &cp.key(&org, "readonly").await).await;
    let created = admin
        .post(
            "/ui/webhooks",
            &[
                ("url", "http://127.0.0.1:9/hook"),
                ("events", "access.requested"),
                ("description", "first"),
                ("enabled", "1"),
            ],
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let (_, listed) = cp.root("GET", "/api/v1/webhooks", Some(&org), None).await;
    let id = listed["webhooks"][0]["id"].as_str().unwrap().to_owned();

    let page = admin.get("/ui/webhooks").await;
    assert!(
        page.body.contains(&format!("/ui/webhooks/{id}/edit")),
        "{}",
        page.body
    );
    let edit = admin.get(&format!("/ui/webhooks/{id}/edit")).await;
    assert_eq!(edit.status, 200, "{}", edit.body);
    assert!(
        edit.body.contains("http:&#x2f;&#x2f;127.0.0.1:9&#x2f;hook") && edit.body.contains("first"),
        "{}",
        edit.body
    );

    // Saved through UpdateWebhook: new URL, events and description, now disabled.
    let fields = [
        ("url", "http://127.0.0.1:9/other"),
        ("events", "access.approved, access.denied"),
        ("description", "second"),
    ];
    let saved = admin.post(&format!("/ui/webhooks/{id}"), &fields).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let (_, hook) = cp
        .root("GET", &format!("/api/v1/webhooks/{id}"), Some(&org), None)
        .await;
    assert_eq!(
        (
            &hook["url"],
            &hook["events"],
            &hook["description"],
            hook["enabled"].as_bool().unwrap_or(false)
        ),
        (
            &json!("http://127.0.0.1:9/other"),
            &json!(["access.approved", "access.denied"]),
            &json!("second"),
            false
        ),
        "{hook}"
    );
    // A URL the SSRF guard refuses is shown on the form with the API's message.
    let bad = admin
        .post(
            &format!("/ui/webhooks/{id}"),
            &[("url", "http://169.254.169.254/latest")],
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("id=\"form-error\""), "{}", bad.body);

    // readonly: the page and the form are refused, and so are the posts.
    let page = viewer.get("/ui/webhooks").await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(!page.body.contains("/edit\""), "{}", page.body);
    assert_eq!(
        viewer.get(&format!("/ui/webhooks/{id}/edit")).await.status,
        403
    );
    assert_eq!(
        viewer
            .post(&format!("/ui/webhooks/{id}"), &fields)
            .await
            .status,
        403
    );
    assert_eq!(
        viewer
            .post(&format!("/ui/webhooks/{id}/delete"), &[])
            .await
            .status,
        403
    );
    let forged = request(
        cp.addr(),
        "POST",
        &format!("/ui/webhooks/{id}"),
        &[FORM, ("Cookie", &admin.cookie)],
        &form(&fields),
    )
    .await;
    assert_eq!(forged.status, 403, "{}", forged.body);

    let deleted = admin.post(&format!("/ui/webhooks/{id}/delete"), &[]).await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    let (_, listed) = cp.root("GET", "/api/v1/webhooks", Some(&org), None).await;
    assert_eq!(listed["webhooks"], json!([]), "{listed}");
}

#[tokio::test]
async fn the_audit_page_filters_and_exports_by_protocol() {
    let cp = start_cp(Db::Sqlite).await;
    let connector = cp.key("default", "connector").await;
    let event = |n: u32, protocol: &str, identity: &str| {
        json!({"id": format!("0190a0a0-0000-7000-8000-{n:012}"), "time": "2026-11-23T10:00:00.000Z",
               "identity": identity, "resource": "r", "protocol": protocol, "action": "allow"})
    };
    let events = json!({"events": [event(1, "postgres", "pg-user"), event(2, "ssh", "ssh-user")]});
    let (status, text) = common::http(
        cp.addr(),
        "POST",
        "/api/v1/audit",
        Some(&connector),
        None,
        Some(&events.to_string()),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let viewer = sign_in(cp.addr(), &cp.key("default", "readonly").await).await;

    let page = viewer.get("/ui/audit?protocol=ssh").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("<option selected>ssh</option>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("ssh-user") && !page.body.contains("pg-user"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("/ui/audit/export?protocol=ssh"),
        "{}",
        page.body
    );
    let export = viewer.get("/ui/audit/export?protocol=ssh").await;
    assert_eq!(export.status, 200, "{}", export.body);
    let lines: Vec<Value> = export
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{}", export.body);
    assert_eq!(lines[0]["identity"], "ssh-user");
    // An unknown protocol is the API's refusal on the page, not a silent empty list.
    let refused = viewer.get("/ui/audit?protocol=telnet").await;
    assert!(refused.body.contains("protocol"), "{}", refused.body);
    assert!(refused.body.contains("role=\"alert\""), "{}", refused.body);
}
