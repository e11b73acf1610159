//! The admin UI over plain HTTP: the session cookie's attributes, CSRF and cookie checks on
//! every POST, a readonly key that sees no edit buttons and is refused by the server, sign-out,
//! a revoked key's session, and every page rendering for a signed-in admin.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;
mod ui_support;

use common::{Db, ROOT_KEY, http, start_cp};
use ui_support::{FORM, form, login_form, post_login, request, sign_in};

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_expiring_cookie_secure_behind_tls() {
    let cp = start_cp(Db::Sqlite).await;
    let addr = cp.addr();
    // Pages without a session send the browser to sign in, remembering where it was going.
    let away = request(addr, "GET", "/ui/policies", &[], "").await;
    assert_eq!(away.status, 303);
    assert_eq!(
        away.header("location"),
        Some("/ui/login?next=%2Fui%2Fpolicies")
    );

    let login = login_form(addr, &[]).await;
    // A wrong key is refused with the API's own message; no session cookie is set.
    let wrong = post_login(addr, &login, "not-a-key", "/", &[]).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("invalid api key"), "{}", wrong.body);
    assert!(wrong.cookie("gate_session").is_none());
    // Without the sign-in form's own token, even the right key is refused.
    let body = form(&[("key", ROOT_KEY), ("next", "/")]);
    let headers = [FORM, ("Cookie", login.1.as_str())];
    let forged = request(addr, "POST", "/ui/login", &headers, &body).await;
    assert_eq!(forged.status, 403);
    assert!(forged.cookie("gate_session").is_none());

    // The right key: HttpOnly, SameSite=Strict, an 8-hour Max-Age, not Secure over plain HTTP;
    // an open redirect in `next` is not followed.
    let ok = post_login(addr, &login, ROOT_KEY, "//evil.example/", &[]).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(ok.header("location"), Some("/"));
    let session_cookie = |reply: &ui_support::Reply| {
        reply
            .set_cookies()
            .into_iter()
            .find(|c| c.starts_with("gate_session="))
            .unwrap()
            .to_owned()
    };
    let set = session_cookie(&ok);
    for attribute in ["HttpOnly", "SameSite=Strict", "Max-Age=28800", "Path=/"] {
        assert!(set.contains(attribute), "{set}");
    }
    assert!(!set.contains("Secure"), "{set}");
    assert_eq!(ok.cookie("gate_session").unwrap().len(), 64);

    // Behind a TLS-terminating proxy the cookies are Secure.
    let https = [("X-Forwarded-Proto", "https")];
    let login = login_form(addr, &https).await;
    assert!(
        login.0.set_cookies()[0].contains("; Secure"),
        "{:?}",
        login.0.set_cookies()
    );
    let set = session_cookie(&post_login(addr, &login, ROOT_KEY, "/", &https).await);
    assert!(
        set.contains("; Secure") && set.contains("HttpOnly"),
        "{set}"
    );
}

