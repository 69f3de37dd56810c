//! Agents' replies and notes, and canned replies.
//!
//! A reply is recorded `pending` before it goes to the provider and finished with the answer,
//! so that a reply is never sent without a trace, even if the server stops in between.
//! [`Store::send_reply`] is the one way an agent's reply goes out, from the API and the admin
//! app alike; the provider call itself is the [`Courier`]'s, which the server supplies.

use omnihub_domain::conversations::courier::{Courier, Delivery, ReplyTarget};
use omnihub_domain::conversations::{
    CannedReply, CannedReplyDraft, Conversation, Credentials, Message, MessageStatus, Refused, Reply, SenderKind,
    Sending, check_reply, reply_window,
};
use omnihub_domain::events::{EventType, NewEvent};
use omnihub_domain::id::{self, Kind};
use omnihub_domain::{Invalid, Timestamp};
use serde_json::json;

use super::{read_conversation, read_message};
use crate::customers::timeline;
use crate::db::Page;
use crate::db::events::append;
use crate::db::{Row, Tx, sql};
use crate::{Error, Store};

fn canned(row: &Row) -> Result<CannedReply, Error> {
    Ok(CannedReply {
        id: row.text("id")?,
        short_code: row.text("short_code")?,
        text: row.text("text")?,
        created_at: Timestamp(row.int("created_at")?),
    })
}

impl Store {
    /// An agent's reply (text, template, canned reply) sent through the conversation's channel,
    /// or a private note. A text outside the channel's reply window is
    /// [`Error::WindowClosed`]; the answer is the message as the provider left it.
    pub async fn send_reply(
        &self,
        conversation_id: &str,
        reply: Reply,
        by: &str,
        courier: &dyn Courier,
    ) -> Result<Message, Error> {
        let reply = self.with_canned_text(reply).await?;
        if let Reply::Note(_) = reply {
            return self.record_reply(conversation_id, reply, by).await;
        }
        let target = self.reply_target(conversation_id).await?;
        let sending = self.may_send(&target, &reply)?;
        let pending = self.record_reply(conversation_id, reply, by).await?;
        let delivery = courier.deliver(&target, &pending, sending, self.now()).await;
        self.finish_reply(&pending.id, delivery).await
    }

    /// A canned reply is sent as its text.
    async fn with_canned_text(&self, reply: Reply) -> Result<Reply, Error> {
        let Reply::Canned(code) = reply else {
            return Ok(reply);
        };
        match self.canned_text(&code).await {
            Ok(text) => Ok(Reply::Text(text)),
            Err(Error::NotFound(_)) => {
                Err(Invalid::one("canned", "not_found", format!("there is no canned reply {code}")).into())
            }
            Err(error) => Err(error),
        }
    }

    /// Whether the conversation's channel takes this reply now, and how it is to be sent.
    fn may_send(&self, target: &ReplyTarget, reply: &Reply) -> Result<Sending, Error> {
        let kind = target.inbox.kind;
        let window = reply_window(kind, target.conversation.last_customer_message_at, self.now());
        let template = matches!(reply, Reply::Template(_));
        check_reply(kind, window, template).map_err(|refused| match refused {
            Refused::WindowClosed => Error::WindowClosed(refused.to_string()),
            Refused::NoTemplates(_) => Invalid::one("template", "not_supported", refused.to_string()).into(),
        })
    }

    /// Where replies into the conversation go, with the mail thread they answer in an e-mail
    /// inbox; [`Error::Conflict`] once its customer was erased, which took the address away.
    pub async fn reply_target(&self, conversation_id: &str) -> Result<ReplyTarget, Error> {
        let mut tx = self.db.begin_read().await?;
        let conversation = read_conversation(&mut tx, conversation_id).await?;
        let address = tx
            .fetch_optional(sql("SELECT contact_address FROM conversations WHERE id = $1").bind(conversation_id))
            .await?
            .ok_or(Error::NotFound("conversation"))?
            .text("contact_address")?;
        drop(tx);
        // Erasure leaves the conversation its own id in place of the person's address.
        if address == conversation.id {
            return Err(Error::Conflict(
                "the customer was erased: there is no address to reply to".into(),
            ));
        }
        let (inbox, credentials) = self.inbox_with_credentials(&conversation.inbox_id).await?;
        let email_references = match credentials {
            Credentials::Email(_) => self.email_references(&conversation.id).await?,
            _ => Vec::new(),
        };
        Ok(ReplyTarget {
            conversation,
            inbox,
            credentials,
            address,
            email_references,
        })
    }

