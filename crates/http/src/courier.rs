//! Takes agents' replies to the providers: one POST (or one mail over SMTP), tried again with
//! backoff while the provider is rate-limiting or failing on its side, given up as `failed`
//! after a few tries.
//!
//! Provider URLs carry tokens (Telegram's in the path, Messenger's in the query): neither a
//! URL nor a body is ever logged.

use std::time::Duration;

use axum::http::header;
use futures_util::future::BoxFuture;
use lettre::AsyncTransport;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use omnihub_domain::conversations::outbound::{
    self, Answer, Content, Outcome, Outgoing, ProviderRequest, outcome, retry_pause_ms,
};
use omnihub_domain::conversations::smtp::smtp_server;
use omnihub_domain::conversations::{Credentials, EmailCredentials, InboxKind, Message, Sending};
use omnihub_store::{Courier, Delivery, ReplyTarget, Store};

use crate::egress::{self, Egress, HttpClient};

/// How long a provider may take to answer one attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// More of an answer than this is not read: the ids and reasons are at its start.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The providers' APIs and SMTP servers: where the API's and the admin app's replies go,
/// only ever through the [`Egress`].
#[derive(Clone)]
pub struct Providers {
    store: Store,
    egress: Egress,
    /// Over rustls with ring (installed at start-up).
    client: HttpClient,
}

impl Providers {
    pub fn new(store: Store, egress: Egress) -> Result<Providers, reqwest::Error> {
        let client = egress.http_client(ATTEMPT_TIMEOUT, concat!("Omnihub/", env!("CARGO_PKG_VERSION")))?;
        Ok(Providers { store, egress, client })
    }

    /// Sends a recorded reply (an agent's or the bot's) through the conversation's provider.
    pub async fn deliver(&self, target: &ReplyTarget, pending: &Message, sending: Sending) -> Delivery {
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
            now_unix: self.store.now().millis() / 1000,
        };
        if let (Credentials::Email(email), Content::Text(text)) = (&target.credentials, &out.content) {
            return self.deliver_email(target, email, &pending.id, text).await;
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

    /// A reply by mail, answering the latest mail of the conversation's thread; its own
    /// `Message-ID` is `<message id@sender's domain>`.
    async fn deliver_email(
        &self,
        target: &ReplyTarget,
        email: &EmailCredentials,
        message_id: &str,
        text: &str,
    ) -> Delivery {
        let references = match self.store.email_references(&target.conversation.id).await {
            Ok(references) => references,
            Err(error) => return Delivery::Failed(format!("the thread could not be read: {error}")),
        };
        let domain = email.from_address.rsplit('@').next().unwrap_or("omnihub.invalid");
        let mail = Mail {
            to: &target.address,
            subject: &target.inbox.name,
            text,
            message_id: format!("<{message_id}@{domain}>"),
            references: &references,
        };
        send_email(&self.egress, email, &mail).await
    }
}

impl Courier for Providers {
    fn deliver<'a>(
        &'a self,
        target: &'a ReplyTarget,
        pending: &'a Message,
        sending: Sending,
    ) -> BoxFuture<'a, Delivery> {
        Box::pin(Providers::deliver(self, target, pending, sending))
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

/// A reply by e-mail, threaded into the customer's mails.
struct Mail<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    /// Ours, `<…>`: kept as the provider's id so that the customer's answer threads back.
    pub message_id: String,
    /// The thread's message ids, oldest first; the last is what this mail answers.
    pub references: &'a [String],
}

/// Sends a mail over the inbox's SMTP server — `smtp://` with STARTTLS required, `smtps://`
/// with TLS from the start, in the clear only to a relay on this machine — at an address the
/// egress rule allows, trying again on the server's temporary refusals and time-outs. A
/// server that does not offer STARTTLS gets nothing: no login, no mail. Neither the URL (it
/// holds the password) nor an address is ever logged.
async fn send_email(egress: &Egress, credentials: &EmailCredentials, mail: &Mail<'_>) -> Delivery {
    let message = match build_mail(credentials, mail) {
        Ok(message) => message,
        Err(reason) => return Delivery::Failed(reason),
    };
    let server = match smtp_server(&credentials.smtp_url) {
        Ok(server) => server,
        Err(bad) => return Delivery::Failed(format!("the inbox's smtp_url cannot be used: {bad}")),
    };
    let address = match egress.resolve(&server.host, server.port).await {
        Ok(address) => address,
        Err(refused) => return Delivery::Failed(refused.to_string()),
    };
    let Ok(transport) = egress.smtp_transport(&server, address, ATTEMPT_TIMEOUT) else {
        return Delivery::Failed("no TLS set-up for the SMTP server".into());
    };
    let mut failed = 0;
    loop {
        let error = match transport.send(message.clone()).await {
            Ok(_) => {
                return Delivery::Sent {
                    provider_message_id: Some(mail.message_id.clone()),
                };
            }
            Err(error) => error,
        };
        failed += 1;
        let pause = retry_pause_ms(failed, None).filter(|_| error.is_transient() || error.is_timeout());
        let Some(pause) = pause else {
            return Delivery::Failed(smtp_failure(&error));
        };
        tracing::info!(
            provider = "email",
            failed,
            pause_ms = pause,
            "SMTP server busy; trying again"
        );
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// What went wrong with the SMTP server, in a few words and its reply code; never its text.
fn smtp_failure(error: &lettre::transport::smtp::Error) -> String {
    if error.is_timeout() {
        "the SMTP server timed out".to_owned()
    } else if let Some(code) = error.status() {
        format!("the SMTP server refused the mail ({code})")
    } else if error.is_tls() {
        "the TLS handshake with the SMTP server failed".to_owned()
    } else if error.is_client() {
        "the SMTP server offers no STARTTLS (or no login method the hub uses): nothing was sent".to_owned()
    } else {
        "could not connect to the SMTP server".to_owned()
    }
}

fn build_mail(credentials: &EmailCredentials, mail: &Mail<'_>) -> Result<lettre::Message, String> {
    let from: Mailbox = credentials
        .from_address
        .parse()
        .map_err(|_| "the inbox's from_address is not an e-mail address".to_owned())?;
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|_| "the customer's address is not an e-mail address".to_owned())?;
    let mut builder = lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(mail.subject)
        .message_id(Some(mail.message_id.clone()))
        .header(ContentType::TEXT_PLAIN);
    if let Some(answered) = mail.references.last() {
        builder = builder
            .in_reply_to(answered.clone())
            .references(mail.references.join(" "));
    }
    builder
        .body(mail.text.to_owned())
        .map_err(|e| format!("the mail cannot be built: {e}"))
}