#[tokio::test]
async fn posts_without_the_cookie_or_the_csrf_token_are_refused_and_change_nothing() {
    let cp = start_cp(Db::Sqlite).await;
    let browser = sign_in(cp.addr(), ROOT_KEY).await;
    let fields = [
        ("name", "pg-main"),
        ("protocol", "postgres"),
        ("host", "127.0.0.1"),
        ("port", "5432"),
    ];

    // No cookie at all (a cross-site form, curl): 401.
    let mut with_token = vec![("csrf", browser.csrf.as_str())];
    with_token.extend_from_slice(&fields);
    let cookieless = request(
        cp.addr(),
        "POST",
        "/ui/resources",
        &[FORM],
        &form(&with_token),
    )
    .await;
    assert_eq!(cookieless.status, 401, "{}", cookieless.body);
    // The cookie but no token, or another token: 403.
    let headers = [FORM, ("Cookie", browser.cookie.as_str())];
    let no_token = request(cp.addr(), "POST", "/ui/resources", &headers, &form(&fields)).await;
    assert_eq!(no_token.status, 403, "{}", no_token.body);
    let mut wrong = vec![("csrf", "0".repeat(64))];
    wrong.extend(fields.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let bad_token = request(cp.addr(), "POST", "/ui/resources", &headers, &form(&wrong)).await;
    assert_eq!(bad_token.status, 403);
    // Sign-out is a POST too.
    let logout = request(cp.addr(), "POST", "/ui/logout", &headers, "").await;
    assert_eq!(logout.status, 403);
    let (_, listed) = cp.root("GET", "/api/v1/resources", None, None).await;
    assert_eq!(
        listed["resources"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );

    // With both, the same form creates the resource the API then lists.
    let created = browser.post("/ui/resources", &fields).await;
    assert_eq!(created.status, 303, "{}", created.body);
    let (_, listed) = cp.root("GET", "/api/v1/resources", None, None).await;
    assert_eq!(listed["resources"][0]["name"], "pg-main", "{listed}");
    assert!(
        created
            .header("location")
            .unwrap()
            .starts_with("/ui/resources/")
    );

    // Signed out, the cookie no longer works.
    assert_eq!(browser.post("/ui/logout", &[]).await.status, 303);
    assert_eq!(browser.get("/ui/resources").await.status, 303);
    assert_eq!(browser.post("/ui/resources", &fields).await.status, 401);
}

#[tokio::test]
async fn a_readonly_key_sees_no_edit_buttons_and_the_server_refuses_its_actions() {
    let cp = start_cp(Db::Sqlite).await;
    let org = cp.org("acme").await;
    let readonly = cp.key(&org, "readonly").await;
    let editor = cp.key(&org, "editor").await;
    let viewer = sign_in(cp.addr(), &readonly).await;
    let page = viewer.get("/ui/resources").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("No resource is protected yet"),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains(r#"href="/ui/resources/new""#),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains("API keys"),
        "readonly sees no admin pages: {}",
        page.body
    );
    // The button is hidden, and the action is refused by the same authorization as the API.
    let fields = [
        ("name", "db"),
        ("protocol", "postgres"),
        ("host", "h"),
        ("port", "5432"),
    ];
    let refused = viewer.post("/ui/resources", &fields).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("needs write"), "{}", refused.body);
    assert_eq!(viewer.get("/ui/keys").await.status, 403);

    let writer = sign_in(cp.addr(), &editor).await;
    assert!(
        writer
            .get("/ui/resources")
            .await
            .body
            .contains(r#"href="/ui/resources/new""#)
    );
    assert_eq!(writer.post("/ui/resources", &fields).await.status, 303);
    let (_, listed) = cp.root("GET", "/api/v1/resources", Some(&org), None).await;
    assert_eq!(listed["resources"][0]["name"], "db", "{listed}");

    // Revoking the key ends its UI session at the next request.
    let (_, keys) = cp.root("GET", "/api/v1/api-keys", Some(&org), None).await;
    let id = keys["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "editor")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = cp
        .root(
            "DELETE",
            &format!("/api/v1/api-keys/{id}"),
            Some(&org),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let after = writer.get("/ui/resources").await;
    assert_eq!(after.status, 303);
    assert!(
        after.header("location").unwrap().contains("revoked"),
        "{:?}",
        after.header("location")
    );
}

#[tokio::test]
async fn every_page_renders_for_an_admin_with_its_title_and_breadcrumbs() {
    let cp = start_cp(Db::Sqlite).await;
    let browser = sign_in(cp.addr(), ROOT_KEY).await;
    for (path, title, empty) in [
        ("/", "Overview", "No connector has registered yet"),
        ("/ui/resources", "Resources", "No resource is protected yet"),
        ("/ui/resources/new", "New resource", ""),
        ("/ui/policies", "Policies", "No policy yet"),
        ("/ui/policies/new", "New policy", ""),
        (
            "/ui/access-requests",
            "Access requests",
            "No access request yet",
        ),
        ("/ui/audit", "Audit", "No audit event matches"),
        ("/ui/recordings", "Recordings", "No recording yet"),
        ("/ui/identities", "Identities and groups", "No identity yet"),
        ("/ui/keys", "API keys", "No organization key yet"),
        ("/ui/webhooks", "Webhooks and deliveries", "No webhook yet"),
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(
            page.body
                .contains(&format!("<title>{title} · Gate</title>")),
            "{path}: {}",
            page.body
        );
        assert!(
            page.body
                .contains(&format!("<li aria-current=\"page\">{title}</li>")),
            "{path}"
        );
        assert!(
            page.body.contains(empty),
            "{path}: empty state {empty:?} missing"
        );
    }
    // What the API stores is shown escaped: a label cannot inject markup.
    let body = r#"{"name":"db","protocol":"postgres","host":"h","port":1,"labels":{"team":"<script>alert(1)</script>"}}"#;
    let (status, created) = cp.root("POST", "/api/v1/resources", None, Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let page = browser
        .get(&format!(
            "/ui/resources/{}",
            created["id"].as_str().unwrap()
        ))
        .await;
    assert!(
        page.body
            .contains("team=&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    // The export is the API's JSON lines for the same filter.
    let export = browser.get("/ui/audit/export?action=block").await;
    assert_eq!(export.status, 200);
    assert_eq!(export.header("content-type"), Some("application/x-ndjson"));
    assert!(
        export
            .header("content-disposition")
            .unwrap()
            .contains("attachment")
    );
    // An unknown id is the API's 404 on a page.
    assert_eq!(browser.get("/ui/policies/nope").await.status, 404);
    assert_eq!(
        request(cp.addr(), "GET", "/ui/static/ui.css", &[], "")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn the_dev_control_plane_signs_in_without_a_key() {
    // `make dev`: --insecure and no root key; the key field is left empty.
    let cp = common::start_cp_with(Db::Sqlite, None, true).await;
    let login = login_form(cp.addr(), &[]).await;
    assert!(
        login.0.body.contains("leave the key empty"),
        "{}",
        login.0.body
    );
    let browser = sign_in(cp.addr(), "").await;
    let home = browser.get("/").await;
    assert!(home.body.contains("anonymous (insecure)"), "{}", home.body);
}

#[tokio::test]
async fn approvals_follow_the_approver_rules() {
    let cp = start_cp(Db::Sqlite).await;
    let org = cp.org("acme").await;
    let admin = cp.key(&org, "admin").await;
    let other_admin = cp.key(&org, "admin").await;
    let body = r#"{"name":"db","protocol":"postgres","host":"h","port":1}"#;
    let (_, resource) = cp
        .root("POST", "/api/v1/resources", Some(&org), Some(body))
        .await;
    let resource_id = resource["id"].as_str().unwrap();
    let asker = sign_in(cp.addr(), &admin).await;
    let fields = [
        ("subject", "bob"),
        ("resource_id", resource_id),
        ("reason", "deploy"),
        ("minutes", "30"),
    ];
    assert_eq!(asker.post("/ui/access-requests", &fields).await.status, 303);
    let (_, listed) = cp
        .root("GET", "/api/v1/access-requests", Some(&org), None)
        .await;
    let request = &listed["access_requests"][0];
    assert_eq!(
        (
            request["status"].as_str(),
            request["duration_seconds"].as_u64()
        ),
        (Some("pending"), Some(1800))
    );
    let id = request["id"].as_str().unwrap();

    // Nobody decides their own request: the service refuses, the page says why.
    let own = asker
        .post(&format!("/ui/access-requests/{id}/approve"), &[])
        .await;
    assert_eq!(own.status, 403, "{}", own.body);
    assert!(own.body.contains("id=\"access-error\""), "{}", own.body);
    // Another admin may; then revoke ends it.
    let approver = sign_in(cp.addr(), &other_admin).await;
    let status_after = |decision: &'static str| {
        let (approver, cp, org) = (&approver, &cp, &org);
        async move {
            let path = format!("/ui/access-requests/{id}/{decision}");
            assert_eq!(approver.post(&path, &[]).await.status, 303, "{decision}");
            let path = format!("/api/v1/access-requests/{id}");
            let (_, got) = cp.root("GET", &path, Some(org), None).await;
            got["status"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(status_after("approve").await, "approved");
    let list = approver.get("/ui/access-requests").await;
    assert!(list.body.contains("data-expires="), "{}", list.body);
    assert_eq!(status_after("revoke").await, "revoked");
    // A decision the UI does not know is refused.
    assert_eq!(
        approver
            .post(&format!("/ui/access-requests/{id}/bless"), &[])
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_new_key_is_shown_once_and_revoked_from_the_keys_page() {
    let cp = start_cp(Db::Sqlite).await;
    let org = cp.org("acme").await;
    let admin = sign_in(cp.addr(), &cp.key(&org, "admin").await).await;
    let created = admin
        .post("/ui/keys", &[("name", "ci"), ("role", "readonly")])
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let marker = "<p class=\"secret\" id=\"new-secret\">";
    let at = created.body.find(marker).unwrap() + marker.len();
    let secret = created.body[at..].split('<').next().unwrap().to_owned();
    // The secret works as an API key, and is never shown again.
    let (addr, path) = (cp.addr(), "/api/v1/resources");
    let works = || async { http(addr, "GET", path, Some(&secret), None, None).await.0 };
    assert_eq!(works().await, 200);
    let page = admin.get("/ui/keys").await;
    assert!(
        page.body.contains(">ci<") && !page.body.contains(&secret),
        "{}",
        page.body
    );
    let (_, keys) = cp.root("GET", "/api/v1/api-keys", Some(&org), None).await;
    let id = keys["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "ci")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        admin
            .post(&format!("/ui/keys/{id}/revoke"), &[])
            .await
            .status,
        303
    );
    assert_eq!(works().await, 401);
}

#[tokio::test]
async fn policy_versions_diff_and_roll_back_only_when_confirmed() {
    let cp = start_cp(Db::Sqlite).await;
    let browser = sign_in(cp.addr(), ROOT_KEY).await;
    let v1 = common::BLOCK_DROP;
    let v2 = v1.replace("drop is not allowed", "no drops here");
    let fields = [
        ("name", "no-drop"),
        ("stage_pre_request", "1"),
        ("rego", v1),
    ];
    let created = browser.post("/ui/policies", &fields).await;
    assert_eq!(created.status, 303, "{}", created.body);
    let page_path = created.header("location").unwrap().to_owned();
    let edit = [("stage_pre_request", "1"), ("rego", v2.as_str())];
    assert_eq!(browser.post(&page_path, &edit).await.status, 303);
    let page = browser.get(&page_path).await;
    assert!(
        page.body.contains("<span class=\"del\">- "),
        "{}",
        page.body
    );
    assert!(page.body.contains("no drops here"), "{}", page.body);
    assert!(page.body.contains("version 2"), "{}", page.body);

    // A rollback without the confirmation ticked changes nothing.
    let state_path = format!("{page_path}/state");
    let unconfirmed = [("state", "draft"), ("version", "1")];
    let refused = browser.post(&state_path, &unconfirmed).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let id = page_path.rsplit('/').next().unwrap();
    let (_, policy) = cp
        .root("GET", &format!("/api/v1/policies/{id}"), None, None)
        .await;
    assert_eq!(policy["version"], 2, "{policy}");
    let confirmed = [("state", "draft"), ("version", "1"), ("confirmed", "1")];
    assert_eq!(browser.post(&state_path, &confirmed).await.status, 303);
    let (_, policy) = cp
        .root("GET", &format!("/api/v1/policies/{id}"), None, None)
        .await;
    assert_eq!(
        (policy["version"].as_u64(), policy["state"].as_str()),
        (Some(1), Some("draft")),
        "{policy}"
    );
    // The same policy through a bad simulation input: the JSON error is named.
    let bad = browser
        .post(
            &format!("{page_path}/simulate"),
            &[("stage", "pre_request"), ("input", "{nope")],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("input: not valid JSON"), "{}", bad.body);
}
