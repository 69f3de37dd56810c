//! What the hub hands to the courier that takes a reply to the conversation's provider, and
//! what it hands back. The store builds the target and keeps the outcome; the courier only
//! calls out, with what it was given.

use std::future::Future;
use std::pin::Pin;

use super::{Conversation, Credentials, Inbox, Message, Sending};
use crate::Timestamp;

/// Everything needed to send into a conversation.
#[derive(Debug, Clone)]
pub struct ReplyTarget {
    pub conversation: Conversation,
    pub inbox: Inbox,
    pub credentials: Credentials,
    /// The customer as the provider knows them.
    pub address: String,
    /// The latest message ids of the conversation's mails, oldest first: a reply by mail
    /// answers the last. Empty outside e-mail inboxes.
    pub email_references: Vec<String>,
}

/// What the provider made of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sent { provider_message_id: Option<String> },
    Failed(String),
}

/// A delivery on its way: the courier's work, awaited by whoever asked for it.
pub type Delivering<'a> = Pin<Box<dyn Future<Output = Delivery> + Send + 'a>>;

/// Takes a recorded reply to the conversation's provider and answers what became of it.
/// `now` is the moment of sending, as the hub's clock tells it (API-channel replies are
/// signed with it).
pub trait Courier: Send + Sync {
    fn deliver<'a>(
        &'a self,
        target: &'a ReplyTarget,
        pending: &'a Message,
        sending: Sending,
        now: Timestamp,
    ) -> Delivering<'a>;
}