    /// Records an agent's reply or note. A note is done; a text or template is `pending` until
    /// [`Store::finish_reply`].
    pub async fn record_reply(&self, conversation_id: &str, reply: Reply, by: &str) -> Result<Message, Error> {
        let (conversation_id, by, clock) = (conversation_id.to_owned(), by.to_owned(), self.clock.clone());
        self.write(move |tx| {
            Box::pin(async move {
                let now = clock.now();
                let conversation = read_conversation(tx, &conversation_id).await?;
                let id = id::new(Kind::Message);
                insert_reply(tx, &id, &conversation, &reply, &by, now).await?;
                let created = read_message(tx, &id).await?;
                let data = json!({"message_id": id, "conversation_id": conversation.id, "private": created.private,
                                  "status": created.status});
                append(tx, now, NewEvent::new(EventType::MessageCreated, data));
                Ok(created)
            })
        })
        .await
    }

    /// Keeps what the provider made of a pending reply. The first reply sent since the
    /// conversation opened is its first response.
    pub async fn finish_reply(&self, message_id: &str, delivery: Delivery) -> Result<Message, Error> {
        let (message_id, clock) = (message_id.to_owned(), self.clock.clone());
        self.write(move |tx| {
            Box::pin(async move {
                let now = clock.now();
                let pending = read_message(tx, &message_id).await?;
                match delivery {
                    Delivery::Sent { provider_message_id } => {
                        mark_sent(tx, &pending, provider_message_id.as_deref(), now).await?;
                    }
                    Delivery::Failed(reason) => mark_failed(tx, &pending, &reason, now).await?,
                }
                read_message(tx, &message_id).await
            })
        })
        .await
    }

    /// The text of the canned reply with this short code.
    pub async fn canned_text(&self, short_code: &str) -> Result<String, Error> {
        let row = self
            .db
            .fetch_optional(sql("SELECT text FROM canned_replies WHERE short_code = $1").bind(short_code))
            .await?
            .ok_or(Error::NotFound("canned reply"))?;
        row.text("text")
    }

    pub async fn create_canned_reply(&self, draft: CannedReplyDraft) -> Result<CannedReply, Error> {
        draft.validate()?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let id = id::new(Kind::CannedReply);
        let added = tx
            .execute(
                sql(
                    "INSERT INTO canned_replies (id, short_code, text, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (short_code) DO NOTHING",
                )
                .bind(&id)
                .bind(draft.short_code.trim())
                .bind(draft.text.trim())
                .bind(now.millis()),
            )
            .await?;
        if added == 0 {
            return Err(Error::Conflict(format!(
                "the short code {} is taken",
                draft.short_code.trim()
            )));
        }
        let row = tx
            .fetch_optional(sql("SELECT * FROM canned_replies WHERE id = $1").bind(&id))
            .await?
            .ok_or(Error::NotFound("canned reply"))?;
        let created = canned(&row)?;
        append(&mut tx, now, NewEvent::new(EventType::CannedReplyCreated, &created));
        self.commit(tx).await?;
        Ok(created)
    }

    pub async fn canned_replies(&self, page: &Page) -> Result<(Vec<CannedReply>, Option<String>), Error> {
        let rows = self
            .db
            .fetch_all(
                sql("SELECT * FROM canned_replies WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(page.after.as_deref().unwrap_or(""))
                    .bind(page.limit + 1),
            )
            .await?;
        let items = rows.iter().map(canned).collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(items, |c| &c.id))
    }
}

