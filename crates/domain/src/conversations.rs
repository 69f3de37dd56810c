//! Conversations: one inbox for every messaging channel.
//!
//! Here are the rules only: what an inbox of each kind needs to connect, how each provider's
//! webhook is checked ([`signatures`]) and read ([`inbound`]), when a reply may still be sent
//! (reply windows), and what each provider's API wants for a reply ([`outbound`]); e-mail
//! ([`email`]) and the web chat ([`webchat`]) have their own; automatic answers ([`answers`])
//! rank frequent questions; [`courier`] is what a reply's courier is given and answers. The
//! store keeps inboxes, conversations and messages; the providers crate makes the calls.

pub mod answers;
pub mod courier;
pub mod email;
pub mod inbound;
pub mod outbound;
pub mod signatures;
pub mod smtp;
pub mod webchat;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Timestamp;
use crate::customers::IdentityKind;
use crate::destinations::Destinations;
use crate::validation::{Check, Invalid};

const MAX_NAME: usize = 200;
const MAX_SECRET: usize = 1000;
const MAX_URL: usize = 2000;
const MAX_TEXT: usize = 4096;
const MAX_TAGS: usize = 50;
const MAX_TAG: usize = 50;
const MAX_AGENTS: usize = 200;
const MAX_SHORT_CODE: usize = 50;
const MAX_TEMPLATE_PARAMS: usize = 20;
/// An API channel's secret is an HMAC key: short ones can be guessed.
/// The shortest shared secret taken: one that proves an incoming call (a webhook's signing key,
/// a handshake or bearer token) must not be guessable.
const MIN_SHARED_SECRET: usize = 16;

const DAY_SECONDS: i64 = 24 * 60 * 60;
/// WhatsApp and Messenger accept free-form replies for this long after the customer wrote.
const STANDARD_WINDOW_SECONDS: i64 = DAY_SECONDS;
/// Messenger and Instagram accept replies tagged `HUMAN_AGENT` for this long.
const HUMAN_AGENT_WINDOW_SECONDS: i64 = 7 * DAY_SECONDS;

// ───────────────────────────── inboxes ─────────────────────────────

/// The messaging channel an inbox is connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InboxKind {
    Telegram,
    Whatsapp,
    Messenger,
    Instagram,
    Viber,
    Email,
    Webchat,
    /// The open API channel: any custom channel posts messages and receives replies.
    Api,
}

impl InboxKind {
    pub const ALL: [InboxKind; 8] = [
        InboxKind::Telegram,
        InboxKind::Whatsapp,
        InboxKind::Messenger,
        InboxKind::Instagram,
        InboxKind::Viber,
        InboxKind::Email,
        InboxKind::Webchat,
        InboxKind::Api,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            InboxKind::Telegram => "telegram",
            InboxKind::Whatsapp => "whatsapp",
            InboxKind::Messenger => "messenger",
            InboxKind::Instagram => "instagram",
            InboxKind::Viber => "viber",
            InboxKind::Email => "email",
            InboxKind::Webchat => "webchat",
            InboxKind::Api => "api",
        }
    }

    pub fn parse(text: &str) -> Option<InboxKind> {
        InboxKind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// Whether the channel vouches for who wrote: a provider's account, a signed custom
    /// channel, a mail relay. A web chat visitor is anyone with a browser, and what they say
    /// about themselves (an e-mail) is a claim that proves nothing.
    pub const fn knows_the_sender(self) -> bool {
        !matches!(self, InboxKind::Webchat)
    }

    /// The provider's public API root, where replies go unless the inbox names another.
    pub const fn default_api_base_url(self) -> Option<&'static str> {
        match self {
            InboxKind::Telegram => Some("https://api.telegram.org"),
            InboxKind::Whatsapp | InboxKind::Messenger | InboxKind::Instagram => Some("https://graph.facebook.com"),
            InboxKind::Viber => Some("https://chatapi.viber.com"),
            InboxKind::Email | InboxKind::Webchat | InboxKind::Api => None,
        }
    }

    /// The fields of the credentials this kind needs, in the order a person enters them.
    pub const fn credential_fields(self) -> &'static [&'static str] {
        match self {
            InboxKind::Telegram => &["bot_token", "secret_token"],
            InboxKind::Whatsapp => &["access_token", "phone_number_id", "app_secret", "verify_token"],
            InboxKind::Messenger | InboxKind::Instagram => {
                &["page_access_token", "page_id", "app_secret", "verify_token"]
            }
            InboxKind::Viber => &["auth_token"],
            InboxKind::Email => &["smtp_url", "from_address", "inbound_secret"],
            InboxKind::Webchat => &[],
            InboxKind::Api => &["webhook_url", "secret"],
        }
    }
}

