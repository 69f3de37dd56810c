//! What each provider's API wants for a reply, and what its answer means.
//!
//! The requests carry tokens (in a header, the path or the query, as each provider wants):
//! a request or its URL is never logged.

use serde_json::{Value, json};

use super::{Credentials, InboxKind, Sending, Template};
use crate::webhooks;

/// The Graph API version the Meta requests are written against.
pub const GRAPH_VERSION: &str = "v20.0";

/// How many times a reply is tried before it is `failed`.
pub const MAX_ATTEMPTS: u32 = 4;
/// Pauses after the first, second and third failed attempt.
const RETRY_PAUSES_MS: [u64; 3] = [250, 1000, 3000];
/// A provider asking for a longer pause than this is not waited for inside a request.
const MAX_ASKED_PAUSE_MS: u64 = 10_000;

/// A JSON POST to a provider.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderRequest {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for ProviderRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderRequest(redacted)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content<'a> {
    Text(&'a str),
    Template(&'a Template),
}

/// One reply on its way out.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The provider's API root, without a trailing `/`.
    pub base: &'a str,
    /// The customer as the provider knows them: chat, number, PSID, user id.
    pub address: &'a str,
    pub content: Content<'a>,
    pub sending: Sending,
    /// Viber shows it as the sender: the inbox's name.
    pub sender_name: &'a str,
    pub message_id: &'a str,
    pub conversation_id: &'a str,
    /// Signs API-channel replies.
    pub now_unix: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsendable {
    #[error("{0} inboxes do not send this kind of message")]
    NotSupported(&'static str),
    #[error("the inbox's API base URL is not a URL")]
    BadUrl,
}

/// The request that sends `out` with the inbox's credentials.
pub fn request(credentials: &Credentials, out: &Outgoing) -> Result<ProviderRequest, Unsendable> {
    match credentials {
        Credentials::Telegram(c) => telegram(&c.bot_token, out),
        Credentials::Whatsapp(c) => Ok(whatsapp(&c.access_token, &c.phone_number_id, out)),
        Credentials::Meta(c) => messenger(&c.page_access_token, out),
        Credentials::Viber(c) => viber(&c.auth_token, out),
        Credentials::Api(c) => api(&c.webhook_url, &c.secret, out),
        Credentials::Email(_) => Err(Unsendable::NotSupported(InboxKind::Email.as_str())),
        Credentials::Webchat => Err(Unsendable::NotSupported(InboxKind::Webchat.as_str())),
    }
}

fn json_body(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn text_only<'a>(kind: InboxKind, out: &Outgoing<'a>) -> Result<&'a str, Unsendable> {
    match out.content {
        Content::Text(text) => Ok(text),
        Content::Template(_) => Err(Unsendable::NotSupported(kind.as_str())),
    }
}

/// `POST {base}/bot{token}/sendMessage`; a numeric chat id goes as a number.
fn telegram(bot_token: &str, out: &Outgoing) -> Result<ProviderRequest, Unsendable> {
    let text = text_only(InboxKind::Telegram, out)?;
    let chat_id = out
        .address
        .parse::<i64>()
        .map_or_else(|_| json!(out.address), |id| json!(id));
    Ok(ProviderRequest {
        url: format!("{}/bot{bot_token}/sendMessage", out.base),
        headers: Vec::new(),
        body: json_body(&json!({"chat_id": chat_id, "text": text})),
    })
}

/// `POST {base}/v20.0/{phone_number_id}/messages` with the bearer access token.
fn whatsapp(access_token: &str, phone_number_id: &str, out: &Outgoing) -> ProviderRequest {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": out.address,
    });
    match out.content {
        Content::Text(text) => {
            body["type"] = json!("text");
            body["text"] = json!({"preview_url": false, "body": text});
        }
        Content::Template(template) => {
            body["type"] = json!("template");
            body["template"] = whatsapp_template(template);
        }
    }
    ProviderRequest {
        url: format!("{}/{GRAPH_VERSION}/{phone_number_id}/messages", out.base),
        headers: vec![("Authorization", format!("Bearer {access_token}"))],
        body: json_body(&body),
    }
}

fn whatsapp_template(template: &Template) -> Value {
    let mut value = json!({"name": template.name, "language": {"code": template.language}});
    if !template.params.is_empty() {
        let parameters: Vec<Value> = template
            .params
            .iter()
            .map(|p| json!({"type": "text", "text": p}))
            .collect();
        value["components"] = json!([{"type": "body", "parameters": parameters}]);
    }
    value
}

