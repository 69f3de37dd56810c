//! Each provider's webhook payload, read into one shape: a message from a customer, a receipt
//! for a message sent to one, or something acknowledged and ignored.
//!
//! Payloads are walked as JSON rather than decoded into fixed types: providers add fields and
//! update types all the time, and anything not understood must be ignored (answered 200 so the
//! provider stops retrying), never refused.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{InboxKind, identity_kind};
use crate::Timestamp;
use crate::customers::{Identity, IdentityKind, Region, normalize};
use crate::validation::{Check, Invalid, has_nul, without_nul};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Message(InboundMessage),
    Receipt(Receipt),
    Ignored(Ignored),
}

/// A message a customer wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// The provider's id for the message: a retried delivery carries the same one.
    pub provider_message_id: String,
    /// Where replies go: the chat, number or user id the provider knows the customer by.
    pub address: String,
    /// Who wrote, to find the customer by; the channel's own identity first.
    pub identities: Vec<Identity>,
    pub name: Option<String>,
    /// The text, or the title of the button pressed; `None` for media without a caption.
    pub text: Option<String>,
    pub at: Option<Timestamp>,
    /// An e-mail the sender gave without proof (the web chat): kept on the conversation for
    /// an agent to confirm, never used to find the customer.
    pub claimed_email: Option<String>,
    /// A phone number the sender shared without the provider vouching that it is theirs (a
    /// Viber contact card): kept like `claimed_email`, never used to find the customer.
    pub claimed_phone: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    Sent,
    Delivered,
    Read,
    Failed,
}

/// Which sent messages a receipt is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptTarget {
    /// One message, by the provider's id.
    Message(String),
    /// Every message sent to `address` before `before` (Messenger's watermarks).
    UpTo { address: String, before: Timestamp },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub target: ReceiptTarget,
    pub status: ReceiptStatus,
    pub at: Option<Timestamp>,
    /// The provider's reason, for `failed`.
    pub error: Option<String>,
}

/// An update that needs no action, named for the logs (`telegram edited_message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored(pub String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the body is not JSON: {0}")]
pub struct NotJson(String);

/// Everything a webhook call of an inbox of `kind` carries; Meta batches several.
pub fn parse(kind: InboxKind, body: &[u8]) -> Result<Vec<Inbound>, NotJson> {
    let mut payload: Value = serde_json::from_slice(body).map_err(|e| NotJson(e.to_string()))?;
    // A provider's message is kept rather than refused (it would only come again): a NUL,
    // which no text of the hub may hold, becomes U+FFFD.
    scrub_nul(&mut payload);
    let read = match kind {
        InboxKind::Telegram => telegram(&payload),
        InboxKind::Whatsapp => whatsapp(&payload),
        InboxKind::Messenger | InboxKind::Instagram => messenger(kind, &payload),
        InboxKind::Viber => viber(&payload),
        InboxKind::Email | InboxKind::Webchat | InboxKind::Api => Vec::new(),
    };
    if read.is_empty() {
        return Ok(vec![ignored(kind.as_str(), "update")]);
    }
    Ok(read)
}

fn scrub_nul(value: &mut Value) {
    match value {
        Value::String(text) => without_nul(text),
        Value::Array(items) => items.iter_mut().for_each(scrub_nul),
        Value::Object(fields) => {
            if fields.keys().any(|key| has_nul(key)) {
                *fields = std::mem::take(fields)
                    .into_iter()
                    .map(|(mut key, value)| {
                        without_nul(&mut key);
                        (key, value)
                    })
                    .collect();
            }
            fields.values_mut().for_each(scrub_nul);
        }
        _ => {}
    }
}

impl InboundMessage {
    /// The message with every NUL replaced (see [`parse`]): a mail relay's raw MIME may hold
    /// one anywhere.
    pub fn without_nul(mut self) -> InboundMessage {
        without_nul(&mut self.provider_message_id);
        without_nul(&mut self.address);
        self.identities.iter_mut().for_each(|i| without_nul(&mut i.value));
        for text in [&mut self.name, &mut self.text, &mut self.claimed_email]
            .into_iter()
            .flatten()
        {
            without_nul(text);
        }
        self
    }
}

fn ignored(provider: &str, what: &str) -> Inbound {
    Inbound::Ignored(Ignored(format!("{provider} {what}")))
}

