//! Signing in to the admin UI through a real OpenID Connect provider (panva's oidc-provider from
//! npm): groups map to roles and the session then acts like a key's; an unmapped person is
//! refused; a wrong state, a flow from another browser, a tampered nonce or PKCE challenge and a
//! replayed callback are all refused without a session.
#![allow(clippy::unwrap_used)] // in tests a panic is the failure report

mod common;
mod ui_support;

use ui_support::oidc::{Idp, Jar, get, start_cp_with_idp, through_idp};
use ui_support::{Browser, Reply, hidden};

/// `/ui/oidc/start` as a browser: the jar gets the flow cookie; returns the provider's URL.
async fn start(jar: &mut Jar, base: &str) -> String {
    let started = get(jar, &format!("{base}/ui/oidc/start?next=%2Fui%2Fpolicies")).await;
    assert_eq!(started.status, 303, "{}", started.body);
    assert!(jar.get("gate_oidc").is_some());
    let cookie = started
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("gate_oidc="))
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    started.header("location").unwrap().to_owned()
}

/// A whole sign-in as `user`: the callback's reply and the jar holding its cookies.
async fn sign_in(idp: &Idp, base: &str, user: &str) -> (Reply, Jar) {
    let mut jar = Jar::default();
    let url = start(&mut jar, base).await;
    let back = through_idp(idp, &url, user).await;
    let reply = get(&mut jar, &back).await;
    (reply, jar)
}

fn browser(base: &str, jar: &Jar, csrf: String) -> Browser {
    let addr = base.strip_prefix("http://").unwrap().parse().unwrap();
    let session = jar.get("gate_session").unwrap();
    Browser {
        addr,
        cookie: format!("gate_session={session}"),
        csrf,
    }
}

/// Replace the value of `name` in a URL's query.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .map(|(k, v)| {
            if k == name {
                (k, value.to_owned())
            } else {
                (k, v)
            }
        })
        .collect();
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in &pairs {
        out.append_pair(k, v);
    }
    format!("{base}?{}", out.finish())
}