/// What an inbox needs to talk to its provider. Write-only: never shown, never logged.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Telegram(TelegramCredentials),
    Whatsapp(WhatsappCredentials),
    /// Messenger and Instagram share the Messenger Platform.
    Meta(MetaCredentials),
    Viber(ViberCredentials),
    Email(EmailCredentials),
    Webchat,
    Api(ApiCredentials),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(redacted)")
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramCredentials {
    pub bot_token: String,
    /// Telegram sends it back in `X-Telegram-Bot-Api-Secret-Token` with every update.
    pub secret_token: String,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappCredentials {
    pub access_token: String,
    pub phone_number_id: String,
    /// The key of `X-Hub-Signature-256`.
    pub app_secret: String,
    /// Echoed in Meta's `GET` verification handshake.
    pub verify_token: String,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaCredentials {
    pub page_access_token: String,
    pub page_id: String,
    pub app_secret: String,
    pub verify_token: String,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViberCredentials {
    /// Authenticates calls to Viber and is the key of `X-Viber-Content-Signature`.
    pub auth_token: String,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailCredentials {
    pub smtp_url: String,
    pub from_address: String,
    /// The bearer secret of the inbound relay.
    pub inbound_secret: String,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiCredentials {
    /// Where replies are POSTed.
    pub webhook_url: String,
    /// Signs replies and authenticates inbound calls (`Omnihub-Signature`).
    pub secret: String,
}

impl Credentials {
    /// Reads an inbox's credentials as its kind needs them; errors name `credentials.<field>`.
    pub fn parse(kind: InboxKind, value: &Value) -> Result<Credentials, Invalid> {
        let credentials = match kind {
            InboxKind::Telegram => Credentials::Telegram(read(value)?),
            InboxKind::Whatsapp => Credentials::Whatsapp(read(value)?),
            InboxKind::Messenger | InboxKind::Instagram => Credentials::Meta(read(value)?),
            InboxKind::Viber => Credentials::Viber(read(value)?),
            InboxKind::Email => Credentials::Email(read(value)?),
            InboxKind::Webchat => {
                read::<serde_json::Map<String, Value>>(value)?;
                Credentials::Webchat
            }
            InboxKind::Api => Credentials::Api(read(value)?),
        };
        credentials.check()?;
        Ok(credentials)
    }

    fn check(&self) -> Result<(), Invalid> {
        let mut check = Check::new();
        match self {
            Credentials::Telegram(c) => {
                secrets(
                    &mut check,
                    &[("bot_token", &c.bot_token), ("secret_token", &c.secret_token)],
                );
                check_telegram_secret(&mut check, &c.secret_token);
            }
            Credentials::Whatsapp(c) => secrets(
                &mut check,
                &[
                    ("access_token", &c.access_token),
                    ("phone_number_id", &c.phone_number_id),
                    ("app_secret", &c.app_secret),
                    ("verify_token", &c.verify_token),
                ],
            ),
            Credentials::Meta(c) => secrets(
                &mut check,
                &[
                    ("page_access_token", &c.page_access_token),
                    ("page_id", &c.page_id),
                    ("app_secret", &c.app_secret),
                    ("verify_token", &c.verify_token),
                ],
            ),
            Credentials::Viber(c) => secrets(&mut check, &[("auth_token", &c.auth_token)]),
            Credentials::Email(c) => {
                secrets(
                    &mut check,
                    &[
                        ("smtp_url", &c.smtp_url),
                        ("from_address", &c.from_address),
                        ("inbound_secret", &c.inbound_secret),
                    ],
                );
                check_email(&mut check, c);
            }
            Credentials::Webchat => {}
            Credentials::Api(c) => {
                check_web_url(&mut check, "credentials.webhook_url", &c.webhook_url);
            }
        }
        for (field, secret) in self.shared_secrets() {
            if secret.chars().count() < MIN_SHARED_SECRET {
                let message = format!("must be at least {MIN_SHARED_SECRET} characters");
                check.fail(format!("credentials.{field}"), "too_short", message);
            }
        }
        check.done()
    }

    /// The secrets that prove incoming calls (signing keys, handshake and bearer tokens), by
    /// field: each at least [`MIN_SHARED_SECRET`] characters.
    fn shared_secrets(&self) -> Vec<(&'static str, &str)> {
        match self {
            Credentials::Telegram(c) => vec![("secret_token", &c.secret_token)],
            Credentials::Whatsapp(c) => vec![("app_secret", &c.app_secret), ("verify_token", &c.verify_token)],
            Credentials::Meta(c) => vec![("app_secret", &c.app_secret), ("verify_token", &c.verify_token)],
            Credentials::Viber(c) => vec![("auth_token", &c.auth_token)],
            Credentials::Email(c) => vec![("inbound_secret", &c.inbound_secret)],
            Credentials::Webchat => Vec::new(),
            Credentials::Api(c) => vec![("secret", &c.secret)],
        }
    }

    /// The credentials as stored (sealed) and read back with [`Credentials::parse`].
    pub fn to_json(&self) -> Value {
        let value = match self {
            Credentials::Telegram(c) => serde_json::to_value(c),
            Credentials::Whatsapp(c) => serde_json::to_value(c),
            Credentials::Meta(c) => serde_json::to_value(c),
            Credentials::Viber(c) => serde_json::to_value(c),
            Credentials::Email(c) => serde_json::to_value(c),
            Credentials::Webchat => Ok(Value::Object(Default::default())),
            Credentials::Api(c) => serde_json::to_value(c),
        };
        value.unwrap_or(Value::Null)
    }

    /// The URLs of servers the hub calls with these credentials, by field.
    fn destinations(&self) -> Vec<(&'static str, &str)> {
        match self {
            Credentials::Email(c) => vec![("credentials.smtp_url", &c.smtp_url)],
            Credentials::Api(c) => vec![("credentials.webhook_url", &c.webhook_url)],
            _ => Vec::new(),
        }
    }

    /// The token Meta's `GET` handshake must echo; `None` for kinds without the handshake.
    pub fn verify_token(&self) -> Option<&str> {
        match self {
            Credentials::Whatsapp(c) => Some(&c.verify_token),
            Credentials::Meta(c) => Some(&c.verify_token),
            _ => None,
        }
    }
}

/// Each secret is required, and bounded so that a pasted file is not taken for a token.
fn secrets(check: &mut Check, fields: &[(&str, &str)]) {
    for (field, value) in fields {
        check.text(&format!("credentials.{field}"), value, MAX_SECRET);
    }
}

fn read<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, Invalid> {
    serde_json::from_value(value.clone()).map_err(|e| {
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or_default().to_owned();
        Invalid::one("credentials", "invalid", message)
    })
}

/// Telegram accepts 1–256 characters of `A-Z`, `a-z`, `0-9`, `_` and `-` as a secret token.
fn check_telegram_secret(check: &mut Check, token: &str) {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !token.is_empty() && (token.len() > 256 || !token.chars().all(allowed)) {
        check.fail(
            "credentials.secret_token",
            "invalid",
            "Telegram takes 1 to 256 characters of A-Z, a-z, 0-9, _ and -",
        );
    }
}

/// The SMTP server must be named by a URL the courier can use safely, and replies need a
/// sender.
fn check_email(check: &mut Check, credentials: &EmailCredentials) {
    if let Err(bad) = smtp::smtp_server(&credentials.smtp_url) {
        check.fail("credentials.smtp_url", bad.code(), bad.to_string());
    }
    let from = crate::customers::Identity::new(IdentityKind::Email, credentials.from_address.clone());
    if crate::customers::normalize(&from, crate::customers::Region::DE).is_err() {
        check.fail("credentials.from_address", "invalid", "must be an e-mail address");
    }
}

fn check_web_url(check: &mut Check, field: &str, value: &str) {
    if value.chars().count() > MAX_URL {
        return check.fail(field, "too_long", format!("must be at most {MAX_URL} characters"));
    }
    match url::Url::parse(value) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {}
        _ => check.fail(field, "invalid", "must be an absolute http:// or https:// URL"),
    }
}

/// What a client sends to connect a channel.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewInbox {
    pub kind: InboxKind,
    pub name: String,
    /// Per kind (see the API contract; `{}` for the web chat); write-only: never shown again.
    #[cfg_attr(feature = "openapi", schema(value_type = Object, required = true))]
    #[serde(default)]
    pub credentials: Value,
    /// The provider's API root; the provider's public one when left out. Like every URL the
    /// hub calls, a public address unless the server allows private destinations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_base_url: Option<String>,
    /// The sales channel that conversations here sell in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales_channel_id: Option<String>,
    /// The agents that round-robin assignment takes turns over, in order.
    #[serde(default)]
    pub agent_ids: Vec<String>,
}

impl NewInbox {
    /// Checks the inbox, and that every server it names is one `destinations` allows;
    /// answers its credentials read for its kind.
    pub fn validate(&self, destinations: Destinations) -> Result<Credentials, Invalid> {
        let mut check = Check::new();
        check.text("name", &self.name, MAX_NAME);
        if let Some(url) = &self.api_base_url {
            check_web_url(&mut check, "api_base_url", url);
            check_destination(&mut check, destinations, "api_base_url", url);
        }
        check_agents(&mut check, &self.agent_ids);
        let credentials = Credentials::parse(self.kind, &self.credentials);
        if let Ok(credentials) = &credentials {
            for (field, url) in credentials.destinations() {
                check_destination(&mut check, destinations, field, url);
            }
        }
        with_checks(check, credentials)
    }
}

/// A URL the hub would call must name a destination it may call.
fn check_destination(check: &mut Check, destinations: Destinations, field: &str, url: &str) {
    if let Ok(url) = url::Url::parse(url.trim()) {
        destinations.check(check, field, &url);
    }
}

/// What `PATCH /inboxes/{id}` may change; the kind stays. `credentials`, when given, replace
/// the old ones whole (write-only: the draft of an inbox never shows them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InboxDraft {
    pub name: String,
    /// The sales channel that conversations here sell in; `null` for none.
    #[serde(default)]
    pub sales_channel_id: Option<String>,
    /// The agents that round-robin assignment takes turns over, in order.
    #[serde(default)]
    pub agent_ids: Vec<String>,
    /// All of the kind's credentials anew; left out, the sealed ones stay.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Value>,
}

impl InboxDraft {
    /// Checks the draft for an inbox of `kind`, and that every server its new credentials
    /// name is one `destinations` allows; answers the new credentials, if any.
    pub fn validate(&self, kind: InboxKind, destinations: Destinations) -> Result<Option<Credentials>, Invalid> {
        let mut check = Check::new();
        check.text("name", &self.name, MAX_NAME);
        check_agents(&mut check, &self.agent_ids);
        let credentials = self
            .credentials
            .as_ref()
            .map(|c| Credentials::parse(kind, c))
            .transpose();
        if let Ok(Some(credentials)) = &credentials {
            for (field, url) in credentials.destinations() {
                check_destination(&mut check, destinations, field, url);
            }
        }
        with_checks(check, credentials)
    }
}

/// The credentials read, or every error found: the draft's own and the credentials'.
fn with_checks<T>(check: Check, credentials: Result<T, Invalid>) -> Result<T, Invalid> {
    match (check.done(), credentials) {
        (Ok(()), Ok(credentials)) => Ok(credentials),
        (Err(Invalid(mut first)), Err(Invalid(more))) => {
            first.extend(more);
            Err(Invalid(first))
        }
        (Err(invalid), _) | (_, Err(invalid)) => Err(invalid),
    }
}

impl Inbox {
    /// The inbox as a draft to patch, without its credentials.
    pub fn to_draft(&self) -> InboxDraft {
        InboxDraft {
            name: self.name.clone(),
            sales_channel_id: self.sales_channel_id.clone(),
            agent_ids: self.agent_ids.clone(),
            credentials: None,
        }
    }
}

pub fn check_agents(check: &mut Check, agents: &[String]) {
    if agents.len() > MAX_AGENTS {
        check.fail("agent_ids", "too_long", format!("at most {MAX_AGENTS} agents"));
    }
    for (i, agent) in agents.iter().enumerate() {
        check.text(&format!("agent_ids[{i}]"), agent, MAX_NAME);
        if agents[..i].contains(agent) {
            check.fail(format!("agent_ids[{i}]"), "duplicate", "is given twice");
        }
    }
}

/// A connected channel, as shown: never its credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Inbox {
    pub id: String,
    pub kind: InboxKind,
    pub name: String,
    pub api_base_url: Option<String>,
    pub sales_channel_id: Option<String>,
    pub agent_ids: Vec<String>,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Inbox {
    /// Where the channel delivers this inbox's messages, under the server's public URL: the
    /// provider's webhook (`/hooks/{id}`), or for a custom channel the signed API that takes
    /// its messages. `None` for the web chat: the widget talks to `/webchat/{id}/…` itself
    /// and nothing is registered anywhere.
    pub fn webhook_url(&self, public_url: &str) -> Option<String> {
        match self.kind {
            InboxKind::Webchat => None,
            InboxKind::Api => Some(format!("{public_url}/api/v1/inboxes/{}/messages", self.id)),
            _ => Some(format!("{public_url}/hooks/{}", self.id)),
        }
    }

    /// Where calls to the provider go, without a trailing `/`.
    pub fn api_base(&self) -> &str {
        self.api_base_url
            .as_deref()
            .or(self.kind.default_api_base_url())
            .unwrap_or_default()
            .trim_end_matches('/')
    }
}

/// The agent whose turn it is after `last`: round robin in the inbox's order, starting over
/// when `last` is the final agent or no longer one of them.
pub fn next_agent<'a>(agents: &'a [String], last: Option<&str>) -> Option<&'a str> {
    let after = last.and_then(|last| agents.iter().position(|a| a == last));
    let next = after.map_or(0, |i| (i + 1) % agents.len().max(1));
    agents.get(next).map(String::as_str)
}