/// `POST {base}/v20.0/me/messages?access_token=…` (Messenger and Instagram alike): a reply
/// inside the window is a `RESPONSE`; after it, a `MESSAGE_TAG` with `HUMAN_AGENT`.
fn messenger(page_access_token: &str, out: &Outgoing) -> Result<ProviderRequest, Unsendable> {
    let text = text_only(InboxKind::Messenger, out)?;
    let mut url =
        url::Url::parse(&format!("{}/{GRAPH_VERSION}/me/messages", out.base)).map_err(|_| Unsendable::BadUrl)?;
    url.query_pairs_mut().append_pair("access_token", page_access_token);
    let mut body = json!({"recipient": {"id": out.address}, "message": {"text": text}});
    match out.sending {
        Sending::Standard => body["messaging_type"] = json!("RESPONSE"),
        Sending::HumanAgentTag => {
            body["messaging_type"] = json!("MESSAGE_TAG");
            body["tag"] = json!("HUMAN_AGENT");
        }
    }
    Ok(ProviderRequest {
        url: url.into(),
        headers: Vec::new(),
        body: json_body(&body),
    })
}

/// `POST {base}/pa/send_message` with `X-Viber-Auth-Token`.
fn viber(auth_token: &str, out: &Outgoing) -> Result<ProviderRequest, Unsendable> {
    let text = text_only(InboxKind::Viber, out)?;
    // Viber shows at most 28 characters of the sender's name.
    let name: String = out.sender_name.chars().take(28).collect();
    Ok(ProviderRequest {
        url: format!("{}/pa/send_message", out.base),
        headers: vec![("X-Viber-Auth-Token", auth_token.to_owned())],
        body: json_body(&json!({
            "receiver": out.address,
            "min_api_version": 1,
            "sender": {"name": name},
            "tracking_data": out.message_id,
            "type": "text",
            "text": text,
        })),
    })
}

/// A POST to the channel's own webhook URL, signed like the hub's webhooks.
fn api(webhook_url: &str, secret: &str, out: &Outgoing) -> Result<ProviderRequest, Unsendable> {
    let text = text_only(InboxKind::Api, out)?;
    let body = json_body(&json!({
        "type": "message.sent",
        "message_id": out.message_id,
        "conversation_id": out.conversation_id,
        "contact": {"external_id": out.address},
        "text": text,
    }));
    Ok(ProviderRequest {
        url: webhook_url.to_owned(),
        headers: vec![(webhooks::SIGNATURE_HEADER, webhooks::sign(secret, out.now_unix, &body))],
        body,
    })
}

/// A provider's answer to a send.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub status: u16,
    /// The `Retry-After` header, in seconds.
    pub retry_after: Option<&'a str>,
    pub body: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted; the provider's id of the message, which its receipts will name.
    Sent { provider_message_id: Option<String> },
    /// Rate-limited or failing on its side: worth another try, after the pause it asked for.
    Retry { after_seconds: Option<u64> },
    /// Refused for good, with the provider's reason.
    Failed(String),
}

