//! Conversations: inboxes (connected messaging channels), one conversation per person and
//! inbox, their messages from every provider, agents' replies and notes, assignment and
//! canned replies. Inboxes and inbound messages live in the submodules.

mod answers;
mod email;
mod inbound;
mod inboxes;
mod replies;
mod webchat;

use omnihub_domain::Timestamp;
use omnihub_domain::conversations::{
    Conversation, ConversationDraft, ConversationStatus, Direction, InboxKind, Message, MessageStatus, SenderKind,
    Template, next_agent, seconds_between,
};
use omnihub_domain::events::{EventType, NewEvent};
use serde_json::json;

use crate::db::Page;
use crate::db::events::append;
use crate::db::{Row, Tx, sql};
use crate::{Error, Store};

pub use inbound::{Received, StoredMessage};
pub use webchat::WebchatSession;

/// How many of a conversation's latest messages are shown with it.
const SHOWN_MESSAGES: i64 = 200;

fn corrupt(what: &str, value: &str) -> Error {
    Error::Corrupt(format!("unknown {what} {value}"))
}

fn conversation(row: &Row) -> Result<Conversation, Error> {
    let kind = row.text("inbox_kind")?;
    let status = row.text("status")?;
    let opened_at = Timestamp(row.int("opened_at")?);
    let first_response_at = row.opt_int("first_response_at")?.map(Timestamp);
    let resolved_at = row.opt_int("resolved_at")?.map(Timestamp);
    Ok(Conversation {
        id: row.text("id")?,
        inbox_id: row.text("inbox_id")?,
        inbox_kind: InboxKind::parse(&kind).ok_or_else(|| corrupt("inbox kind", &kind))?,
        customer_id: row.text("customer_id")?,
        status: ConversationStatus::parse(&status).ok_or_else(|| corrupt("conversation status", &status))?,
        assignee_id: row.opt_text("assignee_id")?,
        team: row.opt_text("team")?,
        tags: row.json("tags")?,
        last_customer_message_at: row.opt_int("last_customer_message_at")?.map(Timestamp),
        last_message_at: row.opt_int("last_message_at")?.map(Timestamp),
        opened_at,
        first_response_at,
        first_response_seconds: seconds_between(opened_at, first_response_at),
        resolved_at,
        resolution_seconds: seconds_between(opened_at, resolved_at),
        answered_automatically_at: row.opt_int("answered_automatically_at")?.map(Timestamp),
        claimed_email: row.opt_text("claimed_email")?,
        claimed_phone: row.opt_text("claimed_phone")?,
        version: row.int("version")?,
        created_at: Timestamp(row.int("created_at")?),
        updated_at: Timestamp(row.int("updated_at")?),
    })
}

fn message(row: &Row) -> Result<Message, Error> {
    let direction = row.text("direction")?;
    let sender = row.text("sender_kind")?;
    let status = row.opt_text("status")?;
    Ok(Message {
        id: row.text("id")?,
        conversation_id: row.text("conversation_id")?,
        direction: match direction.as_str() {
            "in" => Direction::In,
            "out" => Direction::Out,
            other => return Err(corrupt("message direction", other)),
        },
        sender_kind: match sender.as_str() {
            "customer" => SenderKind::Customer,
            "agent" => SenderKind::Agent,
            "bot" => SenderKind::Bot,
            other => return Err(corrupt("sender kind", other)),
        },
        sender_id: row.opt_text("sender_id")?,
        text: row.opt_text("text")?,
        template: row
            .opt_text("template")?
            .map(|t| serde_json::from_str::<Template>(&t))
            .transpose()
            .map_err(|e| Error::Corrupt(format!("template: {e}")))?,
        private: row.bool("private")?,
        provider_message_id: row.opt_text("provider_message_id")?,
        status: status
            .map(|s| MessageStatus::parse(&s).ok_or_else(|| corrupt("message status", &s)))
            .transpose()?,
        error: row.opt_text("error")?,
        sent_at: row.opt_int("sent_at")?.map(Timestamp),
        delivered_at: row.opt_int("delivered_at")?.map(Timestamp),
        read_at: row.opt_int("read_at")?.map(Timestamp),
        created_at: Timestamp(row.int("created_at")?),
        updated_at: Timestamp(row.int("updated_at")?),
    })
}

async fn read_conversation(tx: &mut Tx, id: &str) -> Result<Conversation, Error> {
    let row = tx
        .fetch_optional(sql("SELECT c.*, i.kind AS inbox_kind FROM conversations c JOIN inboxes i ON i.id = c.inbox_id WHERE c.id = $1").bind(id))
        .await?
        .ok_or(Error::NotFound("conversation"))?;
    conversation(&row)
}