// ───────────────────────────── conversations ─────────────────────────────

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    Open,
    /// Waiting on something (the customer, a colleague); still counts as not done.
    Pending,
    Resolved,
}

impl ConversationStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            ConversationStatus::Open => "open",
            ConversationStatus::Pending => "pending",
            ConversationStatus::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<ConversationStatus> {
        [
            ConversationStatus::Open,
            ConversationStatus::Pending,
            ConversationStatus::Resolved,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// One customer talking with the merchant in one inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Conversation {
    pub id: String,
    pub inbox_id: String,
    pub inbox_kind: InboxKind,
    pub customer_id: String,
    pub status: ConversationStatus,
    pub assignee_id: Option<String>,
    pub team: Option<String>,
    pub tags: Vec<String>,
    /// When the customer last wrote: reply windows run from here.
    pub last_customer_message_at: Option<Timestamp>,
    pub last_message_at: Option<Timestamp>,
    /// When the conversation was opened, or last reopened by the customer.
    pub opened_at: Timestamp,
    /// The first agent's reply since `opened_at`.
    pub first_response_at: Option<Timestamp>,
    pub first_response_seconds: Option<i64>,
    pub resolved_at: Option<Timestamp>,
    /// From `opened_at` to `resolved_at`.
    pub resolution_seconds: Option<i64>,
    /// When the bot last answered the customer by itself (a frequent question, an order's
    /// whereabouts); it stays quiet once an agent replied or was assigned.
    pub answered_automatically_at: Option<Timestamp>,
    /// The e-mail a web chat visitor gave, unverified: it links the chat to nobody; an agent
    /// who recognises the customer merges the visitor into them.
    pub claimed_email: Option<String>,
    /// A phone number shared in the chat without the provider vouching that it is the
    /// sender's (a Viber contact card): unverified like `claimed_email`, and like it never
    /// finds a customer nor answers an order question.
    pub claimed_phone: Option<String>,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Whole seconds from `from` to `to`, when both happened.
pub fn seconds_between(from: Timestamp, to: Option<Timestamp>) -> Option<i64> {
    to.map(|to| (to.millis() - from.millis()).max(0) / 1000)
}

/// What a `PATCH /conversations/{id}` may change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConversationDraft {
    pub status: ConversationStatus,
    /// An agent, or `auto` for the next agent of the inbox in turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Asks for the next agent in turn instead of naming one.
pub const AUTO_ASSIGN: &str = "auto";

impl ConversationDraft {
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut check = Check::new();
        if let Some(assignee) = &self.assignee_id {
            check.text("assignee_id", assignee, MAX_NAME);
        }
        if let Some(team) = &self.team {
            check.text("team", team, MAX_NAME);
        }
        if self.tags.len() > MAX_TAGS {
            check.fail("tags", "too_long", format!("at most {MAX_TAGS} tags"));
        }
        for (i, tag) in self.tags.iter().enumerate() {
            check.text(&format!("tags[{i}]"), tag, MAX_TAG);
            if self.tags[..i].contains(tag) {
                check.fail(format!("tags[{i}]"), "duplicate", "is given twice");
            }
        }
        check.done()
    }
}

impl Conversation {
    pub fn to_draft(&self) -> ConversationDraft {
        ConversationDraft {
            status: self.status,
            assignee_id: self.assignee_id.clone(),
            team: self.team.clone(),
            tags: self.tags.clone(),
        }
    }
}

// ───────────────────────────── messages ─────────────────────────────

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the customer.
    In,
    /// To the customer (or a private note).
    Out,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SenderKind {
    Customer,
    Agent,
    Bot,
}

/// Where a message stands. Outgoing ones move `pending` → `sent` → `delivered` → `read`, or
/// end `failed`; incoming ones are `received`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Received,
    /// Handed to the provider, no answer yet.
    Pending,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 6] = [
        MessageStatus::Received,
        MessageStatus::Pending,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Failed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Received => "received",
            MessageStatus::Pending => "pending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<MessageStatus> {
        MessageStatus::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// The status after a provider's receipt, or `None` when the receipt tells nothing new.
    /// Receipts arrive out of order (a `delivered` after its `read`): a status never goes
    /// back, and a message the customer got never turns `failed`.
    pub fn after_receipt(self, receipt: inbound::ReceiptStatus) -> Option<MessageStatus> {
        use inbound::ReceiptStatus as R;
        let next = match receipt {
            R::Sent => MessageStatus::Sent,
            R::Delivered => MessageStatus::Delivered,
            R::Read => MessageStatus::Read,
            R::Failed => MessageStatus::Failed,
        };
        let rank = |status: MessageStatus| match status {
            MessageStatus::Received => None,
            MessageStatus::Pending | MessageStatus::Failed => Some(0),
            MessageStatus::Sent => Some(1),
            MessageStatus::Delivered => Some(2),
            MessageStatus::Read => Some(3),
        };
        let moves_on = match (rank(self), next) {
            (None, _) => false,
            (Some(now), MessageStatus::Failed) => now <= 1 && self != MessageStatus::Failed,
            (Some(now), next) => rank(next).is_some_and(|r| r > now),
        };
        moves_on.then_some(next)
    }
}

