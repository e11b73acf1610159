//! The admin UI in a real headless Chromium driven over WebDriver (chromium-driver, fantoccini):
//! sign in with a key, create a resource, edit a policy into a syntax error and see it at its
//! line, simulate, activate, approve an access request, filter the audit log and replay an SSH
//! recording; at 1280x800 and at phone width; sign in through a real OIDC provider. Screenshots go to target/ui-screenshots/.
#![allow(clippy::unwrap_used, clippy::expect_used)] // in tests a panic is the failure report

mod common;
mod ui_support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::recordings::upload_cast;
use common::{Cp, Db, http, start_cp};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, stopped on drop.
struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Is the browser installed? `scripts/deps.sh` (run by `make test`) installs it; only a machine
/// where that cannot happen skips, loudly.
fn browser_installed() -> bool {
    let there =
        std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
    if !there {
        assert!(
            std::env::var_os("CI").is_none() && std::env::var_os("GATE_REQUIRE_BROWSER").is_none(),
            "chromium and chromium-driver are required here: run scripts/deps.sh"
        );
        eprintln!(
            "\n\n######## SKIPPED: {CHROMIUM} or {CHROMEDRIVER} is missing; run scripts/deps.sh ########\n\n"
        );
    }
    there
}

async fn start_driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Driver(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        port,
    );
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on {port}");
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,800", "--no-first-run", "--disable-extensions"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.1))
        .await
        .expect("a chromium session")
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let dir = target.join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

/// The text of the first element matching `css`, waiting for it to appear; an element that
/// goes stale under a late re-render is looked up again.
async fn text(c: &Client, css: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = c
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        match found.text().await {
            Ok(text) => return text,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("{css} went stale ({e}); looking again");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{css}: {e}"),
        }
    }
}

