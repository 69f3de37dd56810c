//! One inbox for every messaging channel: each provider's webhooks in its native payload and
//! signature scheme, replies reaching a local fake of the provider's API in its format,
//! receipts, reply windows, assignment, and the customer's context beside every conversation.

use omnihub_domain::Clock;
use omnihub_domain::conversations::signatures::{hub_signature, viber_signature};
use omnihub_domain::webhooks;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::fake_provider::{ANN_WA_ID, Fake, whatsapp_accepted, whatsapp_text, whatsapp_value};
use crate::fixtures::{self, id};
use crate::helpers::{TestApp, json, problem, types};
use crate::on_both_backends;

on_both_backends!(
    telegram_messages_find_their_customer_and_replies_reach_telegram,
    whatsapp_messages_receipts_and_the_reply_window,
    messenger_replies_are_tagged_after_a_day_and_refused_after_a_week,
    viber_messages_replies_and_receipts,
    a_shared_contact_is_a_claim_that_makes_nobody_the_customer,
    the_api_channel_posts_and_receives_signed_messages,
    a_signed_call_replayed_without_a_message_id_is_stored_once,
    bad_signatures_and_replays_change_nothing,
    providers_that_fail_are_retried_then_the_reply_fails,
    conversations_are_assigned_resolved_and_reopened,
    an_agent_reopening_is_announced_and_resolving_twice_changes_nothing,
    notes_and_canned_replies,
    one_customer_across_whatsapp_and_the_api_channel_with_their_cart_and_orders,
    a_merge_moves_conversations,
    no_reply_goes_out_once_the_customer_was_erased,
    each_inbox_names_the_url_that_takes_its_messages,
    the_whole_history_of_a_conversation_pages,
    every_shared_secret_has_sixteen_characters_at_least,
    an_inbox_is_changed_and_its_credentials_replaced,
    inboxes_are_checked_and_never_show_credentials,
);

const TELEGRAM_SECRET: &str = "tg-secret_0123456789";
const APP_SECRET: &str = "meta-app-secret-0123456789";
const VIBER_TOKEN: &str = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9";
const API_SECRET: &str = "api-channel-secret-0123456789";

// ───────────────────────────── helpers ─────────────────────────────

async fn inbox(app: &TestApp, kind: &str, credentials: Value, fake: Option<&Fake>) -> Value {
    let mut body = json!({"kind": kind, "name": "Shop Support", "credentials": credentials});
    if let Some(fake) = fake {
        body["api_base_url"] = json!(fake.base);
    }
    json(app.post("/inboxes", &body).await, 201).await
}

async fn telegram_inbox(app: &TestApp, fake: &Fake) -> Value {
    let credentials = json!({"bot_token": "123456:ABC-DEF", "secret_token": TELEGRAM_SECRET});
    inbox(app, "telegram", credentials, Some(fake)).await
}

async fn whatsapp_inbox(app: &TestApp, fake: &Fake) -> Value {
    let credentials = json!({"access_token": "EAAG-token", "phone_number_id": "106540352242922",
                             "app_secret": APP_SECRET, "verify_token": "wa-verify-0123456789"});
    inbox(app, "whatsapp", credentials, Some(fake)).await
}

async fn messenger_inbox(app: &TestApp, fake: &Fake) -> Value {
    let credentials = json!({"page_access_token": "EAAB-page", "page_id": "PAGE_ID",
                             "app_secret": APP_SECRET, "verify_token": "fb-verify-0123456789"});
    inbox(app, "messenger", credentials, Some(fake)).await
}

async fn viber_inbox(app: &TestApp, fake: &Fake) -> Value {
    inbox(app, "viber", json!({"auth_token": VIBER_TOKEN}), Some(fake)).await
}

async fn api_inbox(app: &TestApp, fake: &Fake) -> Value {
    let credentials = json!({"webhook_url": format!("{}/replies", fake.base), "secret": API_SECRET});
    inbox(app, "api", credentials, None).await
}

/// POSTs `body` to the inbox's webhook with `headers`, as the provider would.
async fn deliver(app: &TestApp, inbox: &Value, body: &Value, headers: &[(&str, String)]) -> Response {
    let raw = body.to_string();
    let mut request = app.client.post(inbox["webhook_url"].as_str().unwrap()).body(raw);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.header("content-type", "application/json").send().await.unwrap()
}

async fn telegram(app: &TestApp, inbox: &Value, update: &Value) -> Response {
    let secret = ("X-Telegram-Bot-Api-Secret-Token", TELEGRAM_SECRET.to_owned());
    deliver(app, inbox, update, &[secret]).await
}

async fn meta(app: &TestApp, inbox: &Value, payload: &Value) -> Response {
    let signature = hub_signature(APP_SECRET, payload.to_string().as_bytes());
    deliver(app, inbox, payload, &[("X-Hub-Signature-256", signature)]).await
}

async fn viber(app: &TestApp, inbox: &Value, callback: &Value) -> Response {
    let signature = viber_signature(VIBER_TOKEN, callback.to_string().as_bytes());
    deliver(app, inbox, callback, &[("X-Viber-Content-Signature", signature)]).await
}

fn unix_now(app: &TestApp) -> i64 {
    app.clock.now().millis() / 1000
}

/// A customer's message posted by the custom channel, signed with the inbox's secret.
async fn channel_post(app: &TestApp, inbox: &Value, body: &Value) -> Response {
    let raw = body.to_string();
    let signature = webhooks::sign(API_SECRET, unix_now(app), raw.as_bytes());
    app.client
        .post(format!("{}/api/v1/inboxes/{}/messages", app.base, id(inbox)))
        .header("Omnihub-Signature", signature)
        .body(raw)
        .send()
        .await
        .unwrap()
}

fn telegram_update(update_id: i64, message_id: i64, text: &str) -> Value {
    json!({"update_id": update_id, "message": {
        "message_id": message_id, "date": 1_790_000_000,
        "from": {"id": 1111111, "is_bot": false, "first_name": "Ann", "last_name": "Lee", "language_code": "de"},
        "chat": {"id": 1111111, "type": "private", "first_name": "Ann"},
        "text": text}})
}

fn whatsapp_status(wamid: &str, status: &str) -> Value {
    whatsapp_value(json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "statuses": [{"id": wamid, "status": status, "timestamp": "1790000100", "recipient_id": ANN_WA_ID}]}))
}

fn messenger_event(event: Value) -> Value {
    json!({"object": "page", "entry": [{"id": "PAGE_ID", "time": 1_790_000_000_000_i64, "messaging": [event]}]})
}

fn messenger_text(mid: &str, text: &str) -> Value {
    messenger_event(
        json!({"sender": {"id": "6945981752134245"}, "recipient": {"id": "PAGE_ID"},
        "timestamp": 1_790_000_000_000_i64, "message": {"mid": mid, "text": text}}),
    )
}

fn viber_message(token: u64, text: &str) -> Value {
    json!({"event": "message", "timestamp": 1_790_000_000_000_i64, "message_token": token,
        "sender": {"id": "01234567890A=", "name": "John McClane", "language": "en", "country": "GB", "api_version": 1},
        "message": {"type": "text", "text": text}})
}

async fn get(app: &TestApp, path: &str) -> Value {
    json(app.get(path).await, 200).await
}

