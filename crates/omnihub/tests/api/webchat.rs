//! The web chat of our own widget: visitors open a session, write with its token, and get
//! the agent's answers on their live stream.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::fixtures::{self, id};
use crate::helpers::{TestApp, json, problem};
use crate::on_both_backends;

on_both_backends!(
    a_visitor_writes_and_the_agents_answer_arrives_on_their_stream,
    wrong_tokens_other_inboxes_and_too_many_sessions_are_refused,
    an_email_typed_in_the_chat_reveals_no_order_and_links_nobody,
    streams_messages_and_order_lookups_are_bounded_per_visitor_and_address,
);

async fn webchat_inbox(app: &TestApp) -> Value {
    let body = json!({"kind": "webchat", "name": "Shop chat", "credentials": {}});
    json(app.post("/inboxes", &body).await, 201).await
}

fn url(app: &TestApp, inbox: &Value, what: &str) -> String {
    format!("{}/webchat/{}/{what}", app.base, id(inbox))
}

async fn session(app: &TestApp, inbox: &Value) -> reqwest::Response {
    app.client.post(url(app, inbox, "sessions")).send().await.unwrap()
}

async fn visitor_writes(app: &TestApp, inbox: &Value, token: &str, body: Value) -> reqwest::Response {
    let request = app.client.post(url(app, inbox, "messages")).bearer_auth(token);
    request.json(&body).send().await.unwrap()
}

/// The data of the stream's next `message` event.
async fn next_reply(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Unpin),
) -> Value {
    let mut buffer = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let data = frame.lines().find_map(|l| l.strip_prefix("data:"));
            if frame.lines().any(|l| l == "event: message")
                && let Some(data) = data
            {
                return serde_json::from_str(data.trim()).unwrap();
            }
        }
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("a reply in time")
            .expect("open")
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn a_visitor_writes_and_the_agents_answer_arrives_on_their_stream(app: TestApp) {
    let inbox = webchat_inbox(&app).await;
    let started = json(session(&app, &inbox).await, 201).await;
    let token = started["token"].as_str().unwrap();
    let mut stream = visitor_stream(&app, &inbox, token).await;

    let hello = json!({"text": "Do you have this scarf in blue?", "name": "Ann", "email": "Ann@Example.com"});
    let stored = json(visitor_writes(&app, &inbox, token, hello).await, 201).await;
    assert_eq!(stored["duplicate"], false);
    let list = json(app.get(&format!("/conversations?inbox_id={}", id(&inbox))).await, 200).await;
    let conversation_id = list["data"][0]["id"].as_str().unwrap().to_owned();
    let seen = json(app.get(&format!("/conversations/{conversation_id}")).await, 200).await;
    let identities = seen["context"]["customer"]["identities"].to_string();
    assert!(
        identities.contains(started["visitor_id"].as_str().unwrap()),
        "{identities}"
    );
    assert!(
        !identities.contains("ann@example.com"),
        "a claim links nobody: {identities}"
    );
    assert_eq!(seen["claimed_email"], "ann@example.com");

    let answer = json!({"text": "Yes, blue is in stock."});
    let sent = json(
        app.post(&format!("/conversations/{conversation_id}/messages"), &answer)
            .await,
        201,
    )
    .await;
    assert_eq!(sent["status"], "sent");
    let reply = next_reply(&mut stream).await;
    assert_eq!(reply["text"], "Yes, blue is in stock.");
    assert_eq!(reply["message_id"], sent["id"]);
    assert_eq!(reply["sender_kind"], "agent");

    // Another visitor's conversation does not reach this stream.
    let other = json(session(&app, &inbox).await, 201).await;
    let other_token = other["token"].as_str().unwrap();
    json(
        visitor_writes(&app, &inbox, other_token, json!({"text": "Hi"})).await,
        201,
    )
    .await;
    let list = json(app.get(&format!("/conversations?inbox_id={}", id(&inbox))).await, 200).await;
    let other_id = list["data"][0]["id"].as_str().unwrap().to_owned();
    assert_ne!(other_id, conversation_id);
    let elsewhere = json!({"text": "Only for the other visitor"});
    json(
        app.post(&format!("/conversations/{other_id}/messages"), &elsewhere)
            .await,
        201,
    )
    .await;
    let again = json!({"text": "And in red?"});
    json(visitor_writes(&app, &inbox, token, again).await, 201).await;
    let answer = json!({"text": "Red is sold out."});
    json(
        app.post(&format!("/conversations/{conversation_id}/messages"), &answer)
            .await,
        201,
    )
    .await;
    assert_eq!(next_reply(&mut stream).await["text"], "Red is sold out.");
}

