//! The hub calls only public destinations unless allowed otherwise: URLs naming loopback,
//! private, link-local (cloud metadata) or reserved addresses, in any form, are refused when
//! registered, and every name is checked again on the addresses it resolves to when the hub
//! connects. What failed is told in a few words, never with what the far side said.
//!
//! The test servers allow private destinations (their fakes listen on 127.0.0.1); these tests
//! restart theirs without.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::fixtures::{self, id};
use crate::helpers::{TestApp, json, problem};
use crate::on_both_backends;

on_both_backends!(
    private_destinations_are_refused_when_registered,
    names_resolving_to_private_addresses_are_refused_when_connecting,
    failures_are_told_without_what_the_far_side_said,
);

const SECRET: &str = "whsec_test_0123456789abcdef";

/// Every form of a destination inside the network that the hub must not call.
const PRIVATE: &[&str] = &[
    "http://127.0.0.1:9/hook",
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0177.0.0.1/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::1]:8080/",
    "http://[fc00::1]/",
    "http://[fe80::1]/",
    "http://0.0.0.0/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://localhost:9/hook",
];

async fn without_private_destinations(app: &mut TestApp) {
    app.restart_with(|settings| settings.allow_private_destinations = Some(false))
        .await;
}

fn refusal(problem: &Value) -> (String, String) {
    let error = &problem["errors"][0];
    (
        error["field"].as_str().unwrap().to_owned(),
        error["code"].as_str().unwrap().to_owned(),
    )
}

fn private(field: &str) -> (String, String) {
    (field.to_owned(), "private_destination".to_owned())
}