async fn read_message(tx: &mut Tx, id: &str) -> Result<Message, Error> {
    let row = tx
        .fetch_optional(sql("SELECT * FROM messages WHERE id = $1").bind(id))
        .await?
        .ok_or(Error::NotFound("message"))?;
    message(&row)
}

/// Which conversations a list shows; empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    pub status: Option<String>,
    pub assignee_id: Option<String>,
    pub inbox_id: Option<String>,
    pub customer_id: Option<String>,
    /// Only conversations nobody is assigned to.
    pub unassigned: bool,
}

impl Store {
    pub async fn conversation(&self, id: &str) -> Result<Conversation, Error> {
        let mut tx = self.db.begin_read().await?;
        read_conversation(&mut tx, id).await
    }

    /// A page of the conversation's whole history, oldest first (message ids are
    /// time-ordered).
    pub async fn conversation_message_page(
        &self,
        id: &str,
        page: &Page,
    ) -> Result<(Vec<Message>, Option<String>), Error> {
        let rows = self
            .db
            .fetch_all(
                sql("SELECT * FROM messages WHERE conversation_id = $1 AND id > $2 ORDER BY id LIMIT $3")
                    .bind(id)
                    .bind(page.after.as_deref().unwrap_or(""))
                    .bind(page.limit + 1),
            )
            .await?;
        let messages = rows.iter().map(message).collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(messages, |m| &m.id))
    }

    /// The conversation's latest messages, oldest first.
    pub async fn conversation_messages(&self, id: &str) -> Result<Vec<Message>, Error> {
        let rows = self
            .db
            .fetch_all(
                sql("SELECT * FROM messages WHERE conversation_id = $1 ORDER BY id DESC LIMIT $2")
                    .bind(id)
                    .bind(SHOWN_MESSAGES),
            )
            .await?;
        let mut messages = rows.iter().map(message).collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        Ok(messages)
    }

    /// Conversations, newest first.
    pub async fn conversations(
        &self,
        filter: &ConversationFilter,
        page: &Page,
    ) -> Result<(Vec<Conversation>, Option<String>), Error> {
        let rows = self
            .db
            .fetch_all(
                sql("SELECT c.*, i.kind AS inbox_kind FROM conversations c JOIN inboxes i ON i.id = c.inbox_id \
                     WHERE ($1 = '' OR c.status = $1) AND ($2 = '' OR c.assignee_id = $2) AND ($3 = '' OR c.inbox_id = $3) \
                     AND ($4 = '' OR c.customer_id = $4) AND ($5 = '' OR c.id < $5) \
                     AND ($7 = 0 OR c.assignee_id IS NULL) ORDER BY c.id DESC LIMIT $6")
                .bind(filter.status.as_deref().unwrap_or(""))
                .bind(filter.assignee_id.as_deref().unwrap_or(""))
                .bind(filter.inbox_id.as_deref().unwrap_or(""))
                .bind(filter.customer_id.as_deref().unwrap_or(""))
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.limit + 1)
                .bind(i64::from(filter.unassigned)),
            )
            .await?;
        let items = rows.iter().map(conversation).collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(items, |c| &c.id))
    }

    /// How many of each conversation's customer messages came after the last reply to them
    /// (notes do not count): what is still unread, for conversations with ids from `first`
    /// to `last`. Conversations with none are left out.
    pub async fn unread_counts(&self, first: &str, last: &str) -> Result<Vec<(String, i64)>, Error> {
        let rows = self
            .db
            .fetch_all(
                sql("SELECT m.conversation_id, COUNT(*) AS unread FROM messages m \
                     WHERE m.conversation_id >= $1 AND m.conversation_id <= $2 AND m.direction = 'in' \
                     AND m.id > COALESCE((SELECT MAX(o.id) FROM messages o WHERE o.conversation_id = m.conversation_id \
                     AND o.direction = 'out' AND o.status IS NOT NULL), '') GROUP BY m.conversation_id")
                .bind(first)
                .bind(last),
            )
            .await?;
        rows.iter()
            .map(|row| Ok((row.text("conversation_id")?, row.int("unread")?)))
            .collect()
    }

    /// Changes status, assignee, team and tags from version `version`. An assignee of `auto`
    /// is the inbox's next agent in turn. Resolving stamps `resolved_at`; reopening clears it.
    /// A change to what is already so (resolving a resolved conversation) writes nothing and
    /// announces nothing.
    pub async fn update_conversation(
        &self,
        id: &str,
        draft: ConversationDraft,
        version: i64,
    ) -> Result<Conversation, Error> {
        draft.validate()?;
        let (id, clock) = (id.to_owned(), self.clock.clone());
        self.write(move |tx| {
            Box::pin(async move {
                let now = clock.now();
                let before = read_conversation(tx, &id).await?;
                if before.version != version {
                    return Err(Error::VersionMismatch {
                        current: before.version,
                    });
                }
                let assignee = match draft.assignee_id.as_deref() {
                    Some(omnihub_domain::conversations::AUTO_ASSIGN) => Some(take_turn(tx, &before.inbox_id).await?),
                    other => other.map(|a| a.trim().to_owned()),
                };
                if changes_nothing(&before, &draft, assignee.as_deref()) {
                    return Ok(before);
                }
                write_changes(tx, &before, &draft, assignee.as_deref(), now).await?;
                let after = read_conversation(tx, &id).await?;
                announce_changes(tx, &before, &after, now);
                Ok(after)
            })
        })
        .await
    }
}