/// A provider id given as a number or a string (Telegram's chat ids are numbers, Viber's
/// message tokens are numbers beyond 2^53 that must keep every digit).
fn id_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn text_at(value: &Value, pointer: &str) -> Option<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

fn seconds(value: Option<&Value>) -> Option<Timestamp> {
    let seconds = match value? {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.parse().ok()?,
        _ => return None,
    };
    Some(Timestamp(seconds.checked_mul(1000)?))
}

fn millis(value: Option<&Value>) -> Option<Timestamp> {
    value?.as_i64().map(Timestamp)
}

fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value.get(key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// A number as shared by a messenger: digits alone are international (Telegram and Viber
/// leave out the `+`).
fn shared_phone(raw: &str) -> Identity {
    let raw = raw.trim();
    let value = if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) && !raw.starts_with('0') {
        format!("+{raw}")
    } else {
        raw.to_owned()
    };
    Identity::new(IdentityKind::Phone, value)
}

fn full_name(first: Option<String>, last: Option<String>) -> Option<String> {
    match (first, last) {
        (Some(first), Some(last)) => Some(format!("{first} {last}")),
        (first, last) => first.or(last),
    }
}

// ───────────────────────────── Telegram ─────────────────────────────

/// A Bot API `Update`: a `message` or an inline button's `callback_query`; other update types
/// (edits, channel posts, polls …) are ignored.
fn telegram(update: &Value) -> Vec<Inbound> {
    if let Some(message) = update.get("message") {
        return vec![telegram_message(message)];
    }
    if let Some(callback) = update.get("callback_query") {
        return vec![telegram_callback(callback)];
    }
    let kind = update
        .as_object()
        .and_then(|fields| fields.keys().find(|k| *k != "update_id").cloned())
        .unwrap_or_else(|| "update".into());
    vec![ignored("telegram", &kind)]
}

fn telegram_message(message: &Value) -> Inbound {
    let chat = id_text(message.pointer("/chat/id"));
    let number = id_text(message.get("message_id"));
    let from = id_text(message.pointer("/from/id"));
    let (Some(chat), Some(number), Some(from)) = (chat, number, from) else {
        return ignored("telegram", "message without a sender");
    };
    if message.pointer("/from/is_bot").and_then(Value::as_bool) == Some(true) {
        return ignored("telegram", "message from a bot");
    }
    let mut identities = vec![Identity::new(IdentityKind::Telegram, from.clone())];
    // A contact is the customer's own number only when Telegram says it belongs to them.
    let own_contact = id_text(message.pointer("/contact/user_id")).as_deref() == Some(from.as_str());
    if own_contact && let Some(phone) = text_at(message, "/contact/phone_number") {
        identities.push(shared_phone(&phone));
    }
    Inbound::Message(InboundMessage {
        // message_id counts per chat.
        provider_message_id: format!("{chat}:{number}"),
        address: chat,
        identities,
        name: full_name(
            text_at(message, "/from/first_name"),
            text_at(message, "/from/last_name"),
        ),
        text: text_at(message, "/text").or_else(|| text_at(message, "/caption")),
        at: seconds(message.get("date")),
        claimed_email: None,
        claimed_phone: None,
    })
}

fn telegram_callback(callback: &Value) -> Inbound {
    let id = id_text(callback.get("id"));
    let from = id_text(callback.pointer("/from/id"));
    let (Some(id), Some(from)) = (id, from) else {
        return ignored("telegram", "callback_query without a sender");
    };
    let chat = id_text(callback.pointer("/message/chat/id")).unwrap_or_else(|| from.clone());
    Inbound::Message(InboundMessage {
        provider_message_id: format!("callback:{id}"),
        address: chat,
        identities: vec![Identity::new(IdentityKind::Telegram, from)],
        name: full_name(
            text_at(callback, "/from/first_name"),
            text_at(callback, "/from/last_name"),
        ),
        text: text_at(callback, "/data"),
        at: None,
        claimed_email: None,
        claimed_phone: None,
    })
}

// ───────────────────────────── WhatsApp ─────────────────────────────

