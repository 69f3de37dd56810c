//! Replies of e-mail inboxes, by mail over the inbox's SMTP server, threaded into the
//! customer's mails.

use std::time::Duration;

use lettre::AsyncTransport;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use omnihub_domain::conversations::EmailCredentials;
use omnihub_domain::conversations::courier::{Delivery, ReplyTarget};
use omnihub_domain::conversations::outbound::retry_pause_ms;
use omnihub_domain::conversations::smtp::smtp_server;

use super::ATTEMPT_TIMEOUT;
use crate::egress::Egress;

/// A reply by mail, answering the latest mail of the conversation's thread; its own
/// `Message-ID` is `<message id@sender's domain>`.
pub(super) async fn reply(
    egress: &Egress,
    target: &ReplyTarget,
    email: &EmailCredentials,
    message_id: &str,
    text: &str,
) -> Delivery {
    let domain = email.from_address.rsplit('@').next().unwrap_or("omnihub.invalid");
    let mail = Mail {
        to: &target.address,
        subject: &target.inbox.name,
        text,
        message_id: format!("<{message_id}@{domain}>"),
        references: &target.email_references,
    };
    send_email(egress, email, &mail).await
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