async fn private_destinations_are_refused_when_registered(mut app: TestApp) {
    without_private_destinations(&mut app).await;
    for url in PRIVATE {
        let body = json!({"url": url, "events": ["*"]});
        let refused = problem(app.post("/webhook-endpoints", &body).await, 422, "validation_failed").await;
        assert_eq!(refusal(&refused), private("url"), "{url}");
    }
    let public = json!({"url": "https://hooks.example.com/in", "events": ["product.*"]});
    let endpoint = json(app.post("/webhook-endpoints", &public).await, 201).await;
    let moved = json!({"url": "http://169.254.169.254/latest/meta-data/"});
    let refused = problem(
        app.patch(&format!("/webhook-endpoints/{}", id(&endpoint)), &moved)
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(refusal(&refused), private("url"));

    let telegram = json!({"kind": "telegram", "name": "Bot", "api_base_url": "http://[::1]:9000",
        "credentials": {"bot_token": "1:abc", "secret_token": "tg-secret_0123456789"}});
    let refused = problem(app.post("/inboxes", &telegram).await, 422, "validation_failed").await;
    assert_eq!(refusal(&refused), private("api_base_url"));
    let api = json!({"kind": "api", "name": "Channel",
        "credentials": {"webhook_url": "http://2130706433/replies", "secret": "api-channel-secret-0123456789"}});
    let refused = problem(app.post("/inboxes", &api).await, 422, "validation_failed").await;
    assert_eq!(refusal(&refused), private("credentials.webhook_url"));
    let email = json!({"kind": "email", "name": "Mail", "credentials": {"smtp_url": "smtps://u:p@[fd00::25]",
        "from_address": "shop@example.org", "inbound_secret": "relay-secret-0123456789"}});
    let refused = problem(app.post("/inboxes", &email).await, 422, "validation_failed").await;
    assert_eq!(refusal(&refused), private("credentials.smtp_url"));
}

/// A receiver on 127.0.0.1 that counts the calls it gets and answers with `status` and a body
/// that must never reach the hub's logs.
#[derive(Clone)]
struct Receiver {
    port: u16,
    calls: Arc<Mutex<usize>>,
}

const FAR_SIDE_SECRET: &str = "internal-admin-panel v1.2 at 10.0.0.7";

impl Receiver {
    async fn start(status: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            port: listener.local_addr().unwrap().port(),
            calls: Arc::default(),
        };
        let app = Router::new()
            .fallback(take)
            .with_state((receiver.calls.clone(), status));
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    fn calls(&self) -> usize {
        *self.calls.lock().unwrap()
    }
}

async fn take(State((calls, status)): State<(Arc<Mutex<usize>>, u16)>, _body: Bytes) -> (StatusCode, &'static str) {
    *calls.lock().unwrap() += 1;
    (StatusCode::from_u16(status).unwrap(), FAR_SIDE_SECRET)
}

/// The endpoint's first delivery once it was tried.
async fn first_attempt(app: &TestApp, endpoint: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let path = format!("/webhook-endpoints/{}/deliveries", id(endpoint));
        let page = json(app.get(&path).await, 200).await;
        if let Some(delivery) = page["data"].as_array().unwrap().first()
            && delivery["attempt_count"].as_i64() >= Some(1)
        {
            return delivery.clone();
        }
        assert!(Instant::now() < deadline, "never tried: {page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The attack: a name registered while it pointed somewhere harmless (here: while private
/// destinations were allowed) resolves to this machine when the hub connects, as with DNS
/// rebinding. `localhost` resolves to 127.0.0.1, where the receivers listen: the hub must not
/// connect, for webhooks, providers' APIs and SMTP alike.
async fn names_resolving_to_private_addresses_are_refused_when_connecting(mut app: TestApp) {
    let receiver = Receiver::start(200).await;
    let hook = json!({"url": format!("http://localhost:{}/hook", receiver.port), "events": ["product.*"],
                      "secret": SECRET});
    let endpoint = json(app.post("/webhook-endpoints", &hook).await, 201).await;
    let literal = json!({"url": format!("http://127.0.0.1:{}/hook", receiver.port), "events": ["product.*"]});
    let by_address = json(app.post("/webhook-endpoints", &literal).await, 201).await;
    let channel = json!({"kind": "api", "name": "Channel", "credentials": {
        "webhook_url": format!("http://localhost:{}/replies", receiver.port), "secret": "api-channel-secret-0123456789"}});
    let channel = json(app.post("/inboxes", &channel).await, 201).await;
    let smtp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mail = json!({"kind": "email", "name": "Mail", "credentials": {
        "smtp_url": format!("smtp://u:p@localhost:{}", smtp.local_addr().unwrap().port()),
        "from_address": "shop@example.org", "inbound_secret": "relay-secret-0123456789"}});
    let mail = json(app.post("/inboxes", &mail).await, 201).await;

    without_private_destinations(&mut app).await;
    fixtures::product(&app, "Shirt", &["SH-1"], 1000).await;
    for endpoint in [&endpoint, &by_address] {
        let delivery = first_attempt(&app, endpoint).await;
        assert_eq!(delivery["last_error"], "destination not allowed", "{delivery}");
    }

    let written = json!({"contact": {"external_id": "u-1"}, "text": "Hello"});
    let stored = json(
        app.post(&format!("/inboxes/{}/messages", id(&channel)), &written).await,
        201,
    )
    .await;
    let reply = json!({"text": "Hi!"});
    let path = format!(
        "/conversations/{}/messages",
        stored["conversation_id"].as_str().unwrap()
    );
    let sent = json(app.post(&path, &reply).await, 201).await;
    assert_eq!(
        (sent["status"].as_str(), sent["error"].as_str()),
        (Some("failed"), Some("destination not allowed"))
    );
    assert_eq!(receiver.calls(), 0, "nothing reached the receiver");

    let raw = "From: ann@example.com\r\nTo: shop@example.org\r\nMessage-ID: <1@example.com>\r\n\r\nHello\r\n";
    let relayed = app
        .client
        .post(format!("{}/hooks/{}", app.base, id(&mail)))
        .bearer_auth("relay-secret-0123456789")
        .body(raw)
        .send()
        .await
        .unwrap();
    json(relayed, 200).await;
    let list = json(app.get(&format!("/conversations?inbox_id={}", id(&mail))).await, 200).await;
    let path = format!("/conversations/{}/messages", id(&list["data"][0]));
    let sent = json(app.post(&path, &reply).await, 201).await;
    assert_eq!(sent["error"], "destination not allowed", "{sent}");
    let nobody = tokio::time::timeout(Duration::from_millis(200), smtp.accept()).await;
    assert!(nobody.is_err(), "the SMTP server was never connected to");
}

/// A receiver's answer and the errors on the way are logged in a few words: the delivery log
/// is no window into what answers inside the network.
async fn failures_are_told_without_what_the_far_side_said(app: TestApp) {
    let failing = Receiver::start(500).await;
    let hook = json!({"url": format!("http://127.0.0.1:{}/hook", failing.port), "events": ["product.*"]});
    let endpoint = json(app.post("/webhook-endpoints", &hook).await, 201).await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let nowhere = json!({"url": format!("http://127.0.0.1:{closed_port}/hook"), "events": ["product.*"]});
    let nowhere = json(app.post("/webhook-endpoints", &nowhere).await, 201).await;
    fixtures::product(&app, "Shirt", &["SH-1"], 1000).await;

    let answered = first_attempt(&app, &endpoint).await;
    assert_eq!(answered["last_error"], "answered 500", "{answered}");
    let refused = first_attempt(&app, &nowhere).await;
    assert_eq!(refused["last_error"], "connection refused", "{refused}");
    for delivery in [&answered, &refused] {
        let text = delivery.to_string();
        assert!(!text.contains(FAR_SIDE_SECRET) && !text.contains("127.0.0.1"), "{text}");
    }
}