/// A Cloud API notification: `entry[].changes[].value` with `messages` (and the senders'
/// `contacts`) or `statuses`.
fn whatsapp(payload: &Value) -> Vec<Inbound> {
    let mut read = Vec::new();
    for entry in array(payload, "entry") {
        for change in array(entry, "changes") {
            if change.get("field").and_then(Value::as_str) != Some("messages") {
                read.push(ignored("whatsapp", "change of another field"));
                continue;
            }
            let value = change.get("value").unwrap_or(&Value::Null);
            for message in array(value, "messages") {
                read.push(whatsapp_message(message, array(value, "contacts")));
            }
            read.extend(array(value, "statuses").iter().map(whatsapp_status));
        }
    }
    read
}

fn whatsapp_message(message: &Value, contacts: &[Value]) -> Inbound {
    let (Some(id), Some(from)) = (id_text(message.get("id")), id_text(message.get("from"))) else {
        return ignored("whatsapp", "message without a sender");
    };
    let kind = message.get("type").and_then(Value::as_str).unwrap_or_default();
    let text = match kind {
        "text" => text_at(message, "/text/body"),
        "interactive" => text_at(message, "/interactive/button_reply/title")
            .or_else(|| text_at(message, "/interactive/list_reply/title")),
        "button" => text_at(message, "/button/text"),
        "image" | "video" | "document" | "audio" | "sticker" | "location" | "contacts" => {
            text_at(message, &format!("/{kind}/caption"))
        }
        other => return ignored("whatsapp", &format!("{other} message")),
    };
    let name = contacts
        .iter()
        .find(|c| id_text(c.get("wa_id")).as_deref() == Some(from.as_str()))
        .and_then(|c| text_at(c, "/profile/name"));
    Inbound::Message(InboundMessage {
        provider_message_id: id,
        identities: vec![Identity::new(IdentityKind::Whatsapp, from.clone())],
        address: from,
        name,
        text,
        at: seconds(message.get("timestamp")),
        claimed_email: None,
        claimed_phone: None,
    })
}

fn whatsapp_status(status: &Value) -> Inbound {
    let state = match status.get("status").and_then(Value::as_str) {
        Some("sent") => ReceiptStatus::Sent,
        Some("delivered") => ReceiptStatus::Delivered,
        Some("read") => ReceiptStatus::Read,
        Some("failed") => ReceiptStatus::Failed,
        _ => return ignored("whatsapp", "status"),
    };
    let Some(id) = id_text(status.get("id")) else {
        return ignored("whatsapp", "status without a message id");
    };
    let error = status.pointer("/errors/0").map(|e| {
        let code = id_text(e.get("code")).unwrap_or_default();
        let title = text_at(e, "/title").unwrap_or_default();
        format!("{code} {title}").trim().to_owned()
    });
    Inbound::Receipt(Receipt {
        target: ReceiptTarget::Message(id),
        status: state,
        at: seconds(status.get("timestamp")),
        error,
    })
}

// ───────────────────────────── Messenger, Instagram ─────────────────────────────

/// A Messenger Platform notification: `entry[].messaging[]` events with a `message`, a
/// `postback`, a `delivery` or a `read`.
fn messenger(kind: InboxKind, payload: &Value) -> Vec<Inbound> {
    array(payload, "entry")
        .iter()
        .flat_map(|entry| array(entry, "messaging"))
        .flat_map(|event| messenger_event(kind, event))
        .collect()
}

fn messenger_event(kind: InboxKind, event: &Value) -> Vec<Inbound> {
    let provider = kind.as_str();
    let Some(sender) = id_text(event.pointer("/sender/id")) else {
        return vec![ignored(provider, "event without a sender")];
    };
    let at = millis(event.get("timestamp"));
    if let Some(message) = event.get("message") {
        return vec![messenger_message(kind, &sender, message, at)];
    }
    if let Some(postback) = event.get("postback") {
        return vec![messenger_postback(kind, &sender, postback, event)];
    }
    if let Some(delivery) = event.get("delivery") {
        return watermarked(&sender, delivery, ReceiptStatus::Delivered, at);
    }
    if let Some(read) = event.get("read") {
        return watermarked(&sender, read, ReceiptStatus::Read, at);
    }
    vec![ignored(provider, "event")]
}