async fn insert_reply(
    tx: &mut Tx,
    id: &str,
    conversation: &Conversation,
    reply: &Reply,
    by: &str,
    now: Timestamp,
) -> Result<(), Error> {
    let (text, template, private) = match reply {
        Reply::Text(text) | Reply::Canned(text) => (Some(text.trim()), None, false),
        Reply::Template(template) => (None, serde_json::to_string(template).ok(), false),
        Reply::Note(note) => (Some(note.trim()), None, true),
    };
    let status = (!private).then_some(MessageStatus::Pending.as_str());
    tx.execute(
        sql(
            "INSERT INTO messages (id, conversation_id, inbox_id, direction, sender_kind, sender_id, text, template, \
             private, status, created_at, updated_at) VALUES ($1, $2, $3, 'out', 'agent', $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(id)
        .bind(&conversation.id)
        .bind(&conversation.inbox_id)
        .bind(by)
        .bind(text)
        .bind(template)
        .bind(private)
        .bind(status)
        .bind(now.millis()),
    )
    .await?;
    Ok(())
}

async fn mark_sent(tx: &mut Tx, pending: &Message, provider_id: Option<&str>, now: Timestamp) -> Result<(), Error> {
    let provider_id = match provider_id {
        Some(id) if names_another(tx, pending, id).await? => {
            tracing::warn!(message = %pending.id, "the provider gave a message id it gave before; receipts cannot find this one");
            None
        }
        other => other,
    };
    tx.execute(
        sql(
            "UPDATE messages SET status = 'sent', provider_message_id = $2, sent_at = $3, updated_at = $3 \
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(&pending.id)
        .bind(provider_id)
        .bind(now.millis()),
    )
    .await?;
    // The first response is a person's: the bot answering at once must not hide how long
    // the customer waited for an agent.
    let by_agent = pending.sender_kind == SenderKind::Agent;
    tx.execute(
        sql(
            "UPDATE conversations SET first_response_at = CASE WHEN $3 THEN COALESCE(first_response_at, $2) \
             ELSE first_response_at END, last_message_at = $2, updated_at = $2 WHERE id = $1",
        )
        .bind(&pending.conversation_id)
        .bind(now.millis())
        .bind(by_agent),
    )
    .await?;
    let conversation = read_conversation(tx, &pending.conversation_id).await?;
    let data = json!({"message_id": pending.id, "conversation_id": conversation.id, "customer_id": conversation.customer_id,
                      "inbox_id": conversation.inbox_id, "channel": conversation.inbox_kind});
    timeline::record(
        tx,
        &conversation.customer_id,
        now,
        "message.sent",
        Some(&conversation.id),
        &data,
    )
    .await?;
    append(tx, now, NewEvent::new(EventType::MessageSent, data));
    Ok(())
}

/// Whether the provider's id is already another message's in the inbox: a provider that
/// repeats ids must not turn a sent reply into a failed request.
async fn names_another(tx: &mut Tx, pending: &Message, provider_id: &str) -> Result<bool, Error> {
    let row = tx
        .fetch_optional(
            sql(
                "SELECT id FROM messages WHERE inbox_id = (SELECT inbox_id FROM conversations WHERE id = $1) \
                 AND provider_message_id = $2 AND id <> $3",
            )
            .bind(&pending.conversation_id)
            .bind(provider_id)
            .bind(&pending.id),
        )
        .await?;
    Ok(row.is_some())
}

async fn mark_failed(tx: &mut Tx, pending: &Message, reason: &str, now: Timestamp) -> Result<(), Error> {
    tx.execute(
        sql("UPDATE messages SET status = 'failed', error = $2, updated_at = $3 WHERE id = $1 AND status = 'pending'")
            .bind(&pending.id)
            .bind(reason)
            .bind(now.millis()),
    )
    .await?;
    let data = json!({"message_id": pending.id, "conversation_id": pending.conversation_id,
                      "status": MessageStatus::Failed, "previous": pending.status});
    append(tx, now, NewEvent::new(EventType::MessageStatusChanged, data));
    Ok(())
}
