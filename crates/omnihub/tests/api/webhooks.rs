//! Webhooks against a real receiver on this machine: signed, retried, logged, replayed,
//! paused, surviving a restart, and sent once with two server processes. And NATS: events
//! reach the JetStream stream and the other nodes' live streams at once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use futures_util::StreamExt;
use omnihub_domain::Timestamp;
use omnihub_domain::webhooks::{SignatureError, verify};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::fixtures::{self, id};
use crate::helpers::{OWNER_KEY, TestApp, json, problem};
use crate::on_both_backends;

on_both_backends!(
    deliveries_are_signed_and_logged,
    endpoints_are_checked_and_need_the_admin_scope,
    failures_are_retried_until_accepted_and_never_sent_again,
    a_receiver_that_does_not_answer_in_time_is_retried,
    a_day_of_failures_marks_the_delivery_failed,
    replay_delivers_again_from_an_event,
    paused_endpoints_get_nothing_until_resumed,
    deleted_endpoints_get_nothing_more,
    deleting_an_endpoint_while_its_deliveries_run_never_fails,
    signing_secrets_are_sealed_at_rest_and_plain_ones_still_sign,
    a_restart_mid_retry_loses_no_delivery,
    two_nodes_send_each_delivery_once,
    nats_carries_events_to_the_stream_and_other_nodes,
    a_lapsed_reservation_expires_once_with_two_nodes,
    stopping_a_node_mid_load_loses_no_answered_write,
);

const SECRET: &str = "whsec_test_0123456789abcdef";

// ───────────────────────────── a receiver ─────────────────────────────

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Status(u16),
    /// Answers 200, but only after this long.
    Hang(Duration),
}

#[derive(Debug, Clone)]
struct Received {
    signature: String,
    event_id: String,
    event_type: String,
    content_type: String,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Inbox {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Answer>>,
}

/// A merchant's webhook receiver on 127.0.0.1: records every request, answers as scripted,
/// then 200.
struct Receiver {
    url: String,
    inbox: Arc<Inbox>,
}

impl Receiver {
    async fn start(script: &[Answer]) -> Receiver {
        let inbox = Arc::new(Inbox::default());
        inbox.script.lock().unwrap().extend(script.iter().copied());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/omnihub", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/hooks/omnihub", axum::routing::post(take))
            .with_state(inbox.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, inbox }
    }

    fn received(&self) -> Vec<Received> {
        self.inbox.received.lock().unwrap().clone()
    }

    /// Waits until `count` requests have come.
    async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} deliveries, got {}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What has come after long enough for any stray delivery to come too.
    async fn settled(&self) -> Vec<Received> {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        self.received()
    }
}

async fn take(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    inbox.received.lock().unwrap().push(Received {
        signature: header("omnihub-signature"),
        event_id: header("omnihub-event-id"),
        event_type: header("omnihub-event-type"),
        content_type: header("content-type"),
        body: body.to_vec(),
    });
    let answer = inbox.script.lock().unwrap().pop_front();
    match answer {
        Some(Answer::Status(code)) => StatusCode::from_u16(code).unwrap(),
        Some(Answer::Hang(pause)) => {
            tokio::time::sleep(pause).await;
            StatusCode::OK
        }
        None => StatusCode::OK,
    }
}

// ───────────────────────────── helpers ─────────────────────────────

async fn register(app: &TestApp, url: &str, events: &[&str]) -> Value {
    let body = json!({"url": url, "events": events, "secret": SECRET});
    json(app.post("/webhook-endpoints", &body).await, 201).await
}

/// The endpoint's deliveries, newest first, once `attempts` attempts in all are recorded.
async fn deliveries_after(app: &TestApp, endpoint: &Value, attempts: i64) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let page = json(
            app.get(&format!("/webhook-endpoints/{}/deliveries", id(endpoint)))
                .await,
            200,
        )
        .await;
        let deliveries = page["data"].as_array().unwrap().clone();
        let made: i64 = deliveries.iter().map(|d| d["attempt_count"].as_i64().unwrap()).sum();
        if made >= attempts {
            return deliveries;
        }
        assert!(Instant::now() < deadline, "expected {attempts} attempts: {page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn at(value: &Value) -> Timestamp {
    Timestamp::parse(value.as_str().expect("a time")).expect("RFC 3339")
}