fn messenger_message(kind: InboxKind, sender: &str, message: &Value, at: Option<Timestamp>) -> Inbound {
    // Echoes are the page's own messages coming back.
    if message.get("is_echo").and_then(Value::as_bool) == Some(true) {
        return ignored(kind.as_str(), "echo");
    }
    let Some(mid) = id_text(message.get("mid")) else {
        return ignored(kind.as_str(), "message without an id");
    };
    Inbound::Message(InboundMessage {
        provider_message_id: mid,
        address: sender.to_owned(),
        identities: vec![Identity::new(identity_kind(kind), sender)],
        name: None,
        text: text_at(message, "/text"),
        at,
        claimed_email: None,
        claimed_phone: None,
    })
}

/// A button the customer pressed. Older postbacks have no `mid`: the sender and time name it.
fn messenger_postback(kind: InboxKind, sender: &str, postback: &Value, event: &Value) -> Inbound {
    let time = id_text(event.get("timestamp")).unwrap_or_default();
    let id = id_text(postback.get("mid")).unwrap_or_else(|| format!("postback:{sender}:{time}"));
    Inbound::Message(InboundMessage {
        provider_message_id: id,
        address: sender.to_owned(),
        identities: vec![Identity::new(identity_kind(kind), sender)],
        name: None,
        text: text_at(postback, "/title").or_else(|| text_at(postback, "/payload")),
        at: millis(event.get("timestamp")),
        claimed_email: None,
        claimed_phone: None,
    })
}

/// A delivery or read receipt: for the messages it names (`mids`, Instagram's `mid`), or for
/// everything sent to the customer before its `watermark`.
fn watermarked(sender: &str, receipt: &Value, status: ReceiptStatus, at: Option<Timestamp>) -> Vec<Inbound> {
    let mut mids: Vec<String> = array(receipt, "mids").iter().filter_map(|m| id_text(Some(m))).collect();
    mids.extend(id_text(receipt.get("mid")));
    let receipt_for = |target| {
        Inbound::Receipt(Receipt {
            target,
            status,
            at,
            error: None,
        })
    };
    if !mids.is_empty() {
        return mids
            .into_iter()
            .map(|mid| receipt_for(ReceiptTarget::Message(mid)))
            .collect();
    }
    match millis(receipt.get("watermark")) {
        Some(before) => vec![receipt_for(ReceiptTarget::UpTo {
            address: sender.to_owned(),
            before,
        })],
        None => vec![ignored("messenger", "receipt without messages")],
    }
}

// ───────────────────────────── Viber ─────────────────────────────

/// A Viber REST bot callback, by its `event`.
fn viber(callback: &Value) -> Vec<Inbound> {
    let event = callback.get("event").and_then(Value::as_str).unwrap_or_default();
    let status = match event {
        "message" => return vec![viber_message(callback)],
        "delivered" => ReceiptStatus::Delivered,
        "seen" => ReceiptStatus::Read,
        "failed" => ReceiptStatus::Failed,
        // Opening the chat, (un)subscribing and the set-up call need no answer but 200.
        other => return vec![ignored("viber", other)],
    };
    let Some(token) = id_text(callback.get("message_token")) else {
        return vec![ignored("viber", "receipt without a message token")];
    };
    vec![Inbound::Receipt(Receipt {
        target: ReceiptTarget::Message(token),
        status,
        at: millis(callback.get("timestamp")),
        error: text_at(callback, "/desc"),
    })]
}

fn viber_message(callback: &Value) -> Inbound {
    let token = id_text(callback.get("message_token"));
    let sender = id_text(callback.pointer("/sender/id"));
    let (Some(token), Some(sender)) = (token, sender) else {
        return ignored("viber", "message without a sender");
    };
    // A contact card carries any number the sender typed or picked, theirs or another's:
    // Viber does not say whose it is, so it is a claim, never an identity.
    let claimed_phone = text_at(callback, "/message/contact/phone_number").map(|p| shared_phone(&p).value);
    Inbound::Message(InboundMessage {
        provider_message_id: token,
        address: sender.clone(),
        identities: vec![Identity::new(IdentityKind::Viber, sender)],
        name: text_at(callback, "/sender/name"),
        text: text_at(callback, "/message/text"),
        at: millis(callback.get("timestamp")),
        claimed_email: None,
        claimed_phone,
    })
}

// ───────────────────────────── the open API channel ─────────────────────────────

/// A message posted to `POST /inboxes/{id}/messages` by a custom channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApiMessage {
    pub contact: ApiContact,
    pub text: String,
    /// The channel's own id of the message: a retry with the same id is stored once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApiContact {
    /// The channel's id of the person; replies are addressed to it.
    pub external_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

