//! Automatic answers: frequent questions answered by the bot through the conversation's own
//! channel, "where is my order" answered from the latest order, and agents taking over.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use serde_json::{Value, json};

use crate::fixtures::{self, id};
use crate::helpers::{TestApp, json, problem};
use crate::on_both_backends;

on_both_backends!(
    a_frequent_question_is_answered_and_an_unknown_one_left_to_agents,
    where_is_my_order_is_answered_with_the_tracking_number,
    the_bot_is_quiet_once_an_agent_replied_or_was_assigned,
);

/// Long enough for a bot that was going to answer to have answered on this machine.
const QUIET: Duration = Duration::from_millis(600);

/// A custom channel's reply endpoint on 127.0.0.1, keeping every reply's body.
#[derive(Clone)]
struct Channel {
    url: String,
    replies: Arc<Mutex<Vec<Value>>>,
}

impl Channel {
    async fn start() -> Channel {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let replies = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new().fallback(keep).with_state(replies.clone());
        let url = format!("http://{}/replies", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Channel { url, replies }
    }

    fn replies(&self) -> Vec<Value> {
        self.replies.lock().unwrap().clone()
    }

    /// The replies once there are `count` of them.
    async fn wait_for(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let replies = self.replies();
            if replies.len() >= count {
                return replies;
            }
            assert!(Instant::now() < deadline, "expected {count} replies, got {replies:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn keep(State(replies): State<Arc<Mutex<Vec<Value>>>>, body: Bytes) -> axum::Json<Value> {
    replies
        .lock()
        .unwrap()
        .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
    axum::Json(json!({"ok": true}))
}

async fn api_inbox(app: &TestApp, channel: &Channel) -> Value {
    let body = json!({"kind": "api", "name": "Shop chat",
                      "credentials": {"webhook_url": channel.url, "secret": "api-channel-secret-0123456789"}});
    json(app.post("/inboxes", &body).await, 201).await
}

/// The customer `contact` writes `text` on the custom channel; answers where it landed.
async fn write(app: &TestApp, inbox: &Value, contact: Value, text: &str) -> Value {
    let body = json!({"contact": contact, "text": text});
    json(app.post(&format!("/inboxes/{}/messages", id(inbox)), &body).await, 201).await
}

async fn faq(app: &TestApp, question: &str, answer: &str, keywords: &[&str]) -> Value {
    let body = json!({"question": question, "answer": answer, "keywords": keywords});
    json(app.post("/faq-entries", &body).await, 201).await
}

async fn conversation(app: &TestApp, id: &str) -> Value {
    json(app.get(&format!("/conversations/{id}")).await, 200).await
}

/// The conversation once its second message (the bot's answer) is `sent`: the channel may
/// see the answer before the hub has recorded how it went.
async fn once_sent(app: &TestApp, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = conversation(app, id).await;
        if seen["messages"][1]["status"] == "sent" {
            return seen;
        }
        assert!(Instant::now() < deadline, "the answer was not recorded as sent: {seen}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const SHIPPING_ANSWER: &str = "Parcels arrive in 2 to 3 working days.";

async fn frequent_questions(app: &TestApp) {
    faq(
        app,
        "How long does shipping take?",
        SHIPPING_ANSWER,
        &["delivery time", "Lieferzeit"],
    )
    .await;
    faq(
        app,
        "Can I return an item?",
        "Yes, within 30 days.",
        &["refund", "Rückgabe"],
    )
    .await;
}

async fn a_frequent_question_is_answered_and_an_unknown_one_left_to_agents(app: TestApp) {
    let channel = Channel::start().await;
    let inbox = api_inbox(&app, &channel).await;
    frequent_questions(&app).await;
    let listed = json(app.get("/faq-entries").await, 200).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    assert_eq!(listed["data"][0]["keywords"], json!(["delivery time", "Lieferzeit"]));
    let blank = json!({"question": "the?", "answer": ""});
    problem(app.post("/faq-entries", &blank).await, 422, "validation_failed").await;

    let stored = write(
        &app,
        &inbox,
        json!({"external_id": "u-1"}),
        "Hello, how long does shipping take?",
    )
    .await;
    let replies = channel.wait_for(1).await;
    assert_eq!(replies[0]["text"], SHIPPING_ANSWER);
    assert_eq!(replies[0]["contact"]["external_id"], "u-1");
    let seen = once_sent(&app, stored["conversation_id"].as_str().unwrap()).await;
    assert_eq!(seen["messages"][1]["sender_kind"], "bot");
    assert!(!seen["answered_automatically_at"].is_null(), "{seen}");
    assert!(
        seen["first_response_at"].is_null(),
        "the bot is not a person's response"
    );

    write(
        &app,
        &inbox,
        json!({"external_id": "u-2"}),
        "Do you sell gift cards for birthdays?",
    )
    .await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(channel.replies().len(), 1, "no confident match, no answer");
}

async fn where_is_my_order_is_answered_with_the_tracking_number(app: TestApp) {
    fixtures::shipped_order(&app, "Ann Lee", "ann@example.com").await;

    let channel = Channel::start().await;
    let inbox = api_inbox(&app, &channel).await;
    let ann = json!({"external_id": "web-ann", "email": "Ann@Example.com"});
    write(&app, &inbox, ann.clone(), "Wo ist meine Bestellung?").await;
    let text = channel.wait_for(1).await[0]["text"].as_str().unwrap().to_owned();
    assert!(text.starts_with("Ihre Bestellung #1001"), "{text}");
    assert!(
        text.contains("DHL") && text.contains("Sendungsnummer 00340434"),
        "{text}"
    );

    write(&app, &inbox, ann, "where is my order?").await;
    let text = channel.wait_for(2).await[1]["text"].as_str().unwrap().to_owned();
    assert_eq!(
        text,
        "Your order #1001 has shipped. It travels with DHL, tracking number 00340434."
    );

    write(&app, &inbox, json!({"external_id": "web-new"}), "Where is my order?").await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(channel.replies().len(), 2, "without an order a person answers");
}

async fn the_bot_is_quiet_once_an_agent_replied_or_was_assigned(app: TestApp) {
    let channel = Channel::start().await;
    let inbox = api_inbox(&app, &channel).await;
    frequent_questions(&app).await;
    let question = "How long does shipping take?";
    let stored = write(&app, &inbox, json!({"external_id": "u-1"}), question).await;
    channel.wait_for(1).await;
    let conversation_id = stored["conversation_id"].as_str().unwrap();
    let agent = json!({"text": "Let me check that for you."});
    json(
        app.post(&format!("/conversations/{conversation_id}/messages"), &agent)
            .await,
        201,
    )
    .await;
    channel.wait_for(2).await;
    write(&app, &inbox, json!({"external_id": "u-1"}), question).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(channel.replies().len(), 2, "the agent has taken over");
    assert!(!conversation(&app, conversation_id).await["first_response_at"].is_null());

    let other = write(&app, &inbox, json!({"external_id": "u-2"}), "Something else").await;
    let other_id = other["conversation_id"].as_str().unwrap();
    json(
        app.patch(&format!("/conversations/{other_id}"), &json!({"assignee_id": "ann"}))
            .await,
        200,
    )
    .await;
    write(&app, &inbox, json!({"external_id": "u-2"}), question).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(channel.replies().len(), 2, "an assigned conversation is the agent's");
}
