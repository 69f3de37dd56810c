//! The event log: appended with every change, read in order, followed live.

use std::time::Duration;

use futures_util::StreamExt;
use omnihub_store::db::sql;
use reqwest::Method;
use serde_json::json;

use crate::fixtures::{self, id};
use crate::helpers::{TestApp, json, problem, types};
use crate::on_both_backends;

on_both_backends!(
    every_change_appends_its_event,
    a_later_event_never_shows_before_an_earlier_one,
    a_new_cart_is_logged_as_answered_and_a_refused_one_not_at_all,
    the_stream_follows_live_and_resumes,
    shutting_down_ends_live_streams,
    pages_follow_the_cursor_and_bad_positions_are_refused,
);

async fn every_change_appends_its_event(app: TestApp) {
    let store = fixtures::location(&app, "Store", "store").await;
    let channel = fixtures::channel(&app, "Web", "web", &[id(&store)]).await;
    let shirt = fixtures::product(&app, "Shirt", &["SH-1"], 1000).await;
    json(
        app.patch(&format!("/products/{}", id(&shirt)), &json!({"title": "Shirt 2"}))
            .await,
        200,
    )
    .await;

    let log = json(app.get("/events").await, 200).await;
    assert_eq!(
        types(&log),
        [
            "location.created",
            "channel.created",
            "product.created",
            "product.updated"
        ]
    );
    let seqs: Vec<i64> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(log["data"][1]["data"]["id"], channel["id"]);
    assert_eq!(log["data"][3]["data"]["title"], "Shirt 2");

    let after = json(app.get(&format!("/events?after={}", seqs[1])).await, 200).await;
    assert_eq!(after["data"].as_array().unwrap().len(), 2);
    let typed = json(app.get("/events?types=product.created,channel.created").await, 200).await;
    assert_eq!(typed["data"].as_array().unwrap().len(), 2);
    let page = json(app.get("/events?limit=3").await, 200).await;
    assert_eq!(page["next_cursor"], seqs[2].to_string());
}

/// A reader follows the log by `seq` (webhooks, NATS, the live streams), so no event may become
/// visible before an earlier one: while a write that appended an event is still open, a
/// later write waits for it instead of committing a later `seq` first.
async fn a_later_event_never_shows_before_an_earlier_one(app: TestApp) {
    let store = fixtures::location(&app, "Store", "store").await;
    let channel = id(&fixtures::channel(&app, "Web", "web", &[id(&store)]).await).to_owned();
    let mut open = app.store().db().begin().await.unwrap();
    open.execute(sql(
        "INSERT INTO events (id, type, occurred_at, data) VALUES ('evt_open', 'test.open', 0, '{}')",
    ))
    .await
    .unwrap();
    let later = app
        .request(Method::POST, "/carts")
        .json(&json!({"channel_id": channel}))
        .send();
    let later = tokio::spawn(later);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = json(app.get("/events").await, 200).await;
    assert_eq!(types(&log), ["location.created", "channel.created"], "{log}");
    open.commit().await.unwrap();
    assert_eq!(later.await.unwrap().unwrap().status(), 201);
    let log = json(app.get("/events").await, 200).await;
    assert_eq!(
        types(&log),
        ["location.created", "channel.created", "test.open", "cart.created"]
    );
}

/// A cart is written with its event in one statement on PostgreSQL: the event is the cart as
/// answered, and a refused cart leaves no event behind.
async fn a_new_cart_is_logged_as_answered_and_a_refused_one_not_at_all(app: TestApp) {
    let store = fixtures::location(&app, "Store", "store").await;
    let channel = id(&fixtures::channel(&app, "Web", "web", &[id(&store)]).await).to_owned();
    let cart = json(app.post("/carts", &json!({"channel_id": channel})).await, 201).await;
    let refused = app
        .post("/carts", &json!({"channel_id": channel, "customer_id": "cus_nobody"}))
        .await;
    assert_eq!(refused.status(), 422);
    let log = json(app.get("/events?types=cart.created").await, 200).await;
    let events = log["data"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{log}");
    assert_eq!(events[0]["data"], cart);
}

/// Reads SSE frames until `count` events have come; answers their (id, event) pairs.
async fn read_events(response: reqwest::Response, count: usize) -> Vec<(String, String)> {
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while events.len() < count {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("events in time")
            .expect("open")
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| {
                frame
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_owned())
            };
            if let (Some(id), Some(event)) = (field("id:"), field("event:")) {
                events.push((id, event));
            }
        }
    }
    events
}

async fn the_stream_follows_live_and_resumes(app: TestApp) {
    fixtures::location(&app, "Store", "store").await;
    let stream = app.request(Method::GET, "/events/stream").send().await.unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let writer = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        fixtures::product(&app, "Shirt", &["SH-1"], 1000).await;
    };
    let (events, _) = tokio::join!(read_events(stream, 2), writer);
    assert_eq!(events[0].1, "location.created");
    assert_eq!(events[1].1, "product.created");

    let resumed = app
        .request(Method::GET, "/events/stream")
        .header("last-event-id", &events[0].0)
        .send()
        .await
        .unwrap();
    let again = read_events(resumed, 1).await;
    assert_eq!(again[0], events[1]);
}

async fn shutting_down_ends_live_streams(mut app: TestApp) {
    let stream = app.request(Method::GET, "/events/stream").send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let reader = tokio::spawn(async move { stream.bytes().await.is_ok() });
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("the server stops in time");
    assert!(
        tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("the stream ends")
            .unwrap()
    );
}

async fn pages_follow_the_cursor_and_bad_positions_are_refused(app: TestApp) {
    for n in 0..53 {
        fixtures::location(&app, &format!("Store {n}"), "store").await;
    }
    let first = json(app.get("/events").await, 200).await;
    assert_eq!(first["data"].as_array().unwrap().len(), 50, "the lists' default limit");
    let mut seqs = Vec::new();
    let mut page = json(app.get("/events?limit=20").await, 200).await;
    loop {
        seqs.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_i64().unwrap()),
        );
        let Some(cursor) = page["next_cursor"].as_str().map(str::to_owned) else {
            break;
        };
        assert!(seqs.len() <= 53, "the cursor moves on");
        page = json(app.get(&format!("/events?limit=20&cursor={cursor}")).await, 200).await;
    }
    assert_eq!(seqs.len(), 53);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let from = json(app.get(&format!("/events?after=1&cursor={}", seqs[49])).await, 200).await;
    assert_eq!(from["data"].as_array().unwrap().len(), 3, "the cursor wins over after");

    let garbage = problem(app.get("/events?cursor=abc").await, 422, "validation_failed").await;
    assert_eq!(garbage["errors"][0]["field"], "cursor");
    let resume = app
        .request(Method::GET, "/events/stream")
        .header("last-event-id", "abc")
        .send()
        .await
        .unwrap();
    let garbage = problem(resume, 422, "validation_failed").await;
    assert_eq!(garbage["errors"][0]["field"], "Last-Event-ID");
    let empty = app
        .request(Method::GET, "/events/stream")
        .header("last-event-id", "")
        .send()
        .await
        .unwrap();
    let empty = problem(empty, 422, "validation_failed").await;
    assert_eq!(empty["errors"][0]["field"], "Last-Event-ID");
}