#[tokio::test]
async fn groups_decide_the_role_and_the_session_acts_like_a_key() {
    let (cp, idp) = start_cp_with_idp().await;
    let base = format!("http://{}", cp.addr());

    // The sign-in page offers single sign-on.
    let login = get(&mut Jar::default(), &format!("{base}/ui/login")).await;
    assert!(login.body.contains("id=\"oidc-login\""), "{}", login.body);

    // alice is in gate-admins: an admin session, sent on to where she was going.
    let (reply, jar) = sign_in(&idp, &base, "alice").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.contains("url=&#x2f;ui&#x2f;policies"),
        "{}",
        reply.body
    );
    let session = reply
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("gate_session="))
        .unwrap()
        .to_owned();
    assert!(
        session.contains("SameSite=Strict") && session.contains("HttpOnly"),
        "{session}"
    );
    let home = get(&mut Jar::default(), &base).await;
    assert_eq!(home.status, 303, "no session without the cookie");
    let mut alice_jar = jar;
    let home = get(&mut alice_jar, &format!("{base}/")).await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(
        home.body.contains("oidc:alice@example.test"),
        "{}",
        home.body
    );
    assert!(home.body.contains("admin"), "{}", home.body);
    let alice = browser(&base, &alice_jar, hidden(&home.body, "csrf").unwrap());
    // Admin pages and admin actions work, through the same API authorization.
    assert_eq!(alice.get("/ui/keys").await.status, 200);
    let created = alice
        .post(
            "/ui/resources",
            &[
                ("name", "pg-sso"),
                ("protocol", "postgres"),
                ("host", "127.0.0.1"),
                ("port", "5432"),
            ],
        )
        .await;
    assert!(created.status < 400, "{} {}", created.status, created.body);
    let (_, listed) = cp.root("GET", "/api/v1/resources", None, None).await;
    assert_eq!(listed["resources"][0]["name"], "pg-sso", "{listed}");

    // bob is only in staff: readonly; he sees no edit buttons and the server refuses him.
    let (reply, mut bob_jar) = sign_in(&idp, &base, "bob").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let page = get(&mut bob_jar, &format!("{base}/ui/resources")).await;
    assert!(page.body.contains("readonly"), "{}", page.body);
    assert!(!page.body.contains("/ui/resources/new"), "{}", page.body);
    let bob = browser(&base, &bob_jar, hidden(&page.body, "csrf").unwrap());
    let refused = bob
        .post(
            "/ui/resources",
            &[
                ("name", "pg-bob"),
                ("protocol", "postgres"),
                ("host", "127.0.0.1"),
                ("port", "5432"),
            ],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(bob.get("/ui/keys").await.status, 403);

    // mallory's groups map to nothing: refused with a page that says why, and no session.
    let (reply, jar) = sign_in(&idp, &base, "mallory").await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(
        reply.body.contains("none of their groups (outsiders)"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("ui.oidc.role_mapping"),
        "{}",
        reply.body
    );
    assert!(jar.get("gate_session").is_none());
}

#[tokio::test]
async fn state_browser_nonce_pkce_and_replay_failures_are_refused() {
    let (cp, idp) = start_cp_with_idp().await;
    let base = format!("http://{}", cp.addr());
    let no_session = |reply: &Reply| reply.cookie("gate_session").is_none();

    // A state this control plane never issued.
    let mut jar = Jar::default();
    let url = start(&mut jar, &base).await;
    let back = through_idp(&idp, &url, "alice").await;
    let forged = get(&mut jar, &with_param(&back, "state", "not-the-state")).await;
    assert_eq!(forged.status, 400, "{}", forged.body);
    assert!(
        forged.body.contains("state does not match"),
        "{}",
        forged.body
    );
    assert!(no_session(&forged));

    // The right state, but from a browser without the flow's cookie.
    let mut jar = Jar::default();
    let url = start(&mut jar, &base).await;
    let back = through_idp(&idp, &url, "alice").await;
    let elsewhere = get(&mut Jar::default(), &back).await;
    assert_eq!(elsewhere.status, 400, "{}", elsewhere.body);
    assert!(
        elsewhere.body.contains("another browser"),
        "{}",
        elsewhere.body
    );
    // That flow is used up: the right browser cannot finish it either.
    let replayed = get(&mut jar, &back).await;
    assert_eq!(replayed.status, 400, "{}", replayed.body);
    assert!(no_session(&replayed));

    // A nonce swapped on the way to the provider: the ID token carries the wrong one.
    let mut jar = Jar::default();
    let url = start(&mut jar, &base).await;
    let back = through_idp(&idp, &with_param(&url, "nonce", "attacker-nonce"), "alice").await;
    let wrong_nonce = get(&mut jar, &back).await;
    assert_eq!(wrong_nonce.status, 401, "{}", wrong_nonce.body);
    assert!(wrong_nonce.body.contains("nonce"), "{}", wrong_nonce.body);
    assert!(no_session(&wrong_nonce));

    // A code bound to another PKCE challenge: the provider refuses our verifier.
    let mut jar = Jar::default();
    let url = start(&mut jar, &base).await;
    let other = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let back = through_idp(&idp, &with_param(&url, "code_challenge", other), "alice").await;
    let wrong_pkce = get(&mut jar, &back).await;
    assert_eq!(wrong_pkce.status, 401, "{}", wrong_pkce.body);
    assert!(
        wrong_pkce.body.contains("refused the code"),
        "{}",
        wrong_pkce.body
    );
    assert!(no_session(&wrong_pkce));

    // The untouched flow still works, once; its callback replayed is refused.
    let mut jar = Jar::default();
    let url = start(&mut jar, &base).await;
    let back = through_idp(&idp, &url, "alice").await;
    assert_eq!(get(&mut jar, &back).await.status, 200);
    let again = get(&mut jar, &back).await;
    assert_eq!(again.status, 400, "{}", again.body);
}