/// A WhatsApp message template, approved by Meta beforehand: the only thing that may be sent
/// outside the reply window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub name: String,
    /// The template's language as approved (`en_US`, `de`) [default: en_US].
    #[serde(default = "default_language")]
    pub language: String,
    /// The body's `{{1}}`, `{{2}}` … in order.
    #[serde(default)]
    pub params: Vec<String>,
}

fn default_language() -> String {
    "en_US".to_owned()
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    pub id: String,
    pub conversation_id: String,
    pub direction: Direction,
    pub sender_kind: SenderKind,
    /// The agent (API key) who wrote it.
    pub sender_id: Option<String>,
    pub text: Option<String>,
    pub template: Option<Template>,
    /// A note for colleagues: never sent to the customer.
    pub private: bool,
    pub provider_message_id: Option<String>,
    /// `null` for private notes.
    pub status: Option<MessageStatus>,
    /// Why sending failed.
    pub error: Option<String>,
    pub sent_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub read_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

// ───────────────────────────── replies ─────────────────────────────

/// What an agent sends: exactly one of the four.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReplyDraft {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
    /// A private note for colleagues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The short code of a canned reply, sent as its text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canned: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Text(String),
    Template(Template),
    Note(String),
    Canned(String),
}

impl ReplyDraft {
    pub fn validate(&self) -> Result<Reply, Invalid> {
        let given = [
            self.text.is_some(),
            self.template.is_some(),
            self.note.is_some(),
            self.canned.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(Invalid::one(
                "",
                "invalid",
                "give exactly one of text, template, note or canned",
            ));
        }
        let mut check = Check::new();
        let reply = if let Some(text) = &self.text {
            check.free_text("text", text, MAX_TEXT);
            Reply::Text(text.clone())
        } else if let Some(note) = &self.note {
            check.free_text("note", note, MAX_TEXT);
            Reply::Note(note.clone())
        } else if let Some(code) = &self.canned {
            check.text("canned", code, MAX_SHORT_CODE);
            Reply::Canned(code.trim().to_owned())
        } else {
            let template = self.template.clone().unwrap_or_else(|| Template {
                name: String::new(),
                language: default_language(),
                params: Vec::new(),
            });
            check_template(&mut check, &template);
            Reply::Template(template)
        };
        check.done().map(|()| reply)
    }
}