fn unix_now(app: &TestApp) -> i64 {
    use omnihub_domain::Clock;
    app.clock.now().millis() / 1000
}

/// The next attempt is `seconds` after now, give or take the 10 % jitter.
fn assert_retry_in(app: &TestApp, delivery: &Value, seconds: i64) {
    use omnihub_domain::Clock;
    let wait = at(&delivery["next_attempt_at"]).millis() - app.clock.now().millis();
    let (low, high) = (seconds * 900, seconds * 1100);
    assert!(
        (low..=high).contains(&wait),
        "retry in {wait} ms, expected about {seconds} s: {delivery}"
    );
}

fn statuses(delivery: &Value) -> Vec<Value> {
    delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].clone())
        .collect()
}

// ───────────────────────────── webhooks ─────────────────────────────

async fn deliveries_are_signed_and_logged(app: TestApp) {
    let receiver = Receiver::start(&[]).await;
    let endpoint = register(&app, &receiver.url, &["product.*"]).await;
    assert!(endpoint["id"].as_str().unwrap().starts_with("whe_"));
    assert_eq!(endpoint["secret"], SECRET);
    assert_eq!(endpoint["status"], "active");
    fixtures::location(&app, "Store", "store").await;
    let shirt = fixtures::product(&app, "Shirt", &["SH-1"], 1000).await;

    let received = receiver.wait_for(1).await;
    let delivery = &received[0];
    let now = unix_now(&app);
    assert_eq!(verify(&delivery.signature, &delivery.body, SECRET, now, 300), Ok(()));
    assert_eq!(
        verify(&delivery.signature, &delivery.body, SECRET, now + 301, 300),
        Err(SignatureError::OutsideTolerance)
    );
    assert_eq!(
        verify(&delivery.signature, b"{}", SECRET, now, 300),
        Err(SignatureError::Mismatch)
    );
    let event = delivery.json();
    assert_eq!(event["type"], "product.created");
    assert_eq!(event["data"]["id"], shirt["id"]);
    assert!(event["seq"].as_i64().unwrap() > 0);
    assert!(event["occurred_at"].is_string());
    assert_eq!(delivery.event_id, event["id"].as_str().unwrap());
    assert_eq!(delivery.event_type, "product.created");
    assert_eq!(delivery.content_type, "application/json");

    let log = deliveries_after(&app, &endpoint, 1).await;
    assert_eq!(log.len(), 1, "location.created is not wanted: {log:?}");
    assert_eq!(log[0]["status"], "succeeded");
    assert_eq!(log[0]["event_id"], event["id"]);
    assert_eq!(log[0]["last_status_code"], 200);
    assert!(log[0]["response_time_ms"].as_i64().unwrap() >= 0);
    assert!(log[0]["next_attempt_at"].is_null());
    assert_eq!(statuses(&log[0]), [json!(200)]);

    let read = json(app.get(&format!("/webhook-endpoints/{}", id(&endpoint))).await, 200).await;
    assert!(read.get("secret").is_none(), "the secret is shown once: {read}");
    assert!(read["last_event_seq"].as_i64().unwrap() >= event["seq"].as_i64().unwrap());
    let all = json(app.get("/webhook-endpoints").await, 200).await;
    assert_eq!(all["data"][0]["id"], endpoint["id"]);
    assert!(all["data"][0].get("secret").is_none());
}