/// The inbox's next agent after the one given the last conversation, remembered for next time.
async fn take_turn(tx: &mut Tx, inbox_id: &str) -> Result<String, Error> {
    let agents = inboxes::agents_of(tx, inbox_id).await?;
    let last = tx
        .fetch_optional(sql("SELECT last_assignee_id FROM inboxes WHERE id = $1").bind(inbox_id))
        .await?
        .map(|row| row.opt_text("last_assignee_id"))
        .transpose()?
        .flatten();
    let next = next_agent(&agents, last.as_deref()).map(str::to_owned).ok_or_else(|| {
        omnihub_domain::Invalid::one(
            "assignee_id",
            "no_agents",
            "the inbox has no agents to take turns; name an assignee",
        )
    })?;
    tx.execute(
        sql("UPDATE inboxes SET last_assignee_id = $2 WHERE id = $1")
            .bind(inbox_id)
            .bind(&next),
    )
    .await?;
    Ok(next)
}

async fn write_changes(
    tx: &mut Tx,
    before: &Conversation,
    draft: &ConversationDraft,
    assignee: Option<&str>,
    now: Timestamp,
) -> Result<(), Error> {
    let resolved_at = match (before.status, draft.status) {
        (ConversationStatus::Resolved, ConversationStatus::Resolved) => before.resolved_at,
        (_, ConversationStatus::Resolved) => Some(now),
        _ => None,
    };
    let tags: Vec<&str> = draft.tags.iter().map(|t| t.trim()).collect();
    tx.execute(
        sql(
            "UPDATE conversations SET status = $2, assignee_id = $3, team = $4, tags = $5, resolved_at = $6, \
             version = version + 1, updated_at = $7 WHERE id = $1",
        )
        .bind(&before.id)
        .bind(draft.status.as_str())
        .bind(assignee)
        .bind(draft.team.as_deref().map(str::trim))
        .bind(serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into()))
        .bind(resolved_at.map(Timestamp::millis))
        .bind(now.millis()),
    )
    .await?;
    Ok(())
}

/// Whether the draft leaves the conversation as it is.
fn changes_nothing(before: &Conversation, draft: &ConversationDraft, assignee: Option<&str>) -> bool {
    let tags: Vec<&str> = draft.tags.iter().map(|t| t.trim()).collect();
    before.status == draft.status
        && before.assignee_id.as_deref() == assignee
        && before.team.as_deref() == draft.team.as_deref().map(str::trim)
        && before.tags == tags
}

/// `conversation.updated` for every change, and the changes agents' screens react to on their
/// own: an assignment, a resolution, and a resolved conversation opened again (as when the
/// customer writes).
fn announce_changes(tx: &mut Tx, before: &Conversation, after: &Conversation, now: Timestamp) {
    if before.assignee_id != after.assignee_id {
        let data =
            json!({"conversation_id": after.id, "assignee_id": after.assignee_id, "previous": before.assignee_id});
        append(tx, now, NewEvent::new(EventType::ConversationAssigned, data));
    }
    if before.status != ConversationStatus::Resolved && after.status == ConversationStatus::Resolved {
        let data = json!({"conversation_id": after.id, "inbox_id": after.inbox_id, "customer_id": after.customer_id,
                          "resolution_seconds": after.resolution_seconds});
        append(tx, now, NewEvent::new(EventType::ConversationResolved, data));
    }
    if before.status == ConversationStatus::Resolved && after.status != ConversationStatus::Resolved {
        let data = json!({"conversation_id": after.id, "customer_id": after.customer_id});
        append(tx, now, NewEvent::new(EventType::ConversationReopened, data));
    }
    append(tx, now, NewEvent::new(EventType::ConversationUpdated, after));
}