async fn fill(c: &Client, css: &str, value: &str) {
    let field = c
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

/// Set a textarea's value at once (typing a policy key by key is slow and auto-indents nothing).
async fn set_value(c: &Client, css: &str, value: &str) {
    let script = "document.querySelector(arguments[0]).value = arguments[1];";
    c.execute(script, vec![json!(css), json!(value)])
        .await
        .unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Click something that submits a form or follows a link, and wait until the next page has
/// loaded: reading the old page's elements while the new one arrives is how a browser test
/// flakes under load.
async fn click_and_load(c: &Client, css: &str) {
    c.execute("window.__gateOldPage = true;", vec![])
        .await
        .unwrap();
    click(c, css).await;
    let loaded = "return window.__gateOldPage === undefined && document.readyState === 'complete';";
    for _ in 0..200 {
        // A script run mid-navigation may fail; that is the old page going away.
        if c.execute(loaded, vec![]).await.ok() == Some(json!(true)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("clicking {css} did not load a new page within 10 s");
}

async fn api(cp: &Cp, key: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string());
    let (status, text) = http(cp.addr(), method, path, Some(key), None, body.as_deref()).await;
    assert!(status < 300, "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// An SSH session's text, with a colour escape the player must not show.
const CAST: &str = concat!(
    "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":0,\"env\":{}}\n",
    "[0.1,\"o\",\"$ \"]\n[0.3,\"o\",\"echo hi\\r\\n\"]\n",
    "[0.5,\"o\",\"\\u001b[32mhello from the recorded shell\\u001b[0m\\r\\n$ \"]\n",
);

const GOOD_POLICY: &str = "package gate.ipallow\n\nimport rego.v1\n\npre_request := {\"action\": \"block\", \"reason\": \"not from the office\"} if {\n  not startswith(input.client.addr, \"10.\")\n}\n";
/// Line 6 is broken.
const BROKEN_POLICY: &str = "package gate.ipallow\n\nimport rego.v1\n\npre_request := {\"action\": \"block\"} if {\n  input.client.addr ==== \"x\"\n}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_runs_gate_from_a_real_browser() {
    if !browser_installed() {
        return;
    }
    let cp = start_cp(Db::Sqlite).await;
    let org = cp.org("acme").await;
    let admin = cp.key(&org, "admin").await;
    let connector = cp.key(&org, "connector").await;
    let base = format!("http://{}", cp.addr());
    let driver = start_driver().await;
    let c = browser(&driver).await;

    // Sign in with a key: the overview.
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/ui/login"));
    shot(&c, "01-login").await;
    fill(&c, "#key", &admin).await;
    click_and_load(&c, "form[action='/ui/login'] button").await;
    assert_eq!(text(&c, "h1").await, "Overview");
    shot(&c, "02-overview").await;

    // Create a resource.
    c.goto(&format!("{base}/ui/resources/new")).await.unwrap();
    fill(&c, "#name", "pg-orders").await;
    fill(&c, "#host", "127.0.0.1").await;
    fill(&c, "#port", "5432").await;
    click_and_load(&c, "form.card button[type=submit]").await;
    assert_eq!(text(&c, "h1").await, "pg-orders");
    shot(&c, "03-resource").await;
    let resources = api(&cp, &admin, "GET", "/api/v1/resources", None).await;
    let resource_id = resources["resources"][0]["id"].as_str().unwrap().to_owned();

    // A policy: created, then edited into a syntax error shown at its line.
    c.goto(&format!("{base}/ui/policies/new")).await.unwrap();
    fill(&c, "#name", "ip-allowlist").await;
    set_value(&c, "#rego", GOOD_POLICY).await;
    click_and_load(&c, "#save-policy").await;
    assert_eq!(text(&c, "h1").await, "ip-allowlist");
    let policy_url = c.current_url().await.unwrap();
    click_and_load(&c, "a.button[href$='/edit']").await;
    set_value(&c, "#rego", BROKEN_POLICY).await;
    click_and_load(&c, "#save-policy").await;
    let error = text(&c, "#form-error").await;
    assert!(error.contains("ip-allowlist.rego:6:"), "{error}");
    let marked = text(&c, "#error-line").await;
    assert!(
        marked.contains("===="),
        "the marked line is the broken one: {marked}"
    );
    shot(&c, "04-policy-error").await;
    // Nothing was saved: the policy is still at version 1.
    let listed = api(&cp, &admin, "GET", "/api/v1/policies", None).await;
    assert_eq!(listed["policies"][0]["version"], 1, "{listed}");

    // Simulate the saved policy against a pasted input.
    c.goto(policy_url.as_str()).await.unwrap();
    set_value(
        &c,
        "#input",
        r#"{"client": {"addr": "203.0.113.9"}, "identity": {"name": "alice"}}"#,
    )
    .await;
    click_and_load(&c, "#simulate").await;
    let result = text(&c, "#sim-result").await;
    assert!(
        result.contains("block") && result.contains("not from the office"),
        "{result}"
    );
    shot(&c, "05-simulate").await;

    // Activate, with the confirmation ticked and the dialog accepted.
    c.find(Locator::Css("#state"))
        .await
        .unwrap()
        .select_by_value("active")
        .await
        .unwrap();
    click(&c, "#confirm-state").await;
    click(&c, "#change-state").await;
    c.accept_alert().await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(".badge-active"))
        .await
        .unwrap();
    let listed = api(&cp, &admin, "GET", "/api/v1/policies", None).await;
    assert_eq!(listed["policies"][0]["state"], "active", "{listed}");
    shot(&c, "06-policy-active").await;

    // Approve an access request someone else asked for.
    let body = json!({"subject": "bob", "resource_id": resource_id, "reason": "incident 42", "duration_seconds": 3600});
    let asked = api(
        &cp,
        &reader_key(&cp, &org).await,
        "POST",
        "/api/v1/access-requests",
        Some(body),
    )
    .await;
    c.goto(&format!("{base}/ui/access-requests")).await.unwrap();
    click_and_load(
        &c,
        &format!(
            "#req-{} form[action$='/approve'] button",
            asked["id"].as_str().unwrap()
        ),
    )
    .await;
    let left = text(&c, "[data-expires]").await;
    assert!(left.contains("left"), "the countdown runs: {left}");
    let request = api(
        &cp,
        &admin,
        "GET",
        &format!("/api/v1/access-requests/{}", asked["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(request["status"], "approved", "{request}");
    shot(&c, "07-access-approved").await;

    // Filter the audit log.
    let now = gate_proto::wire::rfc3339(gate_proto::wire::now_ms());
    let events = json!({"events": [
        {"id": "0190a0a0-0000-7000-8000-000000000001", "time": now, "identity": "alice", "resource": "pg-orders", "protocol": "postgres", "action": "block", "reason": "not from the office", "statement": "SELECT * FROM orders"},
        {"id": "0190a0a0-0000-7000-8000-000000000002", "time": now, "identity": "bob", "resource": "pg-orders", "protocol": "postgres", "action": "allow", "statement": "SELECT 1"},
    ]});
    api(&cp, &connector, "POST", "/api/v1/audit", Some(events)).await;
    c.goto(&format!("{base}/ui/audit")).await.unwrap();
    assert!(text(&c, "#audit-events").await.contains("bob"));
    fill(&c, "#identity", "alice").await;
    click_and_load(&c, "#apply-filters").await;
    let table = text(&c, "#audit-events").await;
    assert!(
        table.contains("alice") && table.contains("SELECT * FROM orders"),
        "{table}"
    );
    assert!(!table.contains("bob"), "{table}");
    let export = c
        .find(Locator::Css("#export"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(export.contains("identity=alice"), "{export}");
    shot(&c, "08-audit-filtered").await;

    // Replay a recorded SSH session in the page's player.
    let started = gate_proto::wire::now_ms();
    upload_cast(&cp, &org, "pg-orders", "alice", started, CAST.as_bytes()).await;
    c.goto(&format!("{base}/ui/recordings")).await.unwrap();
    click_and_load(&c, "a[href^='/ui/recordings/']").await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#player[data-state=ready]"))
        .await
        .unwrap();
    click(&c, "#play").await;
    let mut screen = String::new();
    for _ in 0..50 {
        screen = text(&c, "#screen").await;
        if screen.contains("hello from the recorded shell") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        screen.contains("echo hi\nhello from the recorded shell"),
        "{screen:?}"
    );
    assert!(
        !screen.contains("[32m"),
        "escape sequences are not shown: {screen:?}"
    );
    shot(&c, "09-recording-replay").await;

    // Phone width: nothing is wider than the screen.
    c.set_window_size(390, 844).await.unwrap();
    for path in ["/", "/ui/policies", "/ui/audit", "/ui/access-requests"] {
        c.goto(&format!("{base}{path}")).await.unwrap();
        let fits = c
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(fits, json!(true), "{path} is wider than a phone");
    }
    shot(&c, "10-phone-access").await;

    // Sign out.
    click_and_load(&c, "form.who button").await;
    assert!(c.current_url().await.unwrap().path().ends_with("/ui/login"));
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_through_the_oidc_provider_in_a_real_browser() {
    if !browser_installed() {
        return;
    }
    let (cp, _idp) = ui_support::oidc::start_cp_with_idp().await;
    let base = format!("http://{}", cp.addr());
    let driver = start_driver().await;
    let c = browser(&driver).await;

    c.goto(&format!("{base}/ui/audit")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/ui/login"));
    click_and_load(&c, "#oidc-login").await;
    // The provider's own sign-in page.
    assert_eq!(text(&c, "h1").await, "Test IdP");
    shot(&c, "11-oidc-provider").await;
    fill(&c, "#idp-login", "alice").await;
    fill(&c, "#idp-password", "any").await;
    click(&c, "#idp-submit").await;
    // Back at the UI, signed in with the role alice's groups map to, where she was going.
    let mut at = String::new();
    for _ in 0..150 {
        at = c.current_url().await.unwrap().path().to_owned();
        if at == "/ui/audit" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(at, "/ui/audit", "back at the page alice was going to");
    assert_eq!(text(&c, "h1").await, "Audit");
    let who = text(&c, "form.who span").await;
    assert!(
        who.contains("oidc:alice@example.test") && who.contains("admin"),
        "{who}"
    );
    shot(&c, "12-oidc-signed-in").await;
    c.close().await.unwrap();
}

/// A readonly key of `org`: who asks for access in this test (not the approving admin).
async fn reader_key(cp: &Cp, org: &str) -> String {
    cp.key(org, "readonly").await
}
