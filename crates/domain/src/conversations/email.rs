//! E-mail: raw MIME posted by an inbound relay, read with a real MIME parser, and the
//! message ids a reply is threaded by.

use mail_parser::{HeaderValue, MessageParser};
use sha2::{Digest, Sha256};

use super::inbound::InboundMessage;
use crate::customers::{Identity, IdentityKind};
use crate::validation::without_nul;

/// A customer's e-mail as the inbox reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundEmail {
    /// `provider_message_id` is the `Message-ID` (`<…>`), `address` the sender's address.
    pub message: InboundMessage,
    /// The ids it answers (`In-Reply-To`, then `References`, nearest first), each `<…>`: a
    /// reply to one of the hub's messages belongs to that message's conversation.
    pub answers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("the body is not an e-mail message")]
    NotMime,
    #[error("the e-mail names no sender address")]
    NoSender,
}

/// Reads a raw message. The text is the `text/plain` part, or the HTML one without its tags;
/// a message without a `Message-ID` is named by a hash of its bytes, so that a relay
/// delivering it again stores it once.
pub fn parse(raw: &[u8]) -> Result<InboundEmail, Unreadable> {
    let parsed = MessageParser::default().parse(raw).ok_or(Unreadable::NotMime)?;
    let sender = parsed
        .from()
        .and_then(|from| from.first())
        .ok_or(Unreadable::NoSender)?;
    let address = sender
        .address()
        .map(|a| a.trim().to_lowercase())
        .filter(|a| a.contains('@'));
    let address = address.ok_or(Unreadable::NoSender)?;
    let message_id = match parsed.message_id() {
        Some(id) => bracketed(id),
        None => format!("<{}@omnihub.invalid>", hex::encode(Sha256::digest(raw))),
    };
    let mut answers = ids(parsed.in_reply_to());
    answers.extend(ids(parsed.references()).into_iter().rev());
    answers.iter_mut().for_each(without_nul);
    let text = parsed
        .body_text(0)
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    Ok(InboundEmail {
        message: InboundMessage {
            provider_message_id: message_id,
            address: address.clone(),
            identities: vec![Identity::new(IdentityKind::Email, address)],
            name: sender.name().map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()),
            text,
            at: None,
            claimed_email: None,
            claimed_phone: None,
        }
        .without_nul(),
        answers,
    })
}

fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => vec![bracketed(id)],
        HeaderValue::TextList(list) => list.iter().map(|id| bracketed(id)).collect(),
        _ => Vec::new(),
    }
}

/// Message ids are kept as they appear in headers, `<…>`, so that outgoing `In-Reply-To`
/// and `References` can name them as they are.
fn bracketed(id: &str) -> String {
    format!("<{}>", id.trim().trim_start_matches('<').trim_end_matches('>'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = "From: Ann Lee <Ann@Example.com>\r\nTo: shop@example.org\r\nSubject: Re: Your order\r\n\
        Message-ID: <reply-1@mail.example.com>\r\nIn-Reply-To: <msg_1@example.org>\r\n\
        References: <first@mail.example.com> <msg_1@example.org>\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
        Where is my parcel?\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>Where is my <b>parcel</b>?</p>\r\n--b--\r\n";

    #[test]
    fn the_plain_part_the_sender_and_the_thread_are_read() {
        let read = parse(PLAIN.as_bytes()).unwrap();
        assert_eq!(read.message.provider_message_id, "<reply-1@mail.example.com>");
        assert_eq!(read.message.address, "ann@example.com");
        assert_eq!(
            read.message.identities,
            [Identity::new(IdentityKind::Email, "ann@example.com")]
        );
        assert_eq!(read.message.name.as_deref(), Some("Ann Lee"));
        assert_eq!(read.message.text.as_deref(), Some("Where is my parcel?"));
        assert_eq!(
            read.answers,
            ["<msg_1@example.org>", "<msg_1@example.org>", "<first@mail.example.com>"]
        );
    }

    #[test]
    fn html_alone_is_read_without_its_tags() {
        let html = "From: kim@example.com\r\nMessage-ID: <h@x>\r\nContent-Type: text/html\r\n\r\n\
            <html><body><p>Hello <b>there</b></p></body></html>\r\n";
        let read = parse(html.as_bytes()).unwrap();
        let text = read.message.text.unwrap();
        assert!(
            text.contains("Hello") && text.contains("there") && !text.contains('<'),
            "{text}"
        );
        assert!(read.answers.is_empty());
    }

    #[test]
    fn a_message_without_an_id_is_named_by_its_bytes_and_one_without_a_sender_is_refused() {
        let raw = b"From: kim@example.com\r\n\r\nhi\r\n";
        let first = parse(raw).unwrap().message.provider_message_id;
        assert_eq!(first, parse(raw).unwrap().message.provider_message_id);
        assert!(first.ends_with("@omnihub.invalid>"));
        assert_eq!(parse(b"Subject: x\r\n\r\nhi").unwrap_err(), Unreadable::NoSender);
    }
}