async fn conversations_of(app: &TestApp, inbox: &Value) -> Vec<Value> {
    let list = get(app, &format!("/conversations?inbox_id={}", id(inbox))).await;
    list["data"].as_array().unwrap().clone()
}

/// The inbox's only conversation, with messages and context.
async fn only_conversation(app: &TestApp, inbox: &Value) -> Value {
    let list = conversations_of(app, inbox).await;
    assert_eq!(list.len(), 1, "{list:?}");
    get(app, &format!("/conversations/{}", id(&list[0]))).await
}

async fn send(app: &TestApp, conversation: &Value, body: Value) -> Response {
    app.post(&format!("/conversations/{}/messages", id(conversation)), &body)
        .await
}

async fn reply(app: &TestApp, conversation: &Value, text: &str) -> Value {
    json(send(app, conversation, json!({"text": text})).await, 201).await
}

async fn message_status(app: &TestApp, conversation: &Value, message_id: &str) -> String {
    let read = get(app, &format!("/conversations/{}", id(conversation))).await;
    let message = read["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == message_id)
        .cloned()
        .expect("the message");
    message["status"].as_str().unwrap_or_default().to_owned()
}

async fn event_count(app: &TestApp, kind: &str) -> usize {
    get(app, &format!("/events?types={kind}&limit=500")).await["data"]
        .as_array()
        .unwrap()
        .len()
}

fn identities(customer: &Value) -> Vec<(String, String)> {
    customer["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().unwrap().to_owned(),
                i["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pair(kind: &str, value: &str) -> (String, String) {
    (kind.to_owned(), value.to_owned())
}

// ───────────────────────────── the providers ─────────────────────────────

async fn telegram_messages_find_their_customer_and_replies_reach_telegram(app: TestApp) {
    let fake = Fake::start(json!({"ok": true, "result": {"message_id": 77, "chat": {"id": 1111111}, "date": 1}})).await;
    let inbox = telegram_inbox(&app, &fake).await;
    assert_eq!(
        inbox["webhook_url"],
        format!("{}/hooks/{}", app.base, id(&inbox)),
        "the URL to give setWebhook"
    );
    let stored = json(
        telegram(&app, &inbox, &telegram_update(1, 1365, "Where is my order?")).await,
        200,
    )
    .await;
    assert_eq!(stored["received"], 1);

    let conversation = only_conversation(&app, &inbox).await;
    assert_eq!(conversation["status"], "open");
    assert_eq!(conversation["inbox_kind"], "telegram");
    let customer = &conversation["context"]["customer"];
    assert_eq!(customer["name"], "Ann Lee");
    assert_eq!(identities(customer), [pair("telegram", "1111111")]);
    let messages = conversation["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        (messages[0]["direction"].as_str(), messages[0]["text"].as_str()),
        (Some("in"), Some("Where is my order?"))
    );
    assert_eq!(messages[0]["provider_message_id"], "1111111:1365");

    // Sharing their contact links the phone number to the same customer.
    let contact = json!({"update_id": 2, "message": {"message_id": 1366, "date": 1_790_000_001,
        "from": {"id": 1111111, "is_bot": false, "first_name": "Ann"}, "chat": {"id": 1111111, "type": "private"},
        "contact": {"phone_number": "4915112345678", "first_name": "Ann", "user_id": 1111111}}});
    json(telegram(&app, &inbox, &contact).await, 200).await;
    let conversation = only_conversation(&app, &inbox).await;
    assert!(identities(&conversation["context"]["customer"]).contains(&pair("phone", "+4915112345678")));

    let sent = reply(&app, &conversation, "It ships today").await;
    assert_eq!(sent["status"], "sent");
    assert_eq!(sent["provider_message_id"], "1111111:77");
    let call = fake.last();
    assert_eq!(call.target, "/bot123456:ABC-DEF/sendMessage");
    assert_eq!(call.body, json!({"chat_id": 1111111, "text": "It ships today"}));
    assert_eq!(event_count(&app, "message.received").await, 2);
    assert_eq!(event_count(&app, "message.sent").await, 1);
    assert_eq!(event_count(&app, "conversation.created").await, 1);

    // Edits, polls and the like are acknowledged and ignored.
    let edited = json!({"update_id": 3, "edited_message": {"message_id": 1365, "date": 1, "chat": {"id": 1111111}}});
    assert_eq!(json(telegram(&app, &inbox, &edited).await, 200).await["ignored"], 1);
}

async fn whatsapp_messages_receipts_and_the_reply_window(app: TestApp) {
    let script = [
        (200, whatsapp_accepted("wamid.OUT1")),
        (200, whatsapp_accepted("wamid.OUT2")),
    ];
    let fake = Fake::scripted(&script, whatsapp_accepted("wamid.OUT3")).await;
    let inbox = whatsapp_inbox(&app, &fake).await;
    // Meta's handshake echoes the challenge only for the inbox's verify token.
    let hook = inbox["webhook_url"].as_str().unwrap();
    let handshake =
        |token: &str| format!("{hook}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444");
    let echoed = app.client.get(handshake("wa-verify-0123456789")).send().await.unwrap();
    assert_eq!(echoed.status(), 200);
    assert_eq!(echoed.text().await.unwrap(), "1158201444");
    problem(
        app.client.get(handshake("guess")).send().await.unwrap(),
        401,
        "invalid_signature",
    )
    .await;

    json(
        meta(&app, &inbox, &whatsapp_text("wamid.IN1", "Do you have it in blue?")).await,
        200,
    )
    .await;
    let conversation = only_conversation(&app, &inbox).await;
    let customer = &conversation["context"]["customer"];
    assert_eq!(
        identities(customer),
        [pair("phone", "+4915112345678")],
        "a wa_id is a phone"
    );
    assert_eq!(customer["name"], "Ann Lee");

    let sent = reply(&app, &conversation, "Yes, in blue too").await;
    assert_eq!(
        (sent["status"].as_str(), sent["provider_message_id"].as_str()),
        (Some("sent"), Some("wamid.OUT1"))
    );
    let call = fake.last();
    assert_eq!(call.target, "/v20.0/106540352242922/messages");
    assert_eq!(call.headers["authorization"], "Bearer EAAG-token");
    assert_eq!(
        call.body,
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": ANN_WA_ID,
               "type": "text", "text": {"preview_url": false, "body": "Yes, in blue too"}})
    );

    // Receipts move the status forward, never back.
    let message_id = sent["id"].as_str().unwrap();
    json(
        meta(&app, &inbox, &whatsapp_status("wamid.OUT1", "delivered")).await,
        200,
    )
    .await;
    assert_eq!(message_status(&app, &conversation, message_id).await, "delivered");
    let read = json(meta(&app, &inbox, &whatsapp_status("wamid.OUT1", "read")).await, 200).await;
    assert_eq!(read["status_changes"], 1);
    let late = json(
        meta(&app, &inbox, &whatsapp_status("wamid.OUT1", "delivered")).await,
        200,
    )
    .await;
    assert_eq!(late["status_changes"], 0);
    assert_eq!(message_status(&app, &conversation, message_id).await, "read");
    assert_eq!(event_count(&app, "message.status_changed").await, 2);

    // A day after the customer's last message only a template goes out.
    app.clock.advance_seconds(25 * 3600);
    let text = problem(
        send(&app, &conversation, json!({"text": "Still there?"})).await,
        422,
        "window_closed",
    )
    .await;
    assert!(text["detail"].as_str().unwrap().contains("template"), "{text}");
    let calls = fake.seen().len();
    let template = json!({"template": {"name": "order_update", "language": "en_US", "params": ["#1001"]}});
    let sent = json(send(&app, &conversation, template).await, 201).await;
    assert_eq!(sent["status"], "sent");
    assert_eq!(fake.seen().len(), calls + 1, "the refused text never reached WhatsApp");
    assert_eq!(
        fake.last().body["template"],
        json!({"name": "order_update", "language": {"code": "en_US"},
               "components": [{"type": "body", "parameters": [{"type": "text", "text": "#1001"}]}]})
    );
    // The customer writing again opens the window again.
    json(meta(&app, &inbox, &whatsapp_text("wamid.IN2", "Thanks!")).await, 200).await;
    reply(&app, &conversation, "You're welcome").await;
}

async fn messenger_replies_are_tagged_after_a_day_and_refused_after_a_week(app: TestApp) {
    let accepted = |mid: &str| json!({"recipient_id": "6945981752134245", "message_id": mid});
    let fake = Fake::scripted(&[(200, accepted("m_OUT1"))], accepted("m_OUT2")).await;
    let inbox = messenger_inbox(&app, &fake).await;
    json(meta(&app, &inbox, &messenger_text("m_IN1", "Hello")).await, 200).await;
    let conversation = only_conversation(&app, &inbox).await;
    assert_eq!(
        identities(&conversation["context"]["customer"]),
        [pair("messenger", "6945981752134245")]
    );

    let sent = reply(&app, &conversation, "Hi! How can we help?").await;
    assert_eq!(sent["provider_message_id"], "m_OUT1");
    let call = fake.last();
    assert_eq!(call.target, "/v20.0/me/messages?access_token=EAAB-page");
    assert_eq!(
        call.body,
        json!({"recipient": {"id": "6945981752134245"}, "messaging_type": "RESPONSE", "message": {"text": "Hi! How can we help?"}})
    );
    let delivery = messenger_event(
        json!({"sender": {"id": "6945981752134245"}, "recipient": {"id": "PAGE_ID"},
        "timestamp": 1_790_000_000_500_i64, "delivery": {"mids": ["m_OUT1"], "watermark": 1_790_000_000_400_i64}}),
    );
    json(meta(&app, &inbox, &delivery).await, 200).await;
    assert_eq!(
        message_status(&app, &conversation, sent["id"].as_str().unwrap()).await,
        "delivered"
    );
    let read = messenger_event(
        json!({"sender": {"id": "6945981752134245"}, "recipient": {"id": "PAGE_ID"},
        "timestamp": 1_790_000_000_600_i64, "read": {"watermark": app.clock.now().millis() + 1}}),
    );
    assert_eq!(json(meta(&app, &inbox, &read).await, 200).await["status_changes"], 1);

    app.clock.advance_seconds(25 * 3600);
    reply(&app, &conversation, "Following up as promised").await;
    let tagged = fake.last().body;
    assert_eq!(
        (tagged["messaging_type"].as_str(), tagged["tag"].as_str()),
        (Some("MESSAGE_TAG"), Some("HUMAN_AGENT"))
    );
    app.clock.advance_seconds(6 * 24 * 3600);
    problem(
        send(&app, &conversation, json!({"text": "Hello?"})).await,
        422,
        "window_closed",
    )
    .await;
    let template = json!({"template": {"name": "t", "params": []}});
    let refused = problem(send(&app, &conversation, template).await, 422, "validation_failed").await;
    assert_eq!(refused["errors"][0]["field"], "template");
}

async fn viber_messages_replies_and_receipts(app: TestApp) {
    let fake =
        Fake::start(json!({"status": 0, "status_message": "ok", "message_token": 5741311803571721087_u64})).await;
    let inbox = viber_inbox(&app, &fake).await;
    let started = json!({"event": "conversation_started", "timestamp": 1_790_000_000_000_i64, "message_token": 1,
        "type": "open", "user": {"id": "01234567890A=", "name": "John McClane"}, "subscribed": false});
    assert_eq!(json(viber(&app, &inbox, &started).await, 200).await["ignored"], 1);
    json(
        viber(
            &app,
            &inbox,
            &viber_message(4912661846655238145, "Is the store open on Sunday?"),
        )
        .await,
        200,
    )
    .await;
    let conversation = only_conversation(&app, &inbox).await;
    let customer = &conversation["context"]["customer"];
    assert_eq!(identities(customer), [pair("viber", "01234567890A=")]);
    assert_eq!(customer["name"], "John McClane");
    assert_eq!(
        conversation["messages"][0]["provider_message_id"],
        "4912661846655238145"
    );

    let sent = reply(&app, &conversation, "Yes, from 10 to 4").await;
    assert_eq!(sent["provider_message_id"], "5741311803571721087");
    let call = fake.last();
    assert_eq!(call.target, "/pa/send_message");
    assert_eq!(call.headers["x-viber-auth-token"], VIBER_TOKEN);
    assert_eq!(call.body["receiver"], "01234567890A=");
    assert_eq!(
        (call.body["type"].as_str(), call.body["text"].as_str()),
        (Some("text"), Some("Yes, from 10 to 4"))
    );
    assert_eq!(call.body["sender"]["name"], "Shop Support");

    for event in ["delivered", "seen"] {
        let receipt = json!({"event": event, "timestamp": 1_790_000_001_000_i64,
            "message_token": 5741311803571721087_u64, "user_id": "01234567890A="});
        assert_eq!(
            json(viber(&app, &inbox, &receipt).await, 200).await["status_changes"],
            1
        );
    }
    assert_eq!(
        message_status(&app, &conversation, sent["id"].as_str().unwrap()).await,
        "read"
    );
}

/// The attack: a stranger sends a known customer's phone number as a Viber contact card, then
/// asks where "their" order is. The number is a claim: the stranger stays a customer of their
/// own, the agent sees the number as unverified, and the bot tells them nothing of the order.
async fn a_shared_contact_is_a_claim_that_makes_nobody_the_customer(app: TestApp) {
    let ann = json!({"name": "Ann Lee", "identities": [{"kind": "email", "value": "ann@example.com"},
                                                       {"kind": "phone", "value": "+4915112345678"}]});
    let ann = json(app.post("/customers", &ann).await, 201).await;
    fixtures::shipped_order(&app, "Ann Lee", "ann@example.com").await;
    let holding = "Let us look into it; an agent answers shortly.";
    let faq = json!({"question": "Where is my order?", "answer": holding, "keywords": ["order", "Bestellung"]});
    json(app.post("/faq-entries", &faq).await, 201).await;
    let fake =
        Fake::start(json!({"status": 0, "status_message": "ok", "message_token": 5741311803571721087_u64})).await;
    let inbox = viber_inbox(&app, &fake).await;

    let contact = json!({"event": "message", "timestamp": 1_790_000_000_000_i64, "message_token": 11,
        "sender": {"id": "attacker-viber-id=", "name": "Ann Lee"},
        "message": {"type": "contact", "contact": {"name": "Ann", "phone_number": "4915112345678"}}});
    json(viber(&app, &inbox, &contact).await, 200).await;
    let mut question = viber_message(12, "Where is my order?");
    question["sender"]["id"] = json!("attacker-viber-id=");
    json(viber(&app, &inbox, &question).await, 200).await;

    let conversation = only_conversation(&app, &inbox).await;
    assert_ne!(conversation["customer_id"], ann["id"], "{conversation}");
    assert_eq!(
        identities(&conversation["context"]["customer"]),
        [pair("viber", "attacker-viber-id=")]
    );
    assert!(
        conversation["context"]["orders"].as_array().is_none_or(Vec::is_empty),
        "{conversation}"
    );
    assert_eq!(conversation["claimed_phone"], "+4915112345678");
    let ann_now = get(&app, &format!("/customers/{}", id(&ann))).await;
    assert_eq!(identities(&ann_now).len(), 2, "{ann_now}");

    let answer = wait_for_call(&fake).await;
    assert_eq!(answer.body["text"], holding, "the order stays untold");
}

/// The provider's first call, once it came.
async fn wait_for_call(fake: &Fake) -> crate::fake_provider::Seen {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(first) = fake.seen().first() {
            return first.clone();
        }
        assert!(std::time::Instant::now() < deadline, "the provider was never called");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The attack: someone who saw one signed call of the custom channel (a log, a proxy) sends
/// it again within the signature's five minutes. Without a message_id to tell it by, the
/// signed time and body name it: stored once. A new call with the same text is a new message.
async fn a_signed_call_replayed_without_a_message_id_is_stored_once(app: TestApp) {
    let fake = Fake::start(json!({"ok": true})).await;
    let inbox = api_inbox(&app, &fake).await;
    let raw = json!({"contact": {"external_id": "u-7"}, "text": "Cancel my order"}).to_string();
    let signature = webhooks::sign(API_SECRET, unix_now(&app), raw.as_bytes());
    let post = |signature: String| {
        app.client
            .post(format!("{}/api/v1/inboxes/{}/messages", app.base, id(&inbox)))
            .header("Omnihub-Signature", signature)
            .body(raw.clone())
            .send()
    };
    assert_eq!(
        json(post(signature.clone()).await.unwrap(), 201).await["duplicate"],
        false
    );
    app.clock.advance_seconds(60);
    let replayed = json(post(signature.clone()).await.unwrap(), 200).await;
    assert_eq!(replayed["duplicate"], true);
    let dressed = format!("{signature},v1=00");
    assert_eq!(json(post(dressed).await.unwrap(), 200).await["duplicate"], true);
    assert_eq!(
        only_conversation(&app, &inbox).await["messages"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let fresh = webhooks::sign(API_SECRET, unix_now(&app), raw.as_bytes());
    json(post(fresh).await.unwrap(), 201).await;
    assert_eq!(
        only_conversation(&app, &inbox).await["messages"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

async fn the_api_channel_posts_and_receives_signed_messages(app: TestApp) {
    let fake = Fake::start(json!({"ok": true})).await;
    let inbox = api_inbox(&app, &fake).await;
    let body = json!({"contact": {"external_id": "u-42", "name": "Kim", "email": "Kim@Example.com"},
                      "text": "Can I change my delivery address?", "message_id": "chat-1"});
    let stored = json(channel_post(&app, &inbox, &body).await, 201).await;
    assert_eq!(stored["duplicate"], false);
    let again = json(channel_post(&app, &inbox, &body).await, 200).await;
    assert_eq!(again["duplicate"], true);

    // An API key with conversations:write may post too; one without it may not.
    let path = format!("/inboxes/{}/messages", id(&inbox));
    let by_key = json!({"contact": {"external_id": "u-42"}, "text": "Hello?"});
    json(app.post(&path, &by_key).await, 201).await;
    let reader = app.key_with(&["conversations:read"]).await;
    let refused = app
        .client
        .post(format!("{}/api/v1{path}", app.base))
        .bearer_auth(reader)
        .json(&by_key)
        .send()
        .await
        .unwrap();
    problem(refused, 403, "forbidden").await;

    let conversation = only_conversation(&app, &inbox).await;
    assert_eq!(conversation["customer_id"], stored["customer_id"]);
    assert_eq!(conversation["messages"].as_array().unwrap().len(), 2);
    let mut held = identities(&conversation["context"]["customer"]);
    held.sort();
    assert_eq!(
        held,
        [
            pair("email", "kim@example.com"),
            pair("external", &format!("{}:u-42", id(&inbox)))
        ]
    );

    let sent = reply(&app, &conversation, "Yes: reply with the new one").await;
    assert_eq!(sent["status"], "sent");
    let call = fake.last();
    assert_eq!(call.target, "/replies");
    let signature = call.headers["omnihub-signature"].to_str().unwrap();
    assert_eq!(
        webhooks::verify(signature, &call.raw, API_SECRET, unix_now(&app), 300),
        Ok(())
    );
    assert_eq!(call.body["message_id"], sent["id"]);
    assert_eq!(call.body["contact"]["external_id"], "u-42");
    assert_eq!(call.body["text"], "Yes: reply with the new one");

    let bad_email = json!({"contact": {"external_id": "u-7", "email": "not-an-address"}, "text": "hi"});
    let invalid = problem(channel_post(&app, &inbox, &bad_email).await, 422, "validation_failed").await;
    assert_eq!(invalid["errors"][0]["field"], "contact.email");
}

async fn bad_signatures_and_replays_change_nothing(app: TestApp) {
    let fake = Fake::start(json!({})).await;
    let telegram_box = telegram_inbox(&app, &fake).await;
    let whatsapp_box = whatsapp_inbox(&app, &fake).await;
    let viber_box = viber_inbox(&app, &fake).await;
    let api_box = api_inbox(&app, &fake).await;
    let update = telegram_update(1, 1, "hi");
    let payload = whatsapp_text("wamid.X", "hi");
    let callback = viber_message(1, "hi");
    let forged = [
        deliver(&app, &telegram_box, &update, &[]).await,
        deliver(
            &app,
            &telegram_box,
            &update,
            &[("X-Telegram-Bot-Api-Secret-Token", "guess".into())],
        )
        .await,
        deliver(&app, &whatsapp_box, &payload, &[]).await,
        deliver(
            &app,
            &whatsapp_box,
            &payload,
            &[("X-Hub-Signature-256", hub_signature("other", b"{}"))],
        )
        .await,
        deliver(
            &app,
            &viber_box,
            &callback,
            &[("X-Viber-Content-Signature", "00".repeat(32))],
        )
        .await,
    ];
    for response in forged {
        problem(response, 401, "invalid_signature").await;
    }
    let api_body = json!({"contact": {"external_id": "u-1"}, "text": "hi"});
    let unsigned = app
        .client
        .post(format!("{}/api/v1/inboxes/{}/messages", app.base, id(&api_box)))
        .json(&api_body)
        .send()
        .await
        .unwrap();
    problem(unsigned, 401, "invalid_signature").await;
    let stale = webhooks::sign(API_SECRET, unix_now(&app) - 3600, api_body.to_string().as_bytes());
    let replayed_later = app
        .client
        .post(format!("{}/api/v1/inboxes/{}/messages", app.base, id(&api_box)))
        .header("Omnihub-Signature", stale)
        .body(api_body.to_string())
        .send()
        .await
        .unwrap();
    problem(replayed_later, 401, "invalid_signature").await;
    let customers = get(&app, "/customers").await;
    assert_eq!(customers["data"], json!([]), "nothing unverified got in");
    assert_eq!(get(&app, "/conversations").await["data"], json!([]));

    // A provider retrying the same message stores it once.
    for _ in 0..3 {
        json(telegram(&app, &telegram_box, &update).await, 200).await;
        json(meta(&app, &whatsapp_box, &payload).await, 200).await;
        json(viber(&app, &viber_box, &callback).await, 200).await;
    }
    let again = json(telegram(&app, &telegram_box, &update).await, 200).await;
    assert_eq!(
        (again["received"].as_i64(), again["duplicates"].as_i64()),
        (Some(0), Some(1))
    );
    for inbox in [&telegram_box, &whatsapp_box, &viber_box] {
        let conversation = only_conversation(&app, inbox).await;
        assert_eq!(conversation["messages"].as_array().unwrap().len(), 1);
    }
    assert_eq!(event_count(&app, "message.received").await, 3);

    // Anything a provider sends that is not understood is acknowledged, never a 5xx.
    let odd = json!({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages",
        "value": {"messages": [{"type": "unsupported", "id": "wamid.U", "from": ANN_WA_ID}]}}]}]});
    assert_eq!(json(meta(&app, &whatsapp_box, &odd).await, 200).await["ignored"], 1);
    let not_json = app
        .client
        .post(telegram_box["webhook_url"].as_str().unwrap())
        .header("X-Telegram-Bot-Api-Secret-Token", TELEGRAM_SECRET)
        .body("not json")
        .send()
        .await
        .unwrap();
    problem(not_json, 400, "malformed_json").await;
    let nowhere = app
        .client
        .post(format!("{}/hooks/inb_unknown", app.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    problem(nowhere, 404, "not_found").await;
}

async fn providers_that_fail_are_retried_then_the_reply_fails(app: TestApp) {
    let busy = json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1",
                      "parameters": {"retry_after": 1}});
    let script = [(500, json!({})), (429, busy.clone())];
    let fake = Fake::scripted(&script, json!({"ok": true, "result": {"message_id": 9}})).await;
    let inbox = telegram_inbox(&app, &fake).await;
    json(telegram(&app, &inbox, &telegram_update(1, 1, "hi")).await, 200).await;
    let conversation = only_conversation(&app, &inbox).await;
    let sent = reply(&app, &conversation, "Hello").await;
    assert_eq!(sent["status"], "sent");
    assert_eq!(fake.seen().len(), 3, "a 500 and a 429 were tried again");

    let failing = Fake::scripted(&vec![(503, json!({})); 10], json!({})).await;
    let broken = telegram_inbox(&app, &failing).await;
    json(telegram(&app, &broken, &telegram_update(1, 1, "hi")).await, 200).await;
    let conversation = only_conversation(&app, &broken).await;
    let failed = reply(&app, &conversation, "Hello").await;
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"].as_str().unwrap().contains("gave up"), "{failed}");
    assert_eq!(failing.seen().len(), 4);

    let refusing = Fake::scripted(
        &[(
            403,
            json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
        )],
        json!({}),
    )
    .await;
    let blocked = telegram_inbox(&app, &refusing).await;
    json(telegram(&app, &blocked, &telegram_update(1, 1, "hi")).await, 200).await;
    let conversation = only_conversation(&app, &blocked).await;
    let refused = reply(&app, &conversation, "Hello").await;
    assert_eq!(
        (refused["status"].as_str(), refused["error"].as_str()),
        (Some("failed"), Some("Forbidden: bot was blocked by the user"))
    );
    assert_eq!(refusing.seen().len(), 1, "a refusal is not retried");
}

// ───────────────────────────── agents' work ─────────────────────────────

async fn conversations_are_assigned_resolved_and_reopened(app: TestApp) {
    let fake = Fake::start(json!({"ok": true, "result": {"message_id": 100}})).await;
    let body = json!({"kind": "telegram", "name": "Bot", "api_base_url": fake.base, "agent_ids": ["ann", "bob"],
                      "credentials": {"bot_token": "1:A", "secret_token": TELEGRAM_SECRET}});
    let inbox = json(app.post("/inboxes", &body).await, 201).await;
    assert_eq!(inbox["agent_ids"], json!(["ann", "bob"]));
    let mut conversations = Vec::new();
    for user in 1..=3 {
        let update = json!({"update_id": user, "message": {"message_id": 1, "date": 1,
            "from": {"id": user, "is_bot": false, "first_name": "U"}, "chat": {"id": user, "type": "private"}, "text": "hi"}});
        json(telegram(&app, &inbox, &update).await, 200).await;
    }
    for conversation in conversations_of(&app, &inbox).await.iter().rev() {
        let path = format!("/conversations/{}", id(conversation));
        let assigned = json(app.patch(&path, &json!({"assignee_id": "auto"})).await, 200).await;
        conversations.push(assigned);
    }
    let assignees: Vec<&str> = conversations
        .iter()
        .map(|c| c["assignee_id"].as_str().unwrap())
        .collect();
    assert_eq!(assignees, ["ann", "bob", "ann"], "round robin over the inbox's agents");
    assert_eq!(event_count(&app, "conversation.assigned").await, 3);
    let bobs = get(&app, "/conversations?assignee_id=bob").await;
    assert_eq!(bobs["data"].as_array().unwrap().len(), 1);

    let first = &conversations[0];
    let path = format!("/conversations/{}", id(first));
    app.clock.advance_seconds(90);
    reply(&app, first, "On it").await;
    app.clock.advance_seconds(30);
    let resolved = json(
        app.patch(
            &path,
            &json!({"status": "resolved", "tags": ["delivery"], "team": "support"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        (
            resolved["first_response_seconds"].as_i64(),
            resolved["resolution_seconds"].as_i64()
        ),
        (Some(90), Some(120))
    );
    assert_eq!(resolved["tags"], json!(["delivery"]));
    assert_eq!(event_count(&app, "conversation.resolved").await, 1);
    let open = get(&app, "/conversations?status=open").await;
    assert_eq!(open["data"].as_array().unwrap().len(), 2);
    let stale = app
        .request(Method::PATCH, &path)
        .header("If-Match", "1")
        .json(&json!({"status": "open"}))
        .send()
        .await
        .unwrap();
    problem(stale, 412, "version_mismatch").await;

    // The customer writing again reopens the conversation; the response clock starts over.
    let user = first["customer_id"].clone();
    let chat = conversations_of(&app, &inbox)
        .await
        .into_iter()
        .find(|c| c["customer_id"] == user)
        .unwrap();
    assert_eq!(chat["status"], "resolved");
    let again = json!({"update_id": 9, "message": {"message_id": 2, "date": 2,
        "from": {"id": 1, "is_bot": false, "first_name": "U"}, "chat": {"id": 1, "type": "private"}, "text": "one more thing"}});
    json(telegram(&app, &inbox, &again).await, 200).await;
    let reopened = get(&app, &path).await;
    assert_eq!(reopened["status"], "open");
    assert_eq!(
        (reopened["resolved_at"].clone(), reopened["first_response_at"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(reopened["tags"], json!(["delivery"]));
}

async fn an_agent_reopening_is_announced_and_resolving_twice_changes_nothing(app: TestApp) {
    let fake = Fake::start(json!({"ok": true, "result": {"message_id": 100}})).await;
    let inbox = telegram_inbox(&app, &fake).await;
    json(telegram(&app, &inbox, &telegram_update(1, 1, "hi")).await, 200).await;
    let conversation = only_conversation(&app, &inbox).await;
    let path = format!("/conversations/{}", id(&conversation));
    let resolved = json(app.patch(&path, &json!({"status": "resolved"})).await, 200).await;
    let (updates, resolutions) = (
        event_count(&app, "conversation.updated").await,
        event_count(&app, "conversation.resolved").await,
    );
    assert_eq!(resolutions, 1);

    let again = json(app.patch(&path, &json!({"status": "resolved"})).await, 200).await;
    assert_eq!(again["version"], resolved["version"], "nothing changed");
    assert_eq!(again["resolved_at"], resolved["resolved_at"]);
    assert_eq!(event_count(&app, "conversation.updated").await, updates);
    assert_eq!(event_count(&app, "conversation.resolved").await, resolutions);

    let reopened = json(app.patch(&path, &json!({"status": "open"})).await, 200).await;
    assert_eq!(reopened["status"], "open");
    assert!(reopened["resolved_at"].is_null());
    let events = get(&app, "/events?types=conversation.reopened").await;
    let events = events["data"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["conversation_id"], conversation["id"]);
    assert_eq!(events[0]["data"]["customer_id"], conversation["customer_id"]);
    assert_eq!(event_count(&app, "conversation.updated").await, updates + 1);
}

async fn the_whole_history_of_a_conversation_pages(app: TestApp) {
    let fake = Fake::start(json!({"ok": true})).await;
    let inbox = api_inbox(&app, &fake).await;
    let path = format!("/inboxes/{}/messages", id(&inbox));
    for n in 0..205 {
        let body = json!({"contact": {"external_id": "u-1"}, "text": format!("message {n}")});
        json(app.post(&path, &body).await, 201).await;
    }
    let conversation = only_conversation(&app, &inbox).await;
    assert_eq!(conversation["messages"].as_array().unwrap().len(), 200, "the latest");

    let messages = format!("/conversations/{}/messages", id(&conversation));
    let mut texts = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let query = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let page = get(&app, &format!("{messages}?limit=100{query}")).await;
        pages += 1;
        for message in page["data"].as_array().unwrap() {
            texts.push(message["text"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..205).map(|n| format!("message {n}")).collect();
    assert_eq!(texts, expected, "every message once, oldest first");
    let first = get(&app, &messages).await;
    assert_eq!(first["data"].as_array().unwrap().len(), 50, "50 by default");

    problem(
        app.get(&format!("{messages}?limit=501")).await,
        422,
        "validation_failed",
    )
    .await;
    problem(
        app.get(&format!("{messages}?cursor=%%%")).await,
        422,
        "validation_failed",
    )
    .await;
    problem(app.get("/conversations/cnv_missing/messages").await, 404, "not_found").await;
    let document = app.openapi().await;
    assert!(document["paths"]["/api/v1/conversations/{id}/messages"]["get"].is_object());
}

async fn every_shared_secret_has_sixteen_characters_at_least(app: TestApp) {
    let short = "0123456789abcde";
    for (kind, credentials, field) in [
        (
            "telegram",
            json!({"bot_token": "1:A", "secret_token": "s"}),
            "secret_token",
        ),
        (
            "whatsapp",
            json!({"access_token": "EAAG", "phone_number_id": "1", "app_secret": short,
                            "verify_token": "wa-verify-0123456789"}),
            "app_secret",
        ),
        (
            "messenger",
            json!({"page_access_token": "EAAG", "page_id": "1", "app_secret": APP_SECRET,
                             "verify_token": short}),
            "verify_token",
        ),
        ("viber", json!({"auth_token": short}), "auth_token"),
        (
            "email",
            json!({"smtp_url": "smtp://mail.example.org", "from_address": "shop@example.org",
                         "inbound_secret": "s"}),
            "inbound_secret",
        ),
        (
            "api",
            json!({"webhook_url": "https://example.org/replies", "secret": short}),
            "secret",
        ),
    ] {
        let body = json!({"kind": kind, "name": "Short", "credentials": credentials});
        let refused = problem(app.post("/inboxes", &body).await, 422, "validation_failed").await;
        assert_eq!(
            refused["errors"][0]["field"],
            format!("credentials.{field}"),
            "{kind}: {refused}"
        );
        assert_eq!(refused["errors"][0]["code"], "too_short", "{kind}");
    }
    assert!(get(&app, "/inboxes").await["data"].as_array().unwrap().is_empty());
}

async fn an_inbox_is_changed_and_its_credentials_replaced(app: TestApp) {
    let fake = Fake::start(json!({"ok": true, "result": {"message_id": 100}})).await;
    let created = telegram_inbox(&app, &fake).await;
    let path = format!("/inboxes/{}", id(&created));
    let warehouse = fixtures::location(&app, "Warehouse", "warehouse").await;
    let web = fixtures::channel(&app, "Web", "web", &[id(&warehouse)]).await;

    let change = json!({"name": "Shop bot", "agent_ids": ["ann", "bob"], "sales_channel_id": id(&web)});
    let changed = json(app.patch(&path, &change).await, 200).await;
    assert_eq!(
        (
            &changed["name"],
            &changed["agent_ids"],
            &changed["sales_channel_id"],
            &changed["kind"]
        ),
        (
            &json!("Shop bot"),
            &json!(["ann", "bob"]),
            &json!(id(&web)),
            &json!("telegram")
        )
    );
    assert_eq!(changed["version"], created["version"].as_i64().unwrap() + 1);
    assert_eq!(changed["webhook_url"], created["webhook_url"]);
    assert_eq!(get(&app, &path).await["name"], "Shop bot");

    let stale = app
        .request(Method::PATCH, &path)
        .header("If-Match", created["version"].to_string())
        .json(&json!({"name": "Late"}))
        .send()
        .await
        .unwrap();
    problem(stale, 412, "version_mismatch").await;
    let partial = json!({"credentials": {"secret_token": "new-secret_0123456789"}});
    let refused = problem(app.patch(&path, &partial).await, 422, "validation_failed").await;
    assert_eq!(
        refused["errors"][0]["field"], "credentials",
        "credentials are replaced whole"
    );
    let short = json!({"credentials": {"bot_token": "123456:ABC-DEF", "secret_token": "short"}});
    let refused = problem(app.patch(&path, &short).await, 422, "validation_failed").await;
    assert_eq!(refused["errors"][0]["code"], "too_short");
    problem(
        app.patch(&path, &json!({"kind": "viber"})).await,
        422,
        "validation_failed",
    )
    .await;
    let nowhere = json!({"sales_channel_id": "chn_missing"});
    problem(app.patch(&path, &nowhere).await, 422, "validation_failed").await;
    problem(
        app.patch("/inboxes/inb_missing", &json!({"name": "X"})).await,
        404,
        "not_found",
    )
    .await;

    // New credentials are sealed anew: the old secret no longer opens the webhook.
    let replaced = json!({"credentials": {"bot_token": "123456:ABC-DEF", "secret_token": "new-secret_0123456789"},
                          "sales_channel_id": null});
    let after = json(app.patch(&path, &replaced).await, 200).await;
    assert!(
        after.get("credentials").is_none() && after["sales_channel_id"].is_null(),
        "{after}"
    );
    let sealed = stored_credentials(&app, id(&created)).await;
    assert!(sealed.starts_with("v1:") && !sealed.contains("new-secret"), "{sealed}");
    let update = telegram_update(1, 1, "hi");
    problem(telegram(&app, &created, &update).await, 401, "invalid_signature").await;
    let fresh = ("X-Telegram-Bot-Api-Secret-Token", "new-secret_0123456789".to_owned());
    let taken = json(deliver(&app, &created, &update, &[fresh]).await, 200).await;
    assert_eq!(taken["received"], 1);

    let events = get(&app, "/events?types=inbox.updated").await;
    assert_eq!(events["data"].as_array().unwrap().len(), 2);
    assert!(!events.to_string().contains("new-secret"), "{events}");
}

async fn notes_and_canned_replies(app: TestApp) {
    let fake = Fake::start(json!({"ok": true, "result": {"message_id": 5}})).await;
    let inbox = telegram_inbox(&app, &fake).await;
    json(
        telegram(&app, &inbox, &telegram_update(1, 1, "When are you open?")).await,
        200,
    )
    .await;
    let conversation = only_conversation(&app, &inbox).await;

    let note = json(
        send(&app, &conversation, json!({"note": "Regular customer, be nice"})).await,
        201,
    )
    .await;
    assert_eq!(
        (note["private"].as_bool(), note["status"].clone()),
        (Some(true), Value::Null)
    );
    assert!(fake.seen().is_empty(), "a note never reaches the customer");

    let canned = json!({"short_code": "hours", "text": "We are open 9 to 6, Monday to Saturday."});
    json(app.post("/canned-replies", &canned).await, 201).await;
    problem(app.post("/canned-replies", &canned).await, 409, "conflict").await;
    let listed = get(&app, "/canned-replies").await;
    assert_eq!(listed["data"][0]["short_code"], "hours");
    let sent = json(send(&app, &conversation, json!({"canned": "hours"})).await, 201).await;
    assert_eq!(sent["text"], "We are open 9 to 6, Monday to Saturday.");
    assert_eq!(fake.last().body["text"], "We are open 9 to 6, Monday to Saturday.");
    let unknown = problem(
        send(&app, &conversation, json!({"canned": "nope"})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(unknown["errors"][0]["field"], "canned");
    problem(
        send(&app, &conversation, json!({"text": "a", "note": "b"})).await,
        422,
        "validation_failed",
    )
    .await;
    let reader = app.key_with(&["conversations:read"]).await;
    let forbidden = app
        .client
        .post(format!(
            "{}/api/v1/conversations/{}/messages",
            app.base,
            id(&conversation)
        ))
        .bearer_auth(reader)
        .json(&json!({"text": "x"}))
        .send()
        .await
        .unwrap();
    problem(forbidden, 403, "forbidden").await;
    let shown = get(&app, &format!("/conversations/{}", id(&conversation))).await;
    assert_eq!(shown["messages"].as_array().unwrap().len(), 3);
}

// ───────────────────────────── one customer everywhere ─────────────────────────────

async fn one_customer_across_whatsapp_and_the_api_channel_with_their_cart_and_orders(app: TestApp) {
    let fake = Fake::start(json!({"messages": [{"id": "wamid.OUT"}], "ok": true})).await;
    let whatsapp_box = whatsapp_inbox(&app, &fake).await;
    let api_box = api_inbox(&app, &fake).await;
    json(
        meta(
            &app,
            &whatsapp_box,
            &whatsapp_text("wamid.IN1", "Is my order on its way?"),
        )
        .await,
        200,
    )
    .await;
    let chat = json!({"contact": {"external_id": "web-77", "name": "Ann Lee", "phone": "0151 12345678",
                                  "email": "ann@example.com"}, "text": "Also: can I add a scarf?"});
    let posted = json(channel_post(&app, &api_box, &chat).await, 201).await;
    let on_whatsapp = only_conversation(&app, &whatsapp_box).await;
    let customer_id = on_whatsapp["customer_id"].as_str().unwrap();
    assert_eq!(posted["customer_id"], customer_id, "the same phone is the same person");

    // The web shop's cart and a store purchase of the same customer.
    let store = fixtures::location(&app, "Berlin", "store").await;
    let web = fixtures::channel(&app, "Web", "web", &[id(&store)]).await;
    let cart = json!({"channel_id": id(&web), "customer_id": customer_id});
    let cart = json(app.post("/carts", &cart).await, 201).await;
    fixtures::product(&app, "Scarf", &["SCARF-1"], 1900).await;
    let stock = json!({"sku": "SCARF-1", "location_id": id(&store), "delta": 3, "reason": "receipt"});
    json(app.post("/inventory/adjustments", &stock).await, 200).await;
    let pos = fixtures::channel(&app, "Till", "pos", &[id(&store)]).await;
    let sale = json!({"channel_id": id(&pos), "external_id": "TILL-1", "lines": [{"sku": "SCARF-1", "quantity": 1,
        "unit_price": {"amount": 1900, "currency": "EUR"}}], "fulfillment": {"method": "pickup"},
        "customer": {"identities": [{"kind": "email", "value": "ANN@example.com"}]}});
    let order = json(app.post("/orders", &sale).await, 201).await;

    let seen = only_conversation(&app, &whatsapp_box).await;
    let context = &seen["context"];
    assert_eq!(context["customer"]["id"], customer_id);
    let held = identities(&context["customer"]);
    for expected in [
        pair("phone", "+4915112345678"),
        pair("email", "ann@example.com"),
        pair("external", &format!("{}:web-77", id(&api_box))),
    ] {
        assert!(held.contains(&expected), "{held:?} lacks {expected:?}");
    }
    assert_eq!(context["cart"]["id"], cart["id"], "the cart left on the website");
    assert_eq!(context["orders"][0]["id"], order["id"]);
    assert_eq!(context["orders"][0]["status"], "completed");
    assert_eq!(context["orders"][0]["fulfillments"][0]["status"], "collected");
    let kinds: Vec<&str> = context["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["inbox_kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["api", "whatsapp"], "both conversations, newest first");
    let by_customer = get(&app, &format!("/conversations?customer_id={customer_id}")).await;
    assert_eq!(by_customer["data"].as_array().unwrap().len(), 2);
    let timeline = get(&app, &format!("/customers/{customer_id}/timeline")).await;
    let entries = types(&timeline);
    assert!(
        entries.contains(&"message.received") && entries.contains(&"conversation.created"),
        "{entries:?}"
    );
}

async fn a_merge_moves_conversations(app: TestApp) {
    let fake = Fake::start(json!({})).await;
    let telegram_box = telegram_inbox(&app, &fake).await;
    let viber_box = viber_inbox(&app, &fake).await;
    json(telegram(&app, &telegram_box, &telegram_update(1, 1, "hi")).await, 200).await;
    json(viber(&app, &viber_box, &viber_message(7, "hello")).await, 200).await;
    let on_telegram = only_conversation(&app, &telegram_box).await;
    let on_viber = only_conversation(&app, &viber_box).await;
    assert_ne!(on_telegram["customer_id"], on_viber["customer_id"]);
    let survivor = on_telegram["customer_id"].as_str().unwrap();
    let merge = json!({"customer_id": on_viber["customer_id"]});
    let merged = json(app.post(&format!("/customers/{survivor}/merge"), &merge).await, 200).await;
    assert_eq!(merged["id"], survivor);
    let theirs = get(&app, &format!("/conversations?customer_id={survivor}")).await;
    assert_eq!(theirs["data"].as_array().unwrap().len(), 2);
    // Later messages on Viber land in the same, moved conversation.
    json(viber(&app, &viber_box, &viber_message(8, "still me")).await, 200).await;
    let moved = only_conversation(&app, &viber_box).await;
    assert_eq!(moved["customer_id"], survivor);
    assert_eq!(moved["messages"].as_array().unwrap().len(), 2);

    // Erasure takes the messages' words and the provider's id of the person with it.
    let erased = app.delete(&format!("/customers/{survivor}")).await;
    assert_eq!(erased.status(), 204);
    let kept = get(&app, &format!("/conversations/{}", id(&moved))).await;
    assert!(
        kept["messages"].as_array().unwrap().iter().all(|m| m["text"].is_null()),
        "{kept}"
    );
    json(viber(&app, &viber_box, &viber_message(9, "new")).await, 200).await;
    assert_eq!(
        conversations_of(&app, &viber_box).await.len(),
        2,
        "a new message starts afresh"
    );
}

async fn no_reply_goes_out_once_the_customer_was_erased(app: TestApp) {
    let fake =
        Fake::start(json!({"status": 0, "status_message": "ok", "message_token": 5741311803571721087_u64})).await;
    let viber_box = viber_inbox(&app, &fake).await;
    json(viber(&app, &viber_box, &viber_message(7, "hello")).await, 200).await;
    let conversation = only_conversation(&app, &viber_box).await;
    let customer = conversation["customer_id"].as_str().unwrap();
    let erased = app.delete(&format!("/customers/{customer}")).await;
    assert_eq!(erased.status(), 204);
    let calls = fake.seen().len();

    let path = format!("/conversations/{}/messages", id(&conversation));
    let refused = problem(app.post(&path, &json!({"text": "Still there?"})).await, 409, "conflict").await;
    assert!(refused["detail"].as_str().unwrap().contains("erased"), "{refused}");
    assert_eq!(fake.seen().len(), calls, "nothing reached the provider");
    let kept = get(&app, &format!("/conversations/{}", id(&conversation))).await;
    assert_eq!(kept["messages"].as_array().unwrap().len(), 1, "nothing queued: {kept}");
}

// ───────────────────────────── inboxes ─────────────────────────────

async fn each_inbox_names_the_url_that_takes_its_messages(app: TestApp) {
    let fake = Fake::start(json!({"ok": true})).await;
    let api = api_inbox(&app, &fake).await;
    let url = api["webhook_url"].as_str().unwrap();
    assert!(
        url.ends_with(&format!("/api/v1/inboxes/{}/messages", id(&api))),
        "{url}"
    );
    let raw = json!({"contact": {"external_id": "u-7"}, "text": "Hello"}).to_string();
    let signature = webhooks::sign(API_SECRET, unix_now(&app), raw.as_bytes());
    let posted = app
        .client
        .post(url)
        .header("Omnihub-Signature", signature)
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(json(posted, 201).await["duplicate"], false);
    assert_eq!(conversations_of(&app, &api).await.len(), 1);

    let telegram_box = telegram_inbox(&app, &fake).await;
    let hook = telegram_box["webhook_url"].as_str().unwrap();
    assert!(hook.ends_with(&format!("/hooks/{}", id(&telegram_box))), "{hook}");

    let webchat = inbox(&app, "webchat", json!({}), None).await;
    assert!(
        webchat["webhook_url"].is_null(),
        "the widget registers nothing: {webchat}"
    );
    let listed = get(&app, "/inboxes").await;
    let shown: Vec<&Value> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["webhook_url"])
        .collect();
    assert_eq!(shown, [&api["webhook_url"], &telegram_box["webhook_url"], &Value::Null]);
}

async fn inboxes_are_checked_and_never_show_credentials(app: TestApp) {
    let fake = Fake::start(json!({})).await;
    let created = whatsapp_inbox(&app, &fake).await;
    assert!(created.get("credentials").is_none());
    let listed = get(&app, "/inboxes").await;
    let text = listed.to_string();
    assert!(!text.contains("EAAG-token") && !text.contains(APP_SECRET), "{text}");
    assert_eq!(listed["data"][0]["webhook_url"], created["webhook_url"]);
    let one = get(&app, &format!("/inboxes/{}", id(&created))).await;
    assert_eq!(one["kind"], "whatsapp");
    assert_eq!(one["api_base_url"], fake.base);

    // Sealed at rest: the database holds no token in the clear.
    let sealed = stored_credentials(&app, id(&created)).await;
    assert!(sealed.starts_with("v1:") && !sealed.contains("EAAG"), "{sealed}");

    let missing = json!({"kind": "telegram", "name": "Bot", "credentials": {"bot_token": "1:A"}});
    let refused = problem(app.post("/inboxes", &missing).await, 422, "validation_failed").await;
    assert_eq!(refused["errors"][0]["field"], "credentials");
    let email = json!({"kind": "email", "name": "Mail", "credentials": {"smtp_url": "https://x", "from_address": "a@b.c",
                                                                        "inbound_secret": "s"}});
    let bad_smtp = problem(app.post("/inboxes", &email).await, 422, "validation_failed").await;
    assert_eq!(bad_smtp["errors"][0]["field"], "credentials.smtp_url");
    let bad_channel =
        json!({"kind": "viber", "name": "V", "credentials": {"auth_token": "t"}, "sales_channel_id": "chn_x"});
    problem(app.post("/inboxes", &bad_channel).await, 422, "validation_failed").await;
    let reader = app.key_with(&["customers:read"]).await;
    let forbidden = app
        .client
        .get(format!("{}/api/v1/inboxes", app.base))
        .bearer_auth(reader)
        .send()
        .await
        .unwrap();
    problem(forbidden, 403, "forbidden").await;

    let document = app.openapi().await;
    for path in [
        "/hooks/{inbox_id}",
        "/api/v1/inboxes",
        "/api/v1/conversations/{id}/messages",
        "/api/v1/inboxes/{id}/messages",
    ] {
        assert!(document["paths"].get(path).is_some(), "{path} is documented");
    }
}

/// The credentials column as the database holds it.
async fn stored_credentials(app: &TestApp, inbox_id: &str) -> String {
    let row = app
        .store()
        .db()
        .fetch_optional(omnihub_store::db::sql("SELECT credentials FROM inboxes WHERE id = $1").bind(inbox_id))
        .await
        .unwrap()
        .unwrap();
    row.text("credentials").unwrap()
}