impl ApiMessage {
    /// The message as any provider's would read. External ids are only unique within one
    /// channel, so the identity is scoped by the inbox; `fresh_id` names a message that came
    /// without an id of its own. The contact's e-mail and phone must be real ones: a custom
    /// channel can correct them, unlike a provider.
    pub fn validate(&self, inbox_id: &str, fresh_id: String, region: Region) -> Result<InboundMessage, Invalid> {
        let mut check = Check::new();
        check.text("contact.external_id", &self.contact.external_id, 200);
        check.free_text("text", &self.text, super::MAX_TEXT);
        if let Some(name) = &self.contact.name {
            check.text("contact.name", name, super::MAX_NAME);
        }
        if let Some(id) = &self.message_id {
            check.text("message_id", id, 200);
        }
        let external = self.contact.external_id.trim();
        let mut identities = vec![Identity::new(IdentityKind::External, format!("{inbox_id}:{external}"))];
        for (field, kind, value) in [
            ("contact.email", IdentityKind::Email, &self.contact.email),
            ("contact.phone", IdentityKind::Phone, &self.contact.phone),
        ] {
            let Some(value) = value else { continue };
            let identity = Identity::new(kind, value.clone());
            match normalize(&identity, region) {
                Ok(_) => identities.push(identity),
                Err(Invalid(errors)) => errors.into_iter().for_each(|e| check.fail(field, &e.code, e.message)),
            }
        }
        check.done()?;
        Ok(InboundMessage {
            provider_message_id: self.message_id.clone().unwrap_or(fresh_id),
            address: external.to_owned(),
            identities,
            name: self.contact.name.clone(),
            text: Some(self.text.clone()),
            at: None,
            claimed_email: None,
            claimed_phone: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn one(kind: InboxKind, payload: Value) -> Inbound {
        let mut read = parse(kind, payload.to_string().as_bytes()).unwrap();
        assert_eq!(read.len(), 1, "{read:?}");
        read.remove(0)
    }

    fn message(inbound: Inbound) -> InboundMessage {
        match inbound {
            Inbound::Message(message) => message,
            other => panic!("not a message: {other:?}"),
        }
    }

    fn receipt(inbound: Inbound) -> Receipt {
        match inbound {
            Inbound::Receipt(receipt) => receipt,
            other => panic!("not a receipt: {other:?}"),
        }
    }

    fn is_ignored(inbound: &Inbound) -> bool {
        matches!(inbound, Inbound::Ignored(_))
    }

    // Shapes from core.telegram.org/bots/api#update.
    #[test]
    fn telegram_text_messages_name_their_chat_and_sender() {
        let update = json!({"update_id": 10000, "message": {
            "message_id": 1365, "date": 1441645532_i64,
            "from": {"id": 1111111, "is_bot": false, "first_name": "Ann", "last_name": "Lee", "username": "annlee", "language_code": "en"},
            "chat": {"id": 1111111, "type": "private", "first_name": "Ann", "last_name": "Lee", "username": "annlee"},
            "text": "Where is my order?"}});
        let read = message(one(InboxKind::Telegram, update));
        assert_eq!(read.provider_message_id, "1111111:1365");
        assert_eq!(read.address, "1111111");
        assert_eq!(read.identities, [Identity::new(IdentityKind::Telegram, "1111111")]);
        assert_eq!(read.name.as_deref(), Some("Ann Lee"));
        assert_eq!(read.text.as_deref(), Some("Where is my order?"));
        assert_eq!(read.at, Some(Timestamp(1_441_645_532_000)));
    }

    #[test]
    fn a_telegram_contact_links_the_phone_only_when_it_is_the_senders() {
        let shared = |user_id: i64| {
            json!({"update_id": 2, "message": {"message_id": 7, "date": 1441645532_i64,
                "from": {"id": 1111111, "is_bot": false, "first_name": "Ann"},
                "chat": {"id": 1111111, "type": "private"},
                "contact": {"phone_number": "4915112345678", "first_name": "Ann", "user_id": user_id}}})
        };
        let own = message(one(InboxKind::Telegram, shared(1111111)));
        assert_eq!(own.identities[1], Identity::new(IdentityKind::Phone, "+4915112345678"));
        assert_eq!(own.text, None);
        let friend = message(one(InboxKind::Telegram, shared(2222222)));
        assert_eq!(friend.identities.len(), 1);
    }

    #[test]
    fn telegram_button_presses_are_messages_and_other_updates_are_ignored() {
        let callback = json!({"update_id": 3, "callback_query": {"id": "4382bfdwdsb323b2d9", "chat_instance": "42",
            "from": {"id": 1111111, "is_bot": false, "first_name": "Ann"},
            "message": {"message_id": 9, "date": 1, "chat": {"id": 1111111, "type": "private"}, "text": "Track?"},
            "data": "track_order"}});
        let pressed = message(one(InboxKind::Telegram, callback));
        assert_eq!(pressed.provider_message_id, "callback:4382bfdwdsb323b2d9");
        assert_eq!(pressed.text.as_deref(), Some("track_order"));
        let edited = json!({"update_id": 4, "edited_message": {"message_id": 1, "date": 1, "chat": {"id": 1}}});
        assert_eq!(
            one(InboxKind::Telegram, edited),
            Inbound::Ignored(Ignored("telegram edited_message".into()))
        );
    }

    // Shapes from developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples.
    fn whatsapp_value(value: Value) -> Value {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
            "value": value, "field": "messages"}]}]})
    }

    #[test]
    fn whatsapp_texts_and_button_replies_are_messages_from_a_phone() {
        let payload = whatsapp_value(json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "4915112345678"}],
        "messages": [
            {"from": "4915112345678", "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
             "timestamp": "1749416383", "type": "text", "text": {"body": "Does it come in another color?"}},
            {"context": {"from": "15550783881", "id": "wamid.ctx"}, "from": "4915112345678", "id": "wamid.button",
             "timestamp": "1749416400", "type": "interactive",
             "interactive": {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes, please"}}}
        ]}));
        let read = parse(InboxKind::Whatsapp, payload.to_string().as_bytes()).unwrap();
        let text = message(read[0].clone());
        assert_eq!(
            text.identities,
            [Identity::new(IdentityKind::Whatsapp, "4915112345678")]
        );
        assert_eq!(text.address, "4915112345678");
        assert_eq!(text.name.as_deref(), Some("Sheena Nelson"));
        assert_eq!(text.at, Some(Timestamp(1_749_416_383_000)));
        let button = message(read[1].clone());
        assert_eq!(
            (button.provider_message_id.as_str(), button.text.as_deref()),
            ("wamid.button", Some("Yes, please"))
        );
    }

    #[test]
    fn whatsapp_statuses_are_receipts() {
        let payload = whatsapp_value(json!({
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "statuses": [
            {"id": "wamid.out1", "status": "delivered", "timestamp": "1750263773", "recipient_id": "4915112345678"},
            {"id": "wamid.out2", "status": "failed", "timestamp": "1750263774", "recipient_id": "4915112345678",
             "errors": [{"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message"}]}
        ]}));
        let read = parse(InboxKind::Whatsapp, payload.to_string().as_bytes()).unwrap();
        let delivered = receipt(read[0].clone());
        assert_eq!(delivered.target, ReceiptTarget::Message("wamid.out1".into()));
        assert_eq!(delivered.status, ReceiptStatus::Delivered);
        let failed = receipt(read[1].clone());
        assert_eq!(failed.status, ReceiptStatus::Failed);
        assert_eq!(failed.error.as_deref(), Some("131047 Re-engagement message"));
    }

    #[test]
    fn unknown_whatsapp_content_is_ignored() {
        let reaction = whatsapp_value(json!({"messages": [{"from": "4915112345678", "id": "wamid.r",
            "timestamp": "1", "type": "reaction", "reaction": {"message_id": "wamid.x", "emoji": "👍"}}]}));
        assert!(is_ignored(&one(InboxKind::Whatsapp, reaction)));
        let other = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
            {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}]}]});
        assert!(is_ignored(&one(InboxKind::Whatsapp, other)));
    }

    // Shapes from developers.facebook.com/docs/messenger-platform/reference/webhook-events.
    fn page_event(object: &str, event: Value) -> Value {
        json!({"object": object, "entry": [{"id": "PAGE_ID", "time": 1458692752478_i64, "messaging": [event]}]})
    }

    #[test]
    fn messenger_messages_and_postbacks_come_from_a_psid() {
        let text = page_event(
            "page",
            json!({"sender": {"id": "6945981752134245"}, "recipient": {"id": "PAGE_ID"}, "timestamp": 1458692752478_i64,
                "message": {"mid": "m_1457764197618:41d102a3e1ae206a38", "text": "hello, world!",
                            "quick_reply": {"payload": "DEVELOPER_DEFINED_PAYLOAD"}}}),
        );
        let read = message(one(InboxKind::Messenger, text));
        assert_eq!(
            read.identities,
            [Identity::new(IdentityKind::Messenger, "6945981752134245")]
        );
        assert_eq!(read.provider_message_id, "m_1457764197618:41d102a3e1ae206a38");
        assert_eq!(read.at, Some(Timestamp(1_458_692_752_478)));
        let postback = page_event(
            "page",
            json!({"sender": {"id": "6945981752134245"}, "recipient": {"id": "PAGE_ID"}, "timestamp": 1458692752479_i64,
                "postback": {"mid": "m_postback", "title": "Talk to a human", "payload": "HUMAN"}}),
        );
        let pressed = message(one(InboxKind::Messenger, postback));
        assert_eq!(pressed.text.as_deref(), Some("Talk to a human"));
        let echo = page_event(
            "page",
            json!({"sender": {"id": "PAGE_ID"}, "recipient": {"id": "6945981752134245"}, "timestamp": 1,
                "message": {"is_echo": true, "mid": "m_echo", "text": "our reply"}}),
        );
        assert!(is_ignored(&one(InboxKind::Messenger, echo)));
    }

    #[test]
    fn messenger_deliveries_and_reads_are_receipts() {
        let delivery = page_event(
            "page",
            json!({"sender": {"id": "6945981752134245"}, "recipient": {"id": "PAGE_ID"}, "timestamp": 1458668856463_i64,
                "delivery": {"mids": ["mid.1458668856218:ed81099e15d3f4f233"], "watermark": 1458668856253_i64}}),
        );
        let delivered = receipt(one(InboxKind::Messenger, delivery));
        assert_eq!(
            delivered.target,
            ReceiptTarget::Message("mid.1458668856218:ed81099e15d3f4f233".into())
        );
        let read = page_event(
            "page",
            json!({"sender": {"id": "6945981752134245"}, "recipient": {"id": "PAGE_ID"}, "timestamp": 1458668856463_i64,
                "read": {"watermark": 1458668856253_i64}}),
        );
        let seen = receipt(one(InboxKind::Messenger, read));
        assert_eq!(seen.status, ReceiptStatus::Read);
        assert_eq!(
            seen.target,
            ReceiptTarget::UpTo {
                address: "6945981752134245".into(),
                before: Timestamp(1_458_668_856_253)
            }
        );
    }

    #[test]
    fn instagram_uses_the_same_shape_with_its_own_identity() {
        let text = page_event(
            "instagram",
            json!({"sender": {"id": "1254459154682919"}, "recipient": {"id": "17841405822304914"}, "timestamp": 1603059201_i64,
                "message": {"mid": "aWdfZAG1faXRlbTo", "text": "Is this in stock?"}}),
        );
        let read = message(one(InboxKind::Instagram, text));
        assert_eq!(
            read.identities,
            [Identity::new(IdentityKind::Instagram, "1254459154682919")]
        );
        let seen = page_event(
            "instagram",
            json!({"sender": {"id": "1254459154682919"}, "recipient": {"id": "17841405822304914"}, "timestamp": 1,
                "read": {"mid": "aWdfZAG1faXRlbTo"}}),
        );
        assert_eq!(
            receipt(one(InboxKind::Instagram, seen)).target,
            ReceiptTarget::Message("aWdfZAG1faXRlbTo".into())
        );
    }

    // Shapes from developers.viber.com/docs/api/rest-bot-api/#callbacks.
    #[test]
    fn viber_messages_keep_every_digit_of_their_token() {
        let callback = json!({"event": "message", "timestamp": 1457764197627_i64, "message_token": 4912661846655238145_u64,
            "sender": {"id": "01234567890A=", "name": "John McClane", "avatar": "http://avatar.example.com",
                       "country": "UK", "language": "en", "api_version": 1},
            "message": {"type": "text", "text": "a message to the service", "tracking_data": "tracking data"}});
        let read = message(one(InboxKind::Viber, callback));
        assert_eq!(read.provider_message_id, "4912661846655238145");
        assert_eq!(read.identities, [Identity::new(IdentityKind::Viber, "01234567890A=")]);
        assert_eq!(read.name.as_deref(), Some("John McClane"));
    }

    #[test]
    fn a_viber_contact_is_a_claim_that_links_no_phone() {
        // Anyone can send a customer's number as a contact card: it must not make them that
        // customer.
        let contact = json!({"event": "message", "timestamp": 1, "message_token": 5,
            "sender": {"id": "01234567890A="},
            "message": {"type": "contact", "contact": {"name": "John", "phone_number": "4915112345678"}}});
        let read = message(one(InboxKind::Viber, contact));
        assert_eq!(read.identities, [Identity::new(IdentityKind::Viber, "01234567890A=")]);
        assert_eq!(read.claimed_phone.as_deref(), Some("+4915112345678"));
    }

    #[test]
    fn viber_receipts_and_lifecycle_callbacks() {
        let receipt_of = |event: &str| {
            json!({"event": event, "timestamp": 1457764197627_i64, "message_token": 4912661846655238145_u64,
                   "user_id": "01234567890A=", "desc": "failure description"})
        };
        assert_eq!(
            receipt(one(InboxKind::Viber, receipt_of("delivered"))).status,
            ReceiptStatus::Delivered
        );
        assert_eq!(
            receipt(one(InboxKind::Viber, receipt_of("seen"))).status,
            ReceiptStatus::Read
        );
        let failed = receipt(one(InboxKind::Viber, receipt_of("failed")));
        assert_eq!(failed.error.as_deref(), Some("failure description"));
        for event in ["conversation_started", "subscribed", "unsubscribed", "webhook"] {
            let callback = json!({"event": event, "timestamp": 1, "message_token": 2, "user": {"id": "01234567890A="},
                                  "user_id": "01234567890A="});
            assert_eq!(
                one(InboxKind::Viber, callback),
                Inbound::Ignored(Ignored(format!("viber {event}")))
            );
        }
    }

    #[test]
    fn bodies_that_are_not_json_are_refused_and_empty_ones_ignored() {
        assert!(parse(InboxKind::Telegram, b"not json").is_err());
        assert!(is_ignored(&one(InboxKind::Whatsapp, json!({}))));
        assert!(is_ignored(&one(InboxKind::Messenger, json!([1, 2]))));
    }

    #[test]
    fn api_messages_scope_the_external_id_by_inbox() {
        let posted = ApiMessage {
            contact: ApiContact {
                external_id: " u-42 ".into(),
                name: Some("Ann".into()),
                email: Some("Ann@Example.com".into()),
                phone: None,
            },
            text: "Hi".into(),
            message_id: None,
        };
        let read = posted.validate("inb_1", "msg_fresh".into(), Region::DE).unwrap();
        assert_eq!(read.provider_message_id, "msg_fresh");
        assert_eq!(read.address, "u-42");
        assert_eq!(
            read.identities,
            [
                Identity::new(IdentityKind::External, "inb_1:u-42"),
                Identity::new(IdentityKind::Email, "Ann@Example.com")
            ]
        );
        let blank = ApiMessage {
            text: " ".into(),
            contact: ApiContact {
                phone: Some("12".into()),
                ..posted.contact.clone()
            },
            ..posted
        };
        let fields: Vec<String> = blank
            .validate("inb_1", "x".into(), Region::DE)
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["text", "contact.phone"]);
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z_]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            let keys = prop_oneof![
                Just("message".to_owned()),
                Just("entry".to_owned()),
                Just("changes".to_owned()),
                Just("messaging".to_owned()),
                Just("value".to_owned()),
                Just("messages".to_owned()),
                Just("event".to_owned()),
                Just("sender".to_owned()),
                Just("id".to_owned()),
                "[a-z_]{1,6}",
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(keys, inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_is_read_without_panicking(
            kind in proptest::sample::select(InboxKind::ALL.to_vec()),
            payload in json_value(),
        ) {
            let read = parse(kind, payload.to_string().as_bytes()).unwrap();
            prop_assert!(!read.is_empty());
            for inbound in read {
                if let Inbound::Message(message) = inbound {
                    prop_assert!(!message.provider_message_id.is_empty());
                    prop_assert!(!message.identities.is_empty());
                }
            }
        }
    }
}