async fn wrong_tokens_other_inboxes_and_too_many_sessions_are_refused(app: TestApp) {
    let inbox = webchat_inbox(&app).await;
    let hello = json!({"text": "Hello"});
    problem(
        visitor_writes(&app, &inbox, "wct_wrong", hello.clone()).await,
        401,
        "unauthorized",
    )
    .await;
    let anonymous = app
        .client
        .post(url(&app, &inbox, "messages"))
        .json(&hello)
        .send()
        .await
        .unwrap();
    problem(anonymous, 401, "unauthorized").await;
    let stream = app
        .client
        .get(url(&app, &inbox, "stream"))
        .bearer_auth("wct_wrong")
        .send()
        .await
        .unwrap();
    problem(stream, 401, "unauthorized").await;

    // A token opens only its own inbox's chat.
    let other = webchat_inbox(&app).await;
    let started = json(session(&app, &other).await, 201).await;
    let token = started["token"].as_str().unwrap();
    problem(
        visitor_writes(&app, &inbox, token, hello.clone()).await,
        401,
        "unauthorized",
    )
    .await;
    let bad_email = json!({"text": "Hi", "email": "not an address"});
    let invalid = problem(
        visitor_writes(&app, &other, token, bad_email).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(invalid["errors"][0]["field"], "email");

    let api = json!({"kind": "api", "name": "Custom", "credentials": {"webhook_url": "http://127.0.0.1:9/replies",
                                                                        "secret": "api-channel-secret-0123456789"}});
    let api = json(app.post("/inboxes", &api).await, 201).await;
    problem(session(&app, &api).await, 404, "not_found").await;

    for _ in 0..20 {
        json(session(&app, &inbox).await, 201).await;
    }
    problem(session(&app, &inbox).await, 429, "rate_limited").await;
    json(session(&app, &other).await, 201).await;

    let document = app.openapi().await;
    for path in [
        "/webchat/{inbox_id}/sessions",
        "/webchat/{inbox_id}/messages",
        "/webchat/{inbox_id}/stream",
        "/api/v1/faq-entries",
    ] {
        assert!(document["paths"].get(path).is_some(), "{path} is documented");
    }
}

/// The visitor's live stream of the chat.
async fn visitor_stream(
    app: &TestApp,
    inbox: &Value,
    token: &str,
) -> impl futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + use<> {
    let stream = app
        .client
        .get(format!("{}?token={token}", url(app, inbox, "stream")))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    stream.bytes_stream()
}

async fn an_email_typed_in_the_chat_reveals_no_order_and_links_nobody(app: TestApp) {
    let tom = fixtures::shipped_order(&app, "Tom Becker", "tom.becker@example.com").await;
    let tom = tom["customer_id"].as_str().unwrap();
    let inbox = webchat_inbox(&app).await;
    let started = json(session(&app, &inbox).await, 201).await;
    let token = started["token"].as_str().unwrap();
    let mut stream = visitor_stream(&app, &inbox, token).await;

    let claim = json!({"text": "where is my order", "email": "Tom.Becker@example.com"});
    json(visitor_writes(&app, &inbox, token, claim).await, 201).await;
    let reply = next_reply(&mut stream).await;
    assert_eq!(reply["sender_kind"], "bot");
    let text = reply["text"].as_str().unwrap();
    assert!(
        text.contains("order number") && !text.contains("#1001") && !text.contains("00340434"),
        "{text}"
    );

    // The chat is the visitor's own; the claimed address waits for an agent to confirm.
    let list = json(app.get(&format!("/conversations?inbox_id={}", id(&inbox))).await, 200).await;
    let conversation = &list["data"][0];
    assert_ne!(conversation["customer_id"], tom);
    assert_eq!(conversation["claimed_email"], "tom.becker@example.com");
    let profile = json(app.get(&format!("/customers/{tom}")).await, 200).await;
    let identities = profile["identities"].to_string();
    assert!(!identities.contains("webchat"), "{identities}");

    // Whoever knows the number and the address is told, like on the shop's order page.
    let right = json!({"text": "It is order #1001"});
    json(visitor_writes(&app, &inbox, token, right.clone()).await, 201).await;
    let text = next_reply(&mut stream).await["text"].as_str().unwrap().to_owned();
    assert_eq!(
        text,
        "Your order #1001 has shipped. It travels with DHL, tracking number 00340434."
    );
    let wrong = json!({"text": "#1001 anna@example.com"});
    json(visitor_writes(&app, &inbox, token, wrong).await, 201).await;
    let text = next_reply(&mut stream).await["text"].as_str().unwrap().to_owned();
    assert!(
        text.starts_with("I could not find an order") && !text.contains("00340434"),
        "{text}"
    );
    // After a lookup that matched nothing the chat is the agents': no more guessing with the bot.
    json(visitor_writes(&app, &inbox, token, right).await, 201).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let messages = json(
        app.get(&format!("/conversations/{}/messages?limit=500", id(conversation)))
            .await,
        200,
    )
    .await;
    let last = messages["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["direction"], "in", "the bot stayed quiet: {last}");

    // Erasing the visitor takes the address they typed with it.
    let visitor = conversation["customer_id"].as_str().unwrap();
    assert_eq!(app.delete(&format!("/customers/{visitor}")).await.status(), 204);
    let kept = json(app.get(&format!("/conversations/{}", id(conversation))).await, 200).await;
    assert!(kept["claimed_email"].is_null(), "{kept}");
}

/// The chat is public: one visitor follows a few streams at most and writes at a human pace,
/// and order numbers are guessed a few times per address, however many sessions it opens.
async fn streams_messages_and_order_lookups_are_bounded_per_visitor_and_address(app: TestApp) {
    let inbox = webchat_inbox(&app).await;
    let started = json(session(&app, &inbox).await, 201).await;
    let token = started["token"].as_str().unwrap();
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(visitor_stream(&app, &inbox, token).await);
    }
    let fourth = app
        .client
        .get(format!("{}?token={token}", url(&app, &inbox, "stream")))
        .send()
        .await
        .unwrap();
    problem(fourth, 429, "rate_limited").await;
    drop(streams);

    for i in 0..30 {
        let message = json!({"text": format!("message {i}")});
        json(visitor_writes(&app, &inbox, token, message).await, 201).await;
    }
    let chatty = visitor_writes(&app, &inbox, token, json!({"text": "one more"})).await;
    problem(chatty, 429, "rate_limited").await;

    // Each new session is a new conversation, where the bot would answer one guess: the
    // address is what bounds the guessing.
    for number in 0..5 {
        let guesser = json(session(&app, &inbox).await, 201).await;
        let guess = json!({"text": format!("Where is my order #{}?", 2000 + number), "email": "ann@example.com"});
        json(
            visitor_writes(&app, &inbox, guesser["token"].as_str().unwrap(), guess).await,
            201,
        )
        .await;
    }
    let guesser = json(session(&app, &inbox).await, 201).await;
    let guess = json!({"text": "Where is my order #2999?", "email": "ann@example.com"});
    let refused = visitor_writes(&app, &inbox, guesser["token"].as_str().unwrap(), guess).await;
    problem(refused, 429, "rate_limited").await;
    let chat = json!({"text": "Do you ship to Austria?"});
    json(
        visitor_writes(&app, &inbox, guesser["token"].as_str().unwrap(), chat).await,
        201,
    )
    .await;
}