fn check_template(check: &mut Check, template: &Template) {
    check.text("template.name", &template.name, 512);
    check.text("template.language", &template.language, 20);
    if template.params.len() > MAX_TEMPLATE_PARAMS {
        check.fail(
            "template.params",
            "too_long",
            format!("at most {MAX_TEMPLATE_PARAMS} parameters"),
        );
    }
    for (i, param) in template.params.iter().enumerate() {
        check.text(&format!("template.params[{i}]"), param, 1024);
    }
}

/// Whether a conversation still takes a free-form reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Open,
    /// Messenger and Instagram: only a reply tagged `HUMAN_AGENT` (an agent answering a
    /// question the customer asked) goes through.
    HumanAgentOnly,
    Closed,
}

/// The reply window of a conversation in an inbox of `kind` whose customer last wrote at
/// `last_customer_message_at`. Channels without windows are always open.
pub fn reply_window(kind: InboxKind, last_customer_message_at: Option<Timestamp>, now: Timestamp) -> Window {
    let windowed = matches!(kind, InboxKind::Whatsapp | InboxKind::Messenger | InboxKind::Instagram);
    if !windowed {
        return Window::Open;
    }
    let Some(last) = last_customer_message_at else {
        return Window::Closed;
    };
    if now < last.plus_seconds(STANDARD_WINDOW_SECONDS) {
        Window::Open
    } else if kind != InboxKind::Whatsapp && now < last.plus_seconds(HUMAN_AGENT_WINDOW_SECONDS) {
        Window::HumanAgentOnly
    } else {
        Window::Closed
    }
}

