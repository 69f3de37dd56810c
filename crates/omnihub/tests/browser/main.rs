//! End-to-end tests of the admin app in headless Chromium, driven over WebDriver
//! (chromedriver) against the real server with the demo shop: what a person sees and does.
//!
//! Without `chromedriver` on the PATH the tests say they were skipped; in CI (`CI` set) they
//! fail instead. With `OMNIHUB_SCREENSHOTS=1` they also save screenshots of the main pages to
//! `docs/screenshots/`.

#[path = "../api/fake_provider.rs"]
#[allow(dead_code)] // The browser suite looks only at what a provider was sent.
mod fake_provider;
#[path = "../common/scratch.rs"]
#[allow(dead_code)] // Only the API suite runs several nodes on one database.
mod scratch;
#[path = "../admin/shop.rs"]
#[allow(dead_code)] // The browser suite uses only part of the shared test shop.
mod shop;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use omnihub_domain::orders::Status;
use omnihub_domain::users::Role;
use serde_json::{Value, json};

use crate::fake_provider::{ANN_WA_ID, Fake, whatsapp_accepted};
use crate::shop::Shop;

/// A running chromedriver, stopped (by its own process id) when dropped.
struct Driver {
    process: Child,
    url: String,
    profiles: Vec<PathBuf>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        for profile in &self.profiles {
            let _ = std::fs::remove_dir_all(profile);
        }
    }
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

/// chromedriver on a free port, or `None` (skipped) when it is not installed outside CI.
async fn driver() -> Option<Driver> {
    let Some(program) = on_path("chromedriver") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromedriver must be installed in CI (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: chromedriver is not installed (apt-get install chromium chromium-driver)");
        return None;
    };
    // reqwest asks for the tree's one TLS provider even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let process = Command::new(program)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while reqwest::get(format!("{url}/status")).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "chromedriver answers");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(Driver {
        process,
        url,
        profiles: Vec::new(),
    })
}

impl Driver {
    /// A fresh headless Chromium with its own profile, at a window size.
    async fn browser(&mut self, width: u32, height: u32) -> Client {
        let profile = std::env::temp_dir().join(format!("omnihub-chromium-{}", ulid::Ulid::new()));
        self.profiles.push(profile.clone());
        let mut options = json!({
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", format!("--user-data-dir={}", profile.display()),
                format!("--window-size={width},{height}"),
            ]
        });
        if let Some(chromium) = on_path("chromium") {
            options["binary"] = json!(chromium);
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("Chromium starts");
        client.set_window_size(width, height).await.expect("window size");
        client
    }
}

const LAPTOP: (u32, u32) = (1280, 900);
const TABLET: (u32, u32) = (820, 1180);

async fn find(client: &Client, css: &str) -> Element {
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} appears: {e}"))
}

async fn text_of(client: &Client, css: &str) -> String {
    find(client, css).await.text().await.expect("text")
}

async fn sign_in(shop: &Shop, client: &Client, role: Role) {
    let (email, password) = shop.login(role);
    client
        .goto(&format!("{}/admin/login", shop.base))
        .await
        .expect("the sign-in page");
    find(client, "#email").await.send_keys(email).await.expect("e-mail");
    find(client, "#password")
        .await
        .send_keys(password)
        .await
        .expect("password");
    find(client, "form button[type=submit]")
        .await
        .click()
        .await
        .expect("sign in");
    find(client, "header nav").await;
}

async fn visit(shop: &Shop, client: &Client, path: &str) {
    client
        .goto(&format!("{}{path}", shop.base))
        .await
        .expect("the page opens");
    find(client, "main h1").await;
}