async fn endpoints_are_checked_and_need_the_admin_scope(app: TestApp) {
    let made = json(
        app.post(
            "/webhook-endpoints",
            &json!({"url": "https://erp.example/omnihub", "events": ["*"]}),
        )
        .await,
        201,
    )
    .await;
    assert!(made["secret"].as_str().unwrap().starts_with("whsec_"));

    let bad = problem(
        app.post(
            "/webhook-endpoints",
            &json!({"url": "ftp://erp.example", "events": [], "secret": "short"}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["url", "events", "secret"]);
    problem(
        app.post(
            "/webhook-endpoints",
            &json!({"url": "https://x.example", "events": ["Order Placed"]}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let unknown = problem(
        app.post(
            "/webhook-endpoints",
            &json!({"url": "https://x.example", "events": ["order.*", "nonsense", "orders.*"]}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let fields: Vec<(&str, &str)> = unknown["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(fields, [("events[1]", "unknown"), ("events[2]", "unknown")]);
    let repeated = json!({"url": "https://y.example", "events": ["order.placed", "order.*", "order.placed"]});
    let repeated = json(app.post("/webhook-endpoints", &repeated).await, 201).await;
    assert_eq!(repeated["events"], json!(["order.placed", "order.*"]));
    let path = format!("/webhook-endpoints/{}", id(&repeated));
    let patched = json(app.patch(&path, &json!({"events": ["*", "*"]})).await, 200).await;
    assert_eq!(patched["events"], json!(["*"]));
    problem(
        app.patch(&path, &json!({"events": ["cart.exploded"]})).await,
        422,
        "validation_failed",
    )
    .await;
    problem(
        app.patch(&format!("/webhook-endpoints/{}", id(&made)), &json!({"status": "gone"}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    problem(
        app.patch(&format!("/webhook-endpoints/{}", id(&made)), &json!({"secret": SECRET}))
            .await,
        422,
        "validation_failed",
    )
    .await;
    let stale = app
        .request(Method::PATCH, &format!("/webhook-endpoints/{}", id(&made)))
        .header("if-match", "7")
        .json(&json!({"events": ["order.*"]}))
        .send()
        .await
        .unwrap();
    problem(stale, 412, "version_mismatch").await;
    problem(app.get("/webhook-endpoints/whe_nothing").await, 404, "not_found").await;
    problem(
        app.get("/webhook-endpoints/whe_nothing/deliveries").await,
        404,
        "not_found",
    )
    .await;

    let catalog_key = app.key_with(&["catalog:write", "events:read"]).await;
    let refused = app
        .client
        .get(format!("{}/api/v1/webhook-endpoints", app.base))
        .bearer_auth(catalog_key)
        .send()
        .await
        .unwrap();
    problem(refused, 403, "forbidden").await;
}

async fn failures_are_retried_until_accepted_and_never_sent_again(app: TestApp) {
    let receiver = Receiver::start(&[Answer::Status(500), Answer::Status(503)]).await;
    let endpoint = register(&app, &receiver.url, &["product.created"]).await;
    fixtures::product(&app, "Shirt", &["SH-1"], 1000).await;

    receiver.wait_for(1).await;
    let log = deliveries_after(&app, &endpoint, 1).await;
    assert_eq!(log[0]["status"], "pending");
    assert_eq!(log[0]["last_status_code"], 500);
    assert!(log[0]["last_error"].as_str().unwrap().contains("500"));
    assert_retry_in(&app, &log[0], 1);

    app.clock.advance_seconds(2);
    receiver.wait_for(2).await;
    let log = deliveries_after(&app, &endpoint, 2).await;
    assert_eq!(log[0]["status"], "pending");
    assert_retry_in(&app, &log[0], 5);

    app.clock.advance_seconds(6);
    receiver.wait_for(3).await;
    let log = deliveries_after(&app, &endpoint, 3).await;
    assert_eq!(log[0]["status"], "succeeded");
    assert_eq!(log[0]["attempt_count"], 3);
    assert_eq!(statuses(&log[0]), [json!(500), json!(503), json!(200)]);
    assert!(log[0]["next_attempt_at"].is_null());

    app.clock.advance_seconds(2 * 3600);
    let received = receiver.settled().await;
    assert_eq!(received.len(), 3, "nothing more after success");
    assert!(received.iter().all(|r| r.event_id == received[0].event_id));
}

async fn a_receiver_that_does_not_answer_in_time_is_retried(mut app: TestApp) {
    app.restart_with(|settings| settings.webhook_timeout_ms = Some(300))
        .await;
    let receiver = Receiver::start(&[Answer::Hang(Duration::from_secs(2))]).await;
    let endpoint = register(&app, &receiver.url, &["product.*"]).await;
    fixtures::product(&app, "Shirt", &["SH-1"], 1000).await;

    let log = deliveries_after(&app, &endpoint, 1).await;
    assert_eq!(log[0]["status"], "pending");
    assert!(log[0]["last_status_code"].is_null());
    assert!(
        log[0]["last_error"].as_str().unwrap().contains("timed out"),
        "{}",
        log[0]
    );
    assert!(log[0]["response_time_ms"].as_i64().unwrap() < 2000);
    assert_retry_in(&app, &log[0], 1);

    app.clock.advance_seconds(2);
    receiver.wait_for(2).await;
    let log = deliveries_after(&app, &endpoint, 2).await;
    assert_eq!(log[0]["status"], "succeeded");
    assert_eq!(statuses(&log[0]), [Value::Null, json!(200)]);
}

async fn a_day_of_failures_marks_the_delivery_failed(app: TestApp) {
    let receiver = Receiver::start(&[Answer::Status(500); 5]).await;
    let endpoint = register(&app, &receiver.url, &["product.*"]).await;
    fixtures::product(&app, "Shirt", &["SH-1"], 1000).await;
    deliveries_after(&app, &endpoint, 1).await;

    app.clock.advance_seconds(25 * 3600);
    let log = deliveries_after(&app, &endpoint, 2).await;
    assert_eq!(log[0]["status"], "failed");
    assert!(log[0]["next_attempt_at"].is_null());
    assert_eq!(statuses(&log[0]), [json!(500), json!(500)]);

    app.clock.advance_seconds(3600);
    assert_eq!(
        receiver.settled().await.len(),
        2,
        "a failed delivery is not tried again"
    );
}

async fn replay_delivers_again_from_an_event(app: TestApp) {
    let receiver = Receiver::start(&[]).await;
    let endpoint = register(&app, &receiver.url, &["product.*"]).await;
    for n in 1..=3 {
        fixtures::product(&app, &format!("Shirt {n}"), &[&format!("SH-{n}")], 1000).await;
    }
    // Deliveries go out side by side, so they may come in any order.
    let mut first: Vec<(i64, String)> = receiver
        .wait_for(3)
        .await
        .iter()
        .map(|r| (r.json()["seq"].as_i64().unwrap(), r.event_id.clone()))
        .collect();
    first.sort();
    deliveries_after(&app, &endpoint, 3).await;
    let from_seq = first[1].0;

    let replayed = json(
        app.post(
            &format!("/webhook-endpoints/{}/replay", id(&endpoint)),
            &json!({"from_seq": from_seq}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(replayed["last_event_seq"], from_seq - 1);

    let mut again: Vec<String> = receiver.wait_for(5).await[3..]
        .iter()
        .map(|r| r.event_id.clone())
        .collect();
    again.sort();
    let mut expected = vec![first[1].1.clone(), first[2].1.clone()];
    expected.sort();
    assert_eq!(again, expected, "the same events again, with the same ids");
    let log = deliveries_after(&app, &endpoint, 5).await;
    assert_eq!(log.len(), 5);
    assert_eq!(log[0]["replay"], 1);
    assert_eq!(log[4]["replay"], 0);
    assert!(log.iter().all(|d| d["status"] == "succeeded"));
    assert_eq!(receiver.settled().await.len(), 5);

    problem(
        app.post(
            &format!("/webhook-endpoints/{}/replay", id(&endpoint)),
            &json!({"from_seq": 0}),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    problem(
        app.post("/webhook-endpoints/whe_nothing/replay", &json!({"from_seq": 1}))
            .await,
        404,
        "not_found",
    )
    .await;
}

async fn paused_endpoints_get_nothing_until_resumed(app: TestApp) {
    let receiver = Receiver::start(&[]).await;
    let endpoint = register(&app, &receiver.url, &["product.created"]).await;
    let path = format!("/webhook-endpoints/{}", id(&endpoint));
    let paused = json(app.patch(&path, &json!({"status": "paused"})).await, 200).await;
    assert_eq!(paused["status"], "paused");
    assert_eq!(paused["version"], 2);

    let shirt = fixtures::product(&app, "Shirt", &["SH-1"], 1000).await;
    assert!(receiver.settled().await.is_empty(), "a paused endpoint gets nothing");
    assert!(deliveries_after(&app, &endpoint, 0).await.is_empty());

    json(app.patch(&path, &json!({"status": "active"})).await, 200).await;
    let received = receiver.wait_for(1).await;
    assert_eq!(received[0].json()["data"]["id"], shirt["id"]);
    assert_eq!(receiver.settled().await.len(), 1);
}

async fn deleted_endpoints_get_nothing_more(app: TestApp) {
    let receiver = Receiver::start(&[Answer::Status(500)]).await;
    let endpoint = register(&app, &receiver.url, &["product.*"]).await;
    fixtures::product(&app, "Shirt", &["SH-1"], 1000).await;
    assert_eq!(deliveries_after(&app, &endpoint, 1).await[0]["status"], "pending");
    let path = format!("/webhook-endpoints/{}", id(&endpoint));
    let reader = app.key_with(&["catalog:write"]).await;
    let refused = app
        .client
        .delete(format!("{}/api/v1{path}", app.base))
        .bearer_auth(reader);
    problem(refused.send().await.unwrap(), 403, "forbidden").await;

    let deleted = app.delete(&path).await;
    assert_eq!(deleted.status().as_u16(), 204);
    problem(app.get(&path).await, 404, "not_found").await;
    problem(app.get(&format!("{path}/deliveries")).await, 404, "not_found").await;
    let again = app.delete(&path).await;
    problem(again, 404, "not_found").await;

    app.clock.advance_seconds(2);
    fixtures::product(&app, "Socks", &["SO-1"], 500).await;
    assert_eq!(receiver.settled().await.len(), 1, "no retry and nothing new");
}

/// The race: an endpoint deleted while the worker fans events out to it and records its
/// attempts. Whatever the interleaving, the delete answers 204 and nothing is left behind.
async fn deleting_an_endpoint_while_its_deliveries_run_never_fails(app: TestApp) {
    // Every answer a little late, so that attempts are being recorded as the delete runs.
    let script = [Answer::Hang(Duration::from_millis(5)); 200];
    let receiver = Receiver::start(&script).await;
    for round in 0..8 {
        let endpoint = register(&app, &receiver.url, &["product.*"]).await;
        let before = receiver.received().len();
        for n in 0..3 {
            let sku = format!("R{round}-{n}");
            fixtures::product(&app, "Shirt", &[sku.as_str()], 1000).await;
        }
        receiver.wait_for(before + 1).await;
        let path = format!("/webhook-endpoints/{}", id(&endpoint));
        let deleted = app.delete(&path).await;
        let status = deleted.status().as_u16();
        assert_eq!(status, 204, "round {round}: {}", deleted.text().await.unwrap());
        problem(app.get(&format!("{path}/deliveries")).await, 404, "not_found").await;
    }
}

/// The secret column of an endpoint, as the database holds it: no API shows it.
async fn stored_secret(app: &TestApp, endpoint: &Value) -> String {
    let query = omnihub_store::db::sql("SELECT secret FROM webhook_endpoints WHERE id = $1").bind(id(endpoint));
    let row = app.store().db().fetch_optional(query).await.unwrap().unwrap();
    row.text("secret").unwrap()
}

/// The attack: a copy of the database (a backup, a read replica, an SQL injection elsewhere)
/// must not hand out the keys that make deliveries trusted. Endpoints written before secrets
/// were sealed keep their plain secret and keep signing with it.
async fn signing_secrets_are_sealed_at_rest_and_plain_ones_still_sign(app: TestApp) {
    let receiver = Receiver::start(&[]).await;
    let endpoint = register(&app, &receiver.url, &["product.*"]).await;
    let generated = json!({"url": receiver.url, "events": ["product.*"]});
    let generated = json(app.post("/webhook-endpoints", &generated).await, 201).await;
    for (endpoint, secret) in [(&endpoint, SECRET), (&generated, generated["secret"].as_str().unwrap())] {
        let stored = stored_secret(&app, endpoint).await;
        assert!(!stored.contains(secret), "the row holds the secret: {stored}");
        assert!(!stored.contains(&secret[6..]), "the row holds the secret: {stored}");
    }
    fixtures::product(&app, "Shirt", &["SH-1"], 1000).await;
    let received = receiver.wait_for(2).await;
    let now = unix_now(&app);
    let signed_with = |secret: &str| {
        received
            .iter()
            .filter(|r| verify(&r.signature, &r.body, secret, now, 300).is_ok())
            .count()
    };
    assert_eq!(signed_with(SECRET), 1);
    assert_eq!(signed_with(generated["secret"].as_str().unwrap()), 1);

    // A row as written before sealing: the secret in the clear.
    let old_secret = "whsec_written_before_sealing_01";
    let unsealed =
        omnihub_store::db::sql("UPDATE webhook_endpoints SET secret = $2, secret_sealed = FALSE WHERE id = $1")
            .bind(id(&endpoint))
            .bind(old_secret);
    let mut tx = app.store().db().begin().await.unwrap();
    tx.execute(unsealed).await.unwrap();
    tx.commit().await.unwrap();
    fixtures::product(&app, "Socks", &["SO-1"], 500).await;
    let received = receiver.wait_for(4).await;
    let now = unix_now(&app);
    let old = received[2..]
        .iter()
        .filter(|r| verify(&r.signature, &r.body, old_secret, now, 300).is_ok())
        .count();
    assert_eq!(old, 1, "the plain secret still signs");
}

async fn a_restart_mid_retry_loses_no_delivery(mut app: TestApp) {
    let receiver = Receiver::start(&[Answer::Status(500)]).await;
    let endpoint = register(&app, &receiver.url, &["product.*"]).await;
    fixtures::product(&app, "Shirt", &["SH-1"], 1000).await;
    let log = deliveries_after(&app, &endpoint, 1).await;
    assert_eq!(log[0]["status"], "pending");

    app.restart_with(|_| {}).await;
    app.clock.advance_seconds(2);
    let received = receiver.wait_for(2).await;
    assert_eq!(received[0].event_id, received[1].event_id);
    let log = deliveries_after(&app, &endpoint, 2).await;
    assert_eq!(log[0]["status"], "succeeded");
    assert_eq!(log[0]["attempt_count"], 2);
    assert_eq!(receiver.settled().await.len(), 2);
}

/// Two server processes on one PostgreSQL: every event is sent once (and once more for each
/// failure), never twice at the same time.
async fn two_nodes_send_each_delivery_once(app: TestApp) {
    let Some(second) = app.another_node().await else {
        return; // one SQLite file has one server
    };
    let receiver = Receiver::start(&[Answer::Status(500); 5]).await;
    let endpoint = register(&app, &receiver.url, &["product.*"]).await;
    for n in 0..20 {
        let base = if n % 2 == 0 { &app.base } else { &second };
        let answer = app
            .client
            .post(format!("{base}/api/v1/products"))
            .bearer_auth(OWNER_KEY)
            .json(&fixtures::product_body("Shirt", &[&format!("SH-{n}")], 1000))
            .send()
            .await
            .unwrap();
        json(answer, 201).await;
    }
    receiver.wait_for(20).await;
    deliveries_after(&app, &endpoint, 20).await;
    app.clock.advance_seconds(2);
    let received = receiver.wait_for(25).await;
    let log = deliveries_after(&app, &endpoint, 25).await;
    assert_eq!(log.len(), 20);
    assert!(log.iter().all(|d| d["status"] == "succeeded"), "{log:?}");
    let mut ids: Vec<&str> = received.iter().map(|r| r.event_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    assert_eq!(receiver.settled().await.len(), 25, "no event was sent twice");
}

// ───────────────────────────── several nodes ─────────────────────────────

async fn a_lapsed_reservation_expires_once_with_two_nodes(app: TestApp) {
    let Some(_second) = app.another_node().await else {
        return; // one SQLite file has one server
    };
    let store = fixtures::location(&app, "Store", "store").await;
    let web = fixtures::channel(&app, "Web", "web", &[id(&store)]).await;
    fixtures::product(&app, "Shirt", &["SH-1"], 1000).await;
    let receipt = json!({"sku": "SH-1", "location_id": id(&store), "delta": 3, "reason": "receipt"});
    json(app.post("/inventory/adjustments", &receipt).await, 200).await;
    let held = json(
        app.post(
            "/reservations",
            &json!({"channel_id": id(&web), "lines": [{"sku": "SH-1", "quantity": 2}], "ttl_seconds": 60}),
        )
        .await,
        201,
    )
    .await;

    app.clock.advance_seconds(61);
    let path = format!("/reservations/{}", id(&held));
    let deadline = Instant::now() + Duration::from_secs(10);
    while json(app.get(&path).await, 200).await["status"] != "expired" {
        assert!(Instant::now() < deadline, "the reservation did not lapse");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both nodes look for lapsed reservations twice a second; give them time to try again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = json(app.get("/events?types=reservation.expired").await, 200).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 1, "{log}");
    let levels = json(app.get("/inventory/levels?sku=SH-1").await, 200).await;
    assert_eq!(levels["data"][0]["reserved"], 0);
}

/// Node A stops while writes pour in on it: every write it answered is there, read on node B.
async fn stopping_a_node_mid_load_loses_no_answered_write(mut app: TestApp) {
    let Some(second) = app.another_node().await else {
        return; // one SQLite file has one server
    };
    let mut writers = Vec::new();
    for n in 0..200 {
        let request = app
            .client
            .post(format!("{}/api/v1/products", app.base))
            .bearer_auth(OWNER_KEY)
            .json(&fixtures::product_body("Shirt", &[&format!("LOAD-{n}")], 1000));
        writers.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(n)).await;
            match request.send().await {
                Ok(answer) if answer.status() == 201 => answer.json::<Value>().await.ok(),
                _ => None,
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.stop().await;
    let mut answered = Vec::new();
    for writer in writers {
        answered.extend(writer.await.unwrap());
    }
    assert!(
        !answered.is_empty() && answered.len() < 200,
        "{} answered",
        answered.len()
    );
    for product in &answered {
        let read = app
            .client
            .get(format!("{second}/api/v1/products/{}", id(product)))
            .bearer_auth(OWNER_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(json(read, 200).await["id"], product["id"]);
    }
}

// ───────────────────────────── NATS ─────────────────────────────

/// NATS at `OMNIHUB_TEST_NATS_URL` (default the local one), or `None` (skipped) when it is
/// unreachable outside CI.
async fn nats_url() -> Option<String> {
    let url = std::env::var("OMNIHUB_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let connected = tokio::time::timeout(Duration::from_secs(3), async_nats::connect(&url)).await;
    if matches!(connected, Ok(Ok(_))) {
        return Some(url);
    }
    assert!(std::env::var_os("CI").is_none(), "NATS at {url} is unreachable");
    eprintln!("skipped: NATS at {url} is unreachable");
    None
}

async fn nats_carries_events_to_the_stream_and_other_nodes(mut app: TestApp) {
    let Some(url) = nats_url().await else {
        return;
    };
    app.restart_with(|settings| settings.nats_url = Some(url.clone())).await;
    let jetstream = jetstream::new(async_nats::connect(&url).await.unwrap());
    let mut stream = omnihub_stream(&jetstream).await;
    let start_sequence = stream.info().await.unwrap().state.last_sequence + 1;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: "omnihub.product.created".to_owned(),
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence },
            ..Default::default()
        })
        .await
        .unwrap();
    let shirt = fixtures::product(&app, "Shirt", &["NATS-1"], 1000).await;

    let mut messages = consumer.messages().await.unwrap();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = messages.next().await {
            let message = message.unwrap();
            let event: Value = serde_json::from_slice(&message.payload).unwrap();
            if event["data"]["id"] == shirt["id"] {
                return (message.subject.to_string(), message.headers.clone(), event);
            }
        }
        panic!("the stream ended");
    })
    .await
    .expect("the event reaches JetStream");
    let (subject, headers, event) = found;
    assert_eq!(subject, "omnihub.product.created");
    let msg_id = headers.and_then(|h| h.get("Nats-Msg-Id").map(|v| v.to_string()));
    assert_eq!(msg_id.as_deref(), event["id"].as_str());

    let Some(second) = app.another_node().await else {
        return; // one SQLite file has one server
    };
    let there = cross_node_latencies(&app, &app.base, &second, "AB").await;
    let back = cross_node_latencies(&app, &second, &app.base, "BA").await;
    eprintln!("cross-node SSE latency (from the write's answer, from its request): A→B {there:?}, B→A {back:?}");
    for (after_answer, _) in there.iter().chain(&back) {
        assert!(
            *after_answer < Duration::from_millis(100),
            "A→B {there:?}, B→A {back:?}"
        );
    }
}

/// The stream OMNIHUB, once the publisher has made it.
async fn omnihub_stream(jetstream: &jetstream::Context) -> jetstream::stream::Stream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match jetstream.get_stream("OMNIHUB").await {
            Ok(stream) => return stream,
            Err(error) => assert!(Instant::now() < deadline, "no stream OMNIHUB: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates products on `writer` and times them on `reader`'s live stream: for each, how long
/// after the write's answer, and after its request, the event arrived.
async fn cross_node_latencies(app: &TestApp, writer: &str, reader: &str, tag: &str) -> Vec<(Duration, Duration)> {
    let last = app.store().last_event_seq().await.unwrap();
    let stream = app
        .client
        .get(format!("{reader}/api/v1/events/stream?types=product.created"))
        .bearer_auth(OWNER_KEY)
        .header("last-event-id", last.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut arrivals = follow(stream);
    let mut latencies = Vec::new();
    for n in 0..5 {
        // Between writes, so each one finds the reader waiting rather than just woken.
        tokio::time::sleep(Duration::from_millis(60)).await;
        let sent = Instant::now();
        let answer = app
            .client
            .post(format!("{writer}/api/v1/products"))
            .bearer_auth(OWNER_KEY)
            .json(&fixtures::product_body("Shirt", &[&format!("{tag}-{n}")], 1000))
            .send()
            .await
            .unwrap();
        let answered = Instant::now();
        let product = json(answer, 201).await;
        let (data, arrived) = tokio::time::timeout(Duration::from_secs(5), arrivals.recv())
            .await
            .expect("the event reaches the other node's stream")
            .expect("the stream stays open");
        assert!(data.contains(id(&product)), "{data}");
        latencies.push((
            arrived.saturating_duration_since(answered),
            arrived.saturating_duration_since(sent),
        ));
    }
    latencies
}

/// Reads an SSE response in its own task; answers each event's data with the moment it came.
fn follow(response: reqwest::Response) -> mpsc::UnboundedReceiver<(String, Instant)> {
    let (arrived, arrivals) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut bytes = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = bytes.next().await {
            let now = Instant::now();
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) {
                    let _ = arrived.send((data.trim().to_owned(), now));
                }
            }
        }
    });
    arrivals
}
