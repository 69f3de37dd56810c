//! Takes agents' replies to the providers: one POST (or one mail over SMTP, see `smtp`),
//! tried again with backoff while the provider is rate-limiting or failing on its side, given
//! up as `failed` after a few tries.
//!
//! Provider URLs carry tokens (Telegram's in the path, Messenger's in the query): neither a
//! URL nor a body is ever logged.

mod smtp;

use std::time::Duration;

use omnihub_domain::Timestamp;
use omnihub_domain::conversations::courier::{Courier, Delivering, Delivery, ReplyTarget};
use omnihub_domain::conversations::outbound::{
    self, Answer, Content, Outcome, Outgoing, ProviderRequest, outcome, retry_pause_ms,
};
use omnihub_domain::conversations::{Credentials, InboxKind, Message, Sending};
use reqwest::header;

use crate::egress::{self, Egress, HttpClient};

/// How long a provider may take to answer one attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// More of an answer than this is not read: the ids and reasons are at its start.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The providers' APIs and SMTP servers: where the API's and the admin app's replies go,
/// only ever through the [`Egress`].
#[derive(Clone)]
pub struct Providers {
    egress: Egress,
    /// Over rustls with ring (installed at start-up).
    client: HttpClient,
}

impl Providers {
    pub fn new(egress: Egress) -> Result<Providers, reqwest::Error> {
        let client = egress.http_client(ATTEMPT_TIMEOUT, concat!("Omnihub/", env!("CARGO_PKG_VERSION")))?;
        Ok(Providers { egress, client })
    }

    /// Sends a recorded reply (an agent's or the bot's) through the conversation's provider;
    /// `now` signs API-channel replies.
    pub async fn deliver(&self, target: &ReplyTarget, pending: &Message, sending: Sending, now: Timestamp) -> Delivery {
        let content = match (&pending.template, &pending.text) {
            (Some(template), _) => Content::Template(template),
            (None, Some(text)) => Content::Text(text),
            (None, None) => return Delivery::Failed("the reply has nothing to send".into()),
        };
        let out = Outgoing {
            base: target.inbox.api_base(),
            address: &target.address,
            content,
            sending,
            sender_name: &target.inbox.name,
            message_id: &pending.id,
            conversation_id: &target.conversation.id,
            now_unix: now.millis() / 1000,
        };
        if let (Credentials::Email(email), Content::Text(text)) = (&target.credentials, &out.content) {
            return smtp::reply(&self.egress, target, email, &pending.id, text).await;
        }
        if target.inbox.kind == InboxKind::Webchat {
            // The visitor's stream reads replies from the event log: stored is delivered.
            return Delivery::Sent {
                provider_message_id: None,
            };
        }
        match outbound::request(&target.credentials, &out) {
            Ok(request) => send(&self.client, target.inbox.kind, &target.address, &request).await,
            Err(unsendable) => Delivery::Failed(unsendable.to_string()),
        }
    }
}

impl Courier for Providers {
    fn deliver<'a>(
        &'a self,
        target: &'a ReplyTarget,
        pending: &'a Message,
        sending: Sending,
        now: Timestamp,
    ) -> Delivering<'a> {
        Box::pin(Providers::deliver(self, target, pending, sending, now))
    }
}

/// Sends a reply to the customer at `address` in an inbox of `kind`.
async fn send(client: &HttpClient, kind: InboxKind, address: &str, request: &ProviderRequest) -> Delivery {
    let mut failed = 0;
    loop {
        match attempt(client, kind, address, request).await {
            Outcome::Sent { provider_message_id } => return Delivery::Sent { provider_message_id },
            Outcome::Failed(reason) => return Delivery::Failed(reason),
            Outcome::Retry { after_seconds } => {
                failed += 1;
                let Some(pause) = retry_pause_ms(failed, after_seconds) else {
                    return Delivery::Failed(format!("the provider kept failing; gave up after {failed} attempts"));
                };
                tracing::info!(
                    provider = kind.as_str(),
                    failed,
                    pause_ms = pause,
                    "provider busy; trying again"
                );
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
    }
}

async fn attempt(client: &HttpClient, kind: InboxKind, address: &str, request: &ProviderRequest) -> Outcome {
    let mut call = match client.post(&request.url) {
        Ok(call) => call
            .header(header::CONTENT_TYPE, "application/json")
            .body(request.body.clone()),
        Err(refused) => return Outcome::Failed(refused.to_string()),
    };
    for (name, value) in &request.headers {
        call = call.header(*name, value);
    }
    let response = match call.send().await {
        Ok(response) => response,
        Err(error) if egress::not_allowed(&error) => return Outcome::Failed(egress::failure(&error).to_owned()),
        Err(error) => {
            tracing::warn!(
                provider = kind.as_str(),
                error = egress::failure(&error),
                "provider unreachable"
            );
            return Outcome::Retry { after_seconds: None };
        }
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = read_answer(response).await;
    let answer = Answer {
        status,
        retry_after: retry_after.as_deref(),
        body: &body,
    };
    outcome(kind, address, &answer)
}

/// The start of the answer's body; an answer cut short is read as far as it came.
async fn read_answer(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body
}