/// What the answer to a reply sent to `address` in an inbox of `kind` means.
pub fn outcome(kind: InboxKind, address: &str, answer: &Answer) -> Outcome {
    let body: Value = serde_json::from_slice(answer.body).unwrap_or(Value::Null);
    if answer.status == 429 || answer.status >= 500 {
        let asked = answer
            .retry_after
            .and_then(|s| s.trim().parse().ok())
            .or_else(|| body.pointer("/parameters/retry_after").and_then(Value::as_u64));
        return Outcome::Retry { after_seconds: asked };
    }
    if !(200..300).contains(&answer.status) {
        return Outcome::Failed(match kind {
            // A custom channel's server is whatever its URL names: what it says is not
            // repeated to the caller, only that it refused.
            InboxKind::Api => format!("answered {}", answer.status),
            _ => refusal(&body, answer.status),
        });
    }
    let id = |pointer: &str| {
        body.pointer(pointer).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    match kind {
        InboxKind::Telegram if body.get("ok") == Some(&Value::Bool(true)) => Outcome::Sent {
            provider_message_id: id("/result/message_id").map(|n| format!("{address}:{n}")),
        },
        InboxKind::Telegram => Outcome::Failed(refusal(&body, answer.status)),
        InboxKind::Whatsapp => Outcome::Sent {
            provider_message_id: id("/messages/0/id"),
        },
        InboxKind::Messenger | InboxKind::Instagram => Outcome::Sent {
            provider_message_id: id("/message_id"),
        },
        // Viber answers 200 to everything; `status` 0 is success.
        InboxKind::Viber if body.get("status").and_then(Value::as_i64) == Some(0) => Outcome::Sent {
            provider_message_id: id("/message_token"),
        },
        InboxKind::Viber => Outcome::Failed(refusal(&body, answer.status)),
        InboxKind::Email | InboxKind::Webchat | InboxKind::Api => Outcome::Sent {
            provider_message_id: None,
        },
    }
}

/// The provider's own words for a refusal: Meta's `error.message`, Telegram's `description`,
/// Viber's `status_message`.
fn refusal(body: &Value, status: u16) -> String {
    ["/error/message", "/description", "/status_message"]
        .iter()
        .find_map(|p| body.pointer(p).and_then(Value::as_str))
        .map(|reason| reason.chars().take(300).collect())
        .unwrap_or_else(|| format!("the provider answered HTTP {status}"))
}

/// How long to wait after `failed_attempts` failed tries before the next one; `None` when it is
/// time to give up. A pause the provider asked for is kept if it is short enough to wait for.
pub fn retry_pause_ms(failed_attempts: u32, asked_seconds: Option<u64>) -> Option<u64> {
    if failed_attempts >= MAX_ATTEMPTS {
        return None;
    }
    let step = usize::try_from(failed_attempts.saturating_sub(1)).unwrap_or(usize::MAX);
    let ours = RETRY_PAUSES_MS[step.min(RETRY_PAUSES_MS.len() - 1)];
    match asked_seconds.map(|s| s.saturating_mul(1000)) {
        Some(asked) if asked > MAX_ASKED_PAUSE_MS => None,
        Some(asked) => Some(asked.max(ours)),
        None => Some(ours),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversations::{
        ApiCredentials, MetaCredentials, TelegramCredentials, ViberCredentials, WhatsappCredentials,
    };

    fn outgoing<'a>(content: Content<'a>, address: &'a str) -> Outgoing<'a> {
        Outgoing {
            base: "http://127.0.0.1:9",
            address,
            content,
            sending: Sending::Standard,
            sender_name: "Omnihub Support Team of the Shop",
            message_id: "msg_1",
            conversation_id: "cnv_1",
            now_unix: 1_790_000_000,
        }
    }

    fn body(request: &ProviderRequest) -> Value {
        serde_json::from_slice(&request.body).unwrap()
    }

    #[test]
    fn telegram_sends_to_the_chat_with_the_token_in_the_path() {
        let credentials = Credentials::Telegram(TelegramCredentials {
            bot_token: "123:ABC".into(),
            secret_token: "s".into(),
        });
        let request = request(&credentials, &outgoing(Content::Text("Hi"), "1111111")).unwrap();
        assert_eq!(request.url, "http://127.0.0.1:9/bot123:ABC/sendMessage");
        assert_eq!(body(&request), json!({"chat_id": 1111111, "text": "Hi"}));
    }

    #[test]
    fn whatsapp_sends_text_and_templates_to_the_number() {
        let credentials = Credentials::Whatsapp(WhatsappCredentials {
            access_token: "EAAG".into(),
            phone_number_id: "106540352242922".into(),
            app_secret: "a".into(),
            verify_token: "v".into(),
        });
        let text = request(&credentials, &outgoing(Content::Text("Hi"), "4915112345678")).unwrap();
        assert_eq!(text.url, "http://127.0.0.1:9/v20.0/106540352242922/messages");
        assert_eq!(text.headers, [("Authorization", "Bearer EAAG".to_owned())]);
        assert_eq!(
            body(&text),
            json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "4915112345678",
                   "type": "text", "text": {"preview_url": false, "body": "Hi"}})
        );
        let template = Template {
            name: "order_update".into(),
            language: "de".into(),
            params: vec!["#1001".into()],
        };
        let sent = request(&credentials, &outgoing(Content::Template(&template), "4915112345678")).unwrap();
        assert_eq!(
            body(&sent)["template"],
            json!({"name": "order_update", "language": {"code": "de"},
                   "components": [{"type": "body", "parameters": [{"type": "text", "text": "#1001"}]}]})
        );
    }

    #[test]
    fn messenger_tags_replies_after_the_window() {
        let credentials = Credentials::Meta(MetaCredentials {
            page_access_token: "EAAB+x/y".into(),
            page_id: "1".into(),
            app_secret: "a".into(),
            verify_token: "v".into(),
        });
        let inside = request(&credentials, &outgoing(Content::Text("Hi"), "6945981752134245")).unwrap();
        assert_eq!(
            inside.url,
            "http://127.0.0.1:9/v20.0/me/messages?access_token=EAAB%2Bx%2Fy"
        );
        assert_eq!(
            body(&inside),
            json!({"recipient": {"id": "6945981752134245"}, "messaging_type": "RESPONSE", "message": {"text": "Hi"}})
        );
        let late = Outgoing {
            sending: Sending::HumanAgentTag,
            ..outgoing(Content::Text("Hi"), "6945981752134245")
        };
        let tagged = body(&request(&credentials, &late).unwrap());
        assert_eq!(
            (tagged["messaging_type"].as_str(), tagged["tag"].as_str()),
            (Some("MESSAGE_TAG"), Some("HUMAN_AGENT"))
        );
    }

    #[test]
    fn viber_sends_with_the_auth_token_header_and_a_short_sender_name() {
        let credentials = Credentials::Viber(ViberCredentials {
            auth_token: "445da6az".into(),
        });
        let sent = request(&credentials, &outgoing(Content::Text("Hi"), "01234567890A=")).unwrap();
        assert_eq!(sent.url, "http://127.0.0.1:9/pa/send_message");
        assert_eq!(sent.headers, [("X-Viber-Auth-Token", "445da6az".to_owned())]);
        let sent = body(&sent);
        assert_eq!(sent["receiver"], "01234567890A=");
        assert_eq!(sent["sender"]["name"].as_str().unwrap().chars().count(), 28);
        assert_eq!(
            (sent["type"].as_str(), sent["text"].as_str()),
            (Some("text"), Some("Hi"))
        );
    }

    #[test]
    fn api_replies_are_signed_for_the_channel() {
        let credentials = Credentials::Api(ApiCredentials {
            webhook_url: "https://chat.example/replies".into(),
            secret: "api-secret-0123456789".into(),
        });
        let sent = request(&credentials, &outgoing(Content::Text("Hi"), "u-42")).unwrap();
        assert_eq!(sent.url, "https://chat.example/replies");
        let (name, signature) = &sent.headers[0];
        assert_eq!(*name, "Omnihub-Signature");
        assert_eq!(
            webhooks::verify(signature, &sent.body, "api-secret-0123456789", 1_790_000_000, 300),
            Ok(())
        );
        assert_eq!(body(&sent)["contact"]["external_id"], "u-42");
    }

    #[test]
    fn templates_only_go_where_providers_take_them() {
        let template = Template {
            name: "t".into(),
            language: "en_US".into(),
            params: vec![],
        };
        let viber = Credentials::Viber(ViberCredentials { auth_token: "t".into() });
        assert_eq!(
            request(&viber, &outgoing(Content::Template(&template), "x")),
            Err(Unsendable::NotSupported("viber"))
        );
    }

    fn answer(status: u16, body: &str) -> Outcome {
        let answer = Answer {
            status,
            retry_after: None,
            body: body.as_bytes(),
        };
        outcome(InboxKind::Telegram, "1111111", &answer)
    }

    #[test]
    fn answers_say_sent_retry_or_failed() {
        assert_eq!(
            answer(200, r#"{"ok":true,"result":{"message_id":77,"chat":{"id":1111111}}}"#),
            Outcome::Sent {
                provider_message_id: Some("1111111:77".into())
            }
        );
        assert_eq!(
            answer(429, r#"{"ok":false,"error_code":429,"parameters":{"retry_after":3}}"#),
            Outcome::Retry { after_seconds: Some(3) }
        );
        assert_eq!(answer(502, "bad gateway"), Outcome::Retry { after_seconds: None });
        assert_eq!(
            answer(
                403,
                r#"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#
            ),
            Outcome::Failed("Forbidden: bot was blocked by the user".into())
        );
        let custom = Answer {
            status: 403,
            retry_after: None,
            body: br#"{"error":{"message":"admin console 10.0.0.7: forbidden"}}"#,
        };
        assert_eq!(
            outcome(InboxKind::Api, "x", &custom),
            Outcome::Failed("answered 403".into())
        );
        let viber = |body: &str| {
            outcome(
                InboxKind::Viber,
                "x",
                &Answer {
                    status: 200,
                    retry_after: None,
                    body: body.as_bytes(),
                },
            )
        };
        assert_eq!(
            viber(r#"{"status":0,"status_message":"ok","message_token":5741311803571721087}"#),
            Outcome::Sent {
                provider_message_id: Some("5741311803571721087".into())
            }
        );
        assert_eq!(
            viber(r#"{"status":6,"status_message":"receiverNotSubscribed"}"#),
            Outcome::Failed("receiverNotSubscribed".into())
        );
        let whatsapp = outcome(
            InboxKind::Whatsapp,
            "x",
            &Answer {
                status: 200,
                retry_after: Some("9"),
                body: br#"{"messaging_product":"whatsapp","contacts":[{"input":"49","wa_id":"49"}],"messages":[{"id":"wamid.HBgL"}]}"#,
            },
        );
        assert_eq!(
            whatsapp,
            Outcome::Sent {
                provider_message_id: Some("wamid.HBgL".into())
            }
        );
    }

    #[test]
    fn retries_back_off_and_give_up() {
        assert_eq!(retry_pause_ms(1, None), Some(250));
        assert_eq!(retry_pause_ms(2, None), Some(1000));
        assert_eq!(retry_pause_ms(3, Some(5)), Some(5000));
        assert_eq!(retry_pause_ms(1, Some(60)), None);
        assert_eq!(retry_pause_ms(MAX_ATTEMPTS, None), None);
    }
}