/// Waits until the page's text contains `text`.
async fn wait_for_text(client: &Client, text: &str) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        if client.source().await.is_ok_and(|s| s.contains(text)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Saves a screenshot to `docs/screenshots/<name>.png` when asked to (`OMNIHUB_SCREENSHOTS`).
async fn screenshot(client: &Client, name: &str) {
    if std::env::var_os("OMNIHUB_SCREENSHOTS").is_none() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot folder");
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("the screenshot is saved");
}

async fn nav_labels(client: &Client) -> Vec<String> {
    let mut labels = Vec::new();
    for link in client.find_all(Locator::Css("header nav a")).await.expect("links") {
        labels.push(link.text().await.expect("label"));
    }
    labels
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_sees_only_what_it_may() {
    let Some(mut driver) = driver().await else { return };
    let shop = Shop::start(false).await.expect("the demo shop");
    let everything = [
        "Dashboard",
        "Inbox",
        "Orders",
        "Pick-up desk",
        "Inventory",
        "Catalog",
        "Customers",
        "Settings",
    ];
    let roles: [(Role, &[&str], &str); 4] = [
        (Role::Owner, &everything, "/admin/settings"),
        (Role::Manager, &everything, "/admin/settings"),
        (Role::Agent, &["Inbox", "Orders", "Customers"], "/admin/inventory"),
        (Role::StoreStaff, &["Pick-up desk", "Inventory"], "/admin/orders"),
    ];
    for (role, expected, probe) in roles {
        let client = driver.browser(LAPTOP.0, LAPTOP.1).await;
        sign_in(&shop, &client, role).await;
        assert_eq!(nav_labels(&client).await, expected, "{role:?}'s navigation");
        client.goto(&format!("{}{probe}", shop.base)).await.expect("probe");
        let heading = text_of(&client, "h1").await;
        match role {
            Role::Agent | Role::StoreStaff => assert_eq!(heading, "Not for your role", "{role:?} at {probe}"),
            Role::Owner => {
                assert_eq!(heading, "Settings");
                assert!(client.source().await.expect("page").contains("New account"));
            }
            Role::Manager => {
                assert_eq!(heading, "Settings");
                assert!(
                    !client.source().await.expect("page").contains("New account"),
                    "no accounts for managers"
                );
            }
        }
        client.close().await.expect("closes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_staff_collect_a_pickup_at_the_desk() {
    let Some(mut driver) = driver().await else { return };
    let shop = Shop::start(false).await.expect("the demo shop");
    let client = driver.browser(TABLET.0, TABLET.1).await;
    sign_in(&shop, &client, Role::StoreStaff).await;
    assert_eq!(
        text_of(&client, "h1").await,
        "Pick-up desk",
        "store staff start at their desk"
    );
    assert!(text_of(&client, "main").await.contains("Berlin Mitte Store"));
    screenshot(&client, "desk-tablet").await;

    // The customer says their number; staff type it (or scan it) and hand the order over.
    find(&client, "#desk-number")
        .await
        .send_keys("1001")
        .await
        .expect("number");
    find(&client, "form[role=search] button")
        .await
        .click()
        .await
        .expect("find");
    let card = "#found-title ~ article";
    assert!(text_of(&client, card).await.contains("OH-103-S"));
    let hand_over = find(&client, &format!("{card} form[action$='/collect'] button")).await;
    assert_eq!(hand_over.text().await.expect("label"), "Hand over to the customer");
    hand_over.click().await.expect("hand over");
    assert_eq!(text_of(&client, ".notice").await, "Handed over to the customer.");
    let waiting = text_of(&client, "#waiting").await;
    assert!(!waiting.contains("#1001"), "no longer waiting: {waiting}");
    let order = shop.store().order_by_number("#1001").await.expect("order");
    assert_eq!(order.status, Status::Completed);
    client.close().await.expect("closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_adjusts_stock_and_sees_the_channel_availability_change() {
    let Some(mut driver) = driver().await else { return };
    let shop = Shop::start(false).await.expect("the demo shop");
    let client = driver.browser(LAPTOP.0, LAPTOP.1).await;
    sign_in(&shop, &client, Role::Manager).await;
    visit(&shop, &client, "/admin/inventory?sku=OH-113-BLACK").await;
    let marketplace = "td[data-channel='Marketplace']";
    let before: i64 = text_of(&client, marketplace).await.parse().expect("a number");
    screenshot(&client, "inventory").await;

    find(&client, "#a-delta").await.send_keys("20").await.expect("delta");
    find(&client, "#a-reference")
        .await
        .send_keys("delivery 4711")
        .await
        .expect("reference");
    let warehouse = find(&client, "#a-location").await;
    warehouse
        .select_by_label("Central Warehouse")
        .await
        .expect("the warehouse");
    find(&client, "form[action='/admin/inventory/adjust'] button")
        .await
        .click()
        .await
        .expect("adjust");
    assert_eq!(text_of(&client, ".notice").await, "Stock adjusted.");
    let after: i64 = text_of(&client, marketplace).await.parse().expect("a number");
    // The marketplace sells from the warehouse, less its buffer of 1 unit and 10 %.
    assert!(after > before && after < before + 20, "{before} → {after}");
    assert!(text_of(&client, "#movements").await.contains("delivery 4711"));
    client.close().await.expect("closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_order_appears_on_the_open_orders_page_without_reload() {
    let Some(mut driver) = driver().await else { return };
    let shop = Shop::start(false).await.expect("the demo shop");
    let client = driver.browser(LAPTOP.0, LAPTOP.1).await;
    sign_in(&shop, &client, Role::Manager).await;
    visit(&shop, &client, "/admin/orders?status=open").await;
    // A mark on this very page: a reload would wipe it.
    client
        .execute("window.stillTheSamePage = true; return true;", Vec::new())
        .await
        .expect("script runs");
    // Give the page's live stream a moment to connect.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let order = shop.order_from_the_app("browser-live-1").await;
    let number = order["number"].as_str().expect("a number").to_owned();
    assert!(wait_for_text(&client, &number).await, "{number} shows up by itself");
    let same: Value = client
        .execute("return window.stillTheSamePage === true;", Vec::new())
        .await
        .expect("script runs");
    assert_eq!(same, json!(true), "the page was not reloaded");
    screenshot(&client, "orders").await;
    client.close().await.expect("closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_main_pages_as_a_person_sees_them() {
    let Some(mut driver) = driver().await else { return };
    let shop = Shop::start(false).await.expect("the demo shop");
    let client = driver.browser(LAPTOP.0, LAPTOP.1).await;
    client
        .goto(&format!("{}/admin/login", shop.base))
        .await
        .expect("sign-in page");
    find(&client, "#email").await;
    screenshot(&client, "login").await;
    sign_in(&shop, &client, Role::Owner).await;
    assert_eq!(text_of(&client, "h1").await, "Dashboard");
    let chart = find(&client, "figure.chart svg").await;
    assert_eq!(chart.attr("role").await.expect("attr").as_deref(), Some("img"));
    screenshot(&client, "dashboard").await;
    let order = shop.store().order_by_number("#1002").await.expect("order");
    let pages = [
        (format!("/admin/orders/{}", order.id), "Order #1002", "order"),
        ("/admin/catalog".to_owned(), "Catalog", "catalog"),
        (
            format!("/admin/customers/{}", order.customer_id.clone().expect("customer")),
            "",
            "customer",
        ),
        ("/admin/settings".to_owned(), "Settings", "settings"),
    ];
    for (path, heading, name) in pages {
        visit(&shop, &client, &path).await;
        if !heading.is_empty() {
            assert_eq!(text_of(&client, "h1").await, heading);
        }
        screenshot(&client, name).await;
    }
    // Keyboard first: the first Tab reaches the skip link, which leads to the content.
    client
        .active_element()
        .await
        .expect("focus")
        .send_keys("\u{e004}")
        .await
        .expect("tab");
    let focused = client.active_element().await.expect("focus");
    assert_eq!(focused.text().await.expect("text"), "Skip to content");
    client.close().await.expect("closes");
}

/// A fake WhatsApp API, the shop's inbox on it, and Ann's first message; answers the inbox's
/// id, the fake and the conversation's id.
async fn ann_on_whatsapp(shop: &Shop) -> (String, Fake, String) {
    let fake = Fake::start(whatsapp_accepted("wamid.OUT1")).await;
    let inbox = shop.whatsapp_inbox(&fake.base).await;
    shop.whatsapp_message(&inbox, "wamid.IN1", "Is the blue one in stock?")
        .await;
    let conversation = shop.conversation_in(&inbox).await.id;
    (inbox, fake, conversation)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_answers_on_whatsapp_from_the_inbox() {
    let Some(mut driver) = driver().await else { return };
    let shop = Shop::start(false).await.expect("the demo shop");
    let (_, fake, conversation) = ann_on_whatsapp(&shop).await;
    let client = driver.browser(LAPTOP.0, LAPTOP.1).await;
    sign_in(&shop, &client, Role::Agent).await;
    find(&client, "header nav a[href='/admin/inbox']")
        .await
        .click()
        .await
        .expect("the inbox");
    find(&client, &format!(".conversation-list a[href*='{conversation}']"))
        .await
        .click()
        .await
        .expect("the conversation");
    assert!(
        text_of(&client, "#thread-messages")
            .await
            .contains("Is the blue one in stock?")
    );
    find(&client, "#reply-text")
        .await
        .send_keys("Yes, the blue one is in stock.")
        .await
        .expect("typing");
    find(&client, "form[action*='/reply'] button[type=submit]")
        .await
        .click()
        .await
        .expect("send");
    assert_eq!(text_of(&client, ".notice").await, "Reply sent.");
    assert!(
        text_of(&client, "#thread-messages")
            .await
            .contains("Yes, the blue one is in stock.")
    );
    let call = fake.last();
    assert_eq!(call.body["to"], ANN_WA_ID);
    assert_eq!(call.body["text"]["body"], "Yes, the blue one is in stock.");
    screenshot(&client, "inbox").await;
    client.close().await.expect("closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_whatsapp_message_appears_in_the_open_thread_without_reload() {
    let Some(mut driver) = driver().await else { return };
    let shop = Shop::start(false).await.expect("the demo shop");
    let (inbox, _fake, conversation) = ann_on_whatsapp(&shop).await;
    let client = driver.browser(LAPTOP.0, LAPTOP.1).await;
    sign_in(&shop, &client, Role::Agent).await;
    visit(&shop, &client, &format!("/admin/inbox?c={conversation}")).await;
    // Half a reply typed, and a mark on this very page: neither may be lost.
    find(&client, "#reply-text")
        .await
        .send_keys("Let me check")
        .await
        .expect("typing");
    client
        .execute("window.stillTheSamePage = true; return true;", Vec::new())
        .await
        .expect("script runs");
    // Give the page's live stream a moment to connect.
    tokio::time::sleep(Duration::from_millis(700)).await;
    shop.whatsapp_message(&inbox, "wamid.IN2", "Size 38, please").await;
    let started = Instant::now();
    while !text_of(&client, "#thread-messages").await.contains("Size 38, please") {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the message shows up by itself"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let same: Value = client
        .execute("return window.stillTheSamePage === true;", Vec::new())
        .await
        .expect("script runs");
    assert_eq!(same, json!(true), "the page was not reloaded");
    let typed = find(&client, "#reply-text").await.prop("value").await.expect("value");
    assert_eq!(typed.as_deref(), Some("Let me check"), "the reply being typed stays");
    client.close().await.expect("closes");
}