/// How a reply goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sending {
    Standard,
    /// Tagged `HUMAN_AGENT` (Messenger, Instagram).
    HumanAgentTag,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the reply window is closed: the customer last wrote too long ago; send a template")]
    WindowClosed,
    #[error("{0} inboxes do not send templates")]
    NoTemplates(&'static str),
}

/// Whether a text (`template == false`) or template reply may go out now, and how.
pub fn check_reply(kind: InboxKind, window: Window, template: bool) -> Result<Sending, Refused> {
    if template {
        return if kind == InboxKind::Whatsapp {
            Ok(Sending::Standard)
        } else {
            Err(Refused::NoTemplates(kind.as_str()))
        };
    }
    match window {
        Window::Open => Ok(Sending::Standard),
        Window::HumanAgentOnly => Ok(Sending::HumanAgentTag),
        Window::Closed => Err(Refused::WindowClosed),
    }
}

// ───────────────────────────── canned replies ─────────────────────────────

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CannedReplyDraft {
    /// What agents type to use it (`hours`, `returns`): letters, digits, `_` and `-`.
    pub short_code: String,
    pub text: String,
}

impl CannedReplyDraft {
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut check = Check::new();
        check.text("short_code", &self.short_code, MAX_SHORT_CODE);
        let allowed = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
        if !self.short_code.chars().all(allowed) {
            check.fail("short_code", "invalid", "letters, digits, _ and - only");
        }
        check.free_text("text", &self.text, MAX_TEXT);
        check.done()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CannedReply {
    pub id: String,
    pub short_code: String,
    pub text: String,
    pub created_at: Timestamp,
}

/// The identity kind a channel knows its customers by.
pub const fn identity_kind(kind: InboxKind) -> IdentityKind {
    match kind {
        InboxKind::Telegram => IdentityKind::Telegram,
        InboxKind::Whatsapp => IdentityKind::Whatsapp,
        InboxKind::Messenger => IdentityKind::Messenger,
        InboxKind::Instagram => IdentityKind::Instagram,
        InboxKind::Viber => IdentityKind::Viber,
        InboxKind::Email => IdentityKind::Email,
        InboxKind::Webchat => IdentityKind::Webchat,
        InboxKind::Api => IdentityKind::External,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const HOUR: i64 = 3600;

    fn at(seconds: i64) -> Timestamp {
        Timestamp(1_790_000_000_000).plus_seconds(seconds)
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in InboxKind::ALL {
            assert_eq!(InboxKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
        }
        assert_eq!(InboxKind::parse("sms"), None);
    }

    #[test]
    fn each_kind_names_exactly_the_credentials_it_reads() {
        for kind in InboxKind::ALL {
            let credentials: serde_json::Map<String, Value> = kind
                .credential_fields()
                .iter()
                .map(|field| {
                    let value = match *field {
                        "smtp_url" => "smtp://mail.example.com:587",
                        "from_address" => "shop@example.com",
                        "webhook_url" => "https://example.com/replies",
                        _ => "abcdefghijklmnopqrstuvwxyz012345",
                    };
                    (field.to_string(), json!(value))
                })
                .collect();
            let parsed = Credentials::parse(kind, &Value::Object(credentials));
            assert!(parsed.is_ok(), "{kind:?}: {:?}", parsed.err());
        }
    }

    const PUBLIC: Destinations = Destinations::PublicOnly;

    #[test]
    fn servers_the_hub_calls_must_be_public_unless_private_ones_are_allowed() {
        let api = new_inbox(
            InboxKind::Api,
            json!({"webhook_url": "http://169.254.169.254/latest", "secret": "api-secret-0123456789"}),
        );
        let api = NewInbox {
            api_base_url: Some("http://[::ffff:127.0.0.1]:8080".into()),
            ..api
        };
        let error = api.validate(PUBLIC).unwrap_err();
        let refused: Vec<(String, String)> = error.0.into_iter().map(|e| (e.field, e.code)).collect();
        assert_eq!(
            refused,
            [
                ("api_base_url".to_owned(), "private_destination".to_owned()),
                ("credentials.webhook_url".to_owned(), "private_destination".to_owned())
            ]
        );
        assert!(api.validate(Destinations::PrivateAllowed).is_ok());
        let email = json!({"smtp_url": "smtps://u:p@2130706433", "from_address": "shop@example.org",
                           "inbound_secret": "relay-secret-0123456789"});
        let draft = InboxDraft {
            name: "Mail".into(),
            sales_channel_id: None,
            agent_ids: vec![],
            credentials: Some(email),
        };
        assert_eq!(
            fields(draft.validate(InboxKind::Email, PUBLIC).unwrap_err()),
            ["credentials.smtp_url"]
        );
        let plain = new_inbox(
            InboxKind::Email,
            json!({"smtp_url": "smtp://mail.example.org:25?tls=none", "from_address": "shop@example.org",
                   "inbound_secret": "relay-secret-0123456789"}),
        );
        let error = plain.validate(Destinations::PrivateAllowed).unwrap_err();
        assert_eq!(error.0[0].code, "tls_required");
    }

    fn new_inbox(kind: InboxKind, credentials: Value) -> NewInbox {
        NewInbox {
            kind,
            name: "Support".into(),
            credentials,
            api_base_url: None,
            sales_channel_id: None,
            agent_ids: vec![],
        }
    }

    fn fields(invalid: Invalid) -> Vec<String> {
        invalid.0.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn credentials_are_checked_per_kind() {
        let telegram = new_inbox(
            InboxKind::Telegram,
            json!({"bot_token": "123:abc", "secret_token": "s3cr3t-token_0123456789"}),
        );
        assert!(matches!(telegram.validate(PUBLIC), Ok(Credentials::Telegram(_))));
        let missing = new_inbox(InboxKind::Whatsapp, json!({"access_token": "x"}));
        let error = missing.validate(PUBLIC).unwrap_err();
        assert_eq!(fields(error.clone()), ["credentials"]);
        assert!(error.0[0].message.contains("phone_number_id"), "{error:?}");
        let blank = new_inbox(
            InboxKind::Messenger,
            json!({"page_access_token": " ", "page_id": "1", "app_secret": "a", "verify_token": "v"}),
        );
        assert_eq!(
            fields(blank.validate(PUBLIC).unwrap_err()),
            [
                "credentials.page_access_token",
                "credentials.app_secret",
                "credentials.verify_token"
            ]
        );
        let bad_secret = new_inbox(
            InboxKind::Telegram,
            json!({"bot_token": "1:a", "secret_token": "not allowed, at all!"}),
        );
        assert_eq!(
            fields(bad_secret.validate(PUBLIC).unwrap_err()),
            ["credentials.secret_token"]
        );
        let api = new_inbox(InboxKind::Api, json!({"webhook_url": "ftp://x", "secret": "short"}));
        assert_eq!(
            fields(api.validate(PUBLIC).unwrap_err()),
            ["credentials.webhook_url", "credentials.secret"]
        );
        let extra = new_inbox(InboxKind::Viber, json!({"auth_token": "t", "other": 1}));
        assert_eq!(fields(extra.validate(PUBLIC).unwrap_err()), ["credentials"]);
        let short = new_inbox(InboxKind::Viber, json!({"auth_token": "0123456789abcde"}));
        let error = short.validate(PUBLIC).unwrap_err();
        assert_eq!(
            (error.0[0].field.as_str(), error.0[0].code.as_str()),
            ("credentials.auth_token", "too_short")
        );
    }

    #[test]
    fn bad_fields_are_all_reported() {
        let inbox = NewInbox {
            name: " ".into(),
            api_base_url: Some("not a url".into()),
            agent_ids: vec!["ann".into(), "ann".into()],
            ..new_inbox(InboxKind::Email, json!({}))
        };
        assert_eq!(
            fields(inbox.validate(PUBLIC).unwrap_err()),
            ["name", "api_base_url", "agent_ids[1]", "credentials"]
        );
        let email = new_inbox(
            InboxKind::Email,
            json!({"smtp_url": "http://x", "from_address": "shop", "inbound_secret": "s"}),
        );
        assert_eq!(
            fields(email.validate(PUBLIC).unwrap_err()),
            [
                "credentials.smtp_url",
                "credentials.from_address",
                "credentials.inbound_secret"
            ]
        );
        let email = new_inbox(
            InboxKind::Email,
            json!({"smtp_url": "smtps://u:p@mail.example.org", "from_address": "shop@example.org",
                   "inbound_secret": "relay-secret-0123456789"}),
        );
        assert!(matches!(email.validate(PUBLIC), Ok(Credentials::Email(_))));
    }

    #[test]
    fn credentials_round_trip_through_storage_and_never_debug_print() {
        let value = json!({"access_token": "EAAG", "phone_number_id": "1065", "app_secret": "shh-0123456789abcdef",
                           "verify_token": "verify-0123456789"});
        let credentials = Credentials::parse(InboxKind::Whatsapp, &value).unwrap();
        assert_eq!(credentials.to_json(), value);
        assert_eq!(credentials.verify_token(), Some("verify-0123456789"));
        assert!(!format!("{credentials:?}").contains("shh"));
        assert_eq!(
            Credentials::parse(InboxKind::Webchat, &json!({})).unwrap().to_json(),
            json!({})
        );
    }

    #[test]
    fn base_urls_default_to_the_provider_and_lose_a_trailing_slash() {
        let mut inbox = Inbox {
            id: "inb_1".into(),
            kind: InboxKind::Telegram,
            name: "Bot".into(),
            api_base_url: None,
            sales_channel_id: None,
            agent_ids: vec![],
            version: 1,
            created_at: at(0),
            updated_at: at(0),
        };
        assert_eq!(inbox.api_base(), "https://api.telegram.org");
        inbox.api_base_url = Some("http://127.0.0.1:9/".into());
        assert_eq!(inbox.api_base(), "http://127.0.0.1:9");
    }

    #[test]
    fn round_robin_takes_turns_and_starts_over() {
        let agents: Vec<String> = ["ann", "bob", "cem"].map(String::from).to_vec();
        assert_eq!(next_agent(&agents, None), Some("ann"));
        assert_eq!(next_agent(&agents, Some("ann")), Some("bob"));
        assert_eq!(next_agent(&agents, Some("cem")), Some("ann"));
        assert_eq!(next_agent(&agents, Some("gone")), Some("ann"));
        assert_eq!(next_agent(&[], Some("ann")), None);
    }

    #[test]
    fn whatsapp_takes_text_for_a_day_then_only_templates() {
        let wrote = Some(at(0));
        assert_eq!(reply_window(InboxKind::Whatsapp, wrote, at(23 * HOUR)), Window::Open);
        assert_eq!(reply_window(InboxKind::Whatsapp, wrote, at(24 * HOUR)), Window::Closed);
        let closed = reply_window(InboxKind::Whatsapp, wrote, at(25 * HOUR));
        assert_eq!(
            check_reply(InboxKind::Whatsapp, closed, false),
            Err(Refused::WindowClosed)
        );
        assert_eq!(check_reply(InboxKind::Whatsapp, closed, true), Ok(Sending::Standard));
        assert_eq!(reply_window(InboxKind::Whatsapp, None, at(0)), Window::Closed);
    }

    #[test]
    fn messenger_needs_the_human_agent_tag_after_a_day_and_closes_after_a_week() {
        for kind in [InboxKind::Messenger, InboxKind::Instagram] {
            let wrote = Some(at(0));
            assert_eq!(reply_window(kind, wrote, at(HOUR)), Window::Open);
            let tagged = reply_window(kind, wrote, at(25 * HOUR));
            assert_eq!(tagged, Window::HumanAgentOnly);
            assert_eq!(check_reply(kind, tagged, false), Ok(Sending::HumanAgentTag));
            assert_eq!(reply_window(kind, wrote, at(7 * 24 * HOUR)), Window::Closed);
            assert_eq!(
                check_reply(kind, Window::Open, true),
                Err(Refused::NoTemplates(kind.as_str()))
            );
        }
    }

    #[test]
    fn other_channels_have_no_window() {
        for kind in [InboxKind::Telegram, InboxKind::Viber, InboxKind::Api] {
            assert_eq!(reply_window(kind, Some(at(0)), at(400 * 24 * HOUR)), Window::Open);
            assert_eq!(reply_window(kind, None, at(0)), Window::Open);
        }
    }

    #[test]
    fn a_reply_is_exactly_one_thing() {
        let text = ReplyDraft {
            text: Some("Hello".into()),
            ..ReplyDraft::default()
        };
        assert_eq!(text.validate(), Ok(Reply::Text("Hello".into())));
        let template: ReplyDraft =
            serde_json::from_value(json!({"template": {"name": "order_update", "params": ["#1001"]}})).unwrap();
        let Ok(Reply::Template(t)) = template.validate() else {
            panic!("a template")
        };
        assert_eq!((t.language.as_str(), t.params.len()), ("en_US", 1));
        assert!(ReplyDraft::default().validate().is_err());
        let two = ReplyDraft {
            text: Some("a".into()),
            note: Some("b".into()),
            ..ReplyDraft::default()
        };
        assert!(two.validate().is_err());
        let blank = ReplyDraft {
            note: Some("  ".into()),
            ..ReplyDraft::default()
        };
        assert_eq!(blank.validate().unwrap_err().0[0].field, "note");
    }

    #[test]
    fn conversation_patches_are_checked() {
        let draft = ConversationDraft {
            status: ConversationStatus::Pending,
            assignee_id: Some(AUTO_ASSIGN.into()),
            team: Some("".into()),
            tags: vec!["vip".into(), "vip".into()],
        };
        assert_eq!(fields(draft.validate().unwrap_err()), ["team", "tags[1]"]);
    }

    #[test]
    fn canned_short_codes_are_words() {
        let good = CannedReplyDraft {
            short_code: "opening-hours".into(),
            text: "9 to 6".into(),
        };
        assert_eq!(good.validate(), Ok(()));
        let bad = CannedReplyDraft {
            short_code: "two words".into(),
            text: "x".into(),
        };
        assert_eq!(fields(bad.validate().unwrap_err()), ["short_code"]);
    }

    #[test]
    fn metrics_count_whole_seconds() {
        assert_eq!(seconds_between(at(0), Some(at(90))), Some(90));
        assert_eq!(seconds_between(at(0), None), None);
    }

    fn receipt() -> impl Strategy<Value = inbound::ReceiptStatus> {
        use inbound::ReceiptStatus as R;
        prop_oneof![Just(R::Sent), Just(R::Delivered), Just(R::Read), Just(R::Failed)]
    }

    proptest! {
        #[test]
        fn statuses_never_go_back_whatever_order_receipts_come_in(
            receipts in proptest::collection::vec(receipt(), 0..12),
        ) {
            let rank = |s: MessageStatus| match s {
                MessageStatus::Sent => 1,
                MessageStatus::Delivered => 2,
                MessageStatus::Read => 3,
                _ => 0,
            };
            let mut status = MessageStatus::Pending;
            let mut reached = false;
            for receipt in receipts {
                if let Some(next) = status.after_receipt(receipt) {
                    prop_assert!(next == MessageStatus::Failed || rank(next) > rank(status));
                    prop_assert!(!(reached && next == MessageStatus::Failed));
                    status = next;
                    reached |= rank(status) >= 2;
                }
            }
            prop_assert_eq!(MessageStatus::Received.after_receipt(inbound::ReceiptStatus::Read), None);
        }

        #[test]
        fn windows_only_close_as_time_passes(
            kind in proptest::sample::select(InboxKind::ALL.to_vec()),
            a in 0i64..(10 * 24 * HOUR),
            b in 0i64..(10 * 24 * HOUR),
        ) {
            let openness = |w: Window| match w {
                Window::Open => 2,
                Window::HumanAgentOnly => 1,
                Window::Closed => 0,
            };
            let (early, late) = (a.min(b), a.max(b));
            let wrote = Some(at(0));
            prop_assert!(openness(reply_window(kind, wrote, at(early))) >= openness(reply_window(kind, wrote, at(late))));
        }

        #[test]
        fn round_robin_always_picks_one_of_the_agents(
            agents in proptest::collection::vec("[a-z]{1,4}", 1..6),
            last in proptest::option::of("[a-z]{1,4}"),
        ) {
            let next = next_agent(&agents, last.as_deref());
            prop_assert!(next.is_some_and(|n| agents.iter().any(|a| a == n)));
        }
    }
}
