//! Automatic answers: the merchant's frequent questions, and the bot's replies, which only go
//! out while no person has taken the conversation over.

use omnihub_domain::Timestamp;
use omnihub_domain::conversations::answers::{FaqEntry, FaqEntryDraft};
use omnihub_domain::conversations::{Message, MessageStatus};
use omnihub_domain::events::{EventType, NewEvent};
use omnihub_domain::id::{self, Kind};
use serde_json::json;

use super::{read_conversation, read_message};
use crate::db::Page;
use crate::db::events::append;
use crate::db::{Row, Tx, sql};
use crate::{Error, Store};

/// The most questions the bot ranks a message against; a list this long is a knowledge base,
/// not a list of frequent questions.
const MAX_RANKED_ENTRIES: i64 = 1000;

fn faq_entry(row: &Row) -> Result<FaqEntry, Error> {
    Ok(FaqEntry {
        id: row.text("id")?,
        question: row.text("question")?,
        answer: row.text("answer")?,
        keywords: row.json("keywords")?,
        created_at: Timestamp(row.int("created_at")?),
    })
}

impl Store {
    pub async fn create_faq_entry(&self, draft: FaqEntryDraft) -> Result<FaqEntry, Error> {
        draft.validate()?;
        let clock = self.clock.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let now = clock.now();
                let id = id::new(Kind::FaqEntry);
                let keywords: Vec<&str> = draft.keywords.iter().map(|k| k.trim()).collect();
                tx.execute(
                    sql("INSERT INTO faq_entries (id, question, answer, keywords, created_at) VALUES ($1, $2, $3, $4, $5)")
                        .bind(&id)
                        .bind(draft.question.trim())
                        .bind(draft.answer.trim())
                        .bind(serde_json::to_string(&keywords).unwrap_or_else(|_| "[]".into()))
                        .bind(now.millis()),
                )
                .await?;
                let created = read_faq_entry(tx, &id).await?;
                append(tx, now, NewEvent::new(EventType::FaqEntryCreated, &created));
                Ok(created)
            })
        })
        .await
    }

    pub async fn faq_entries(&self, page: &Page) -> Result<(Vec<FaqEntry>, Option<String>), Error> {
        let rows = self
            .db
            .fetch_all(
                sql("SELECT * FROM faq_entries WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(page.after.as_deref().unwrap_or(""))
                    .bind(page.limit + 1),
            )
            .await?;
        let items = rows.iter().map(faq_entry).collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(items, |e| &e.id))
    }

    /// The entries the bot ranks each message against.
    pub async fn ranked_faq_entries(&self) -> Result<Vec<FaqEntry>, Error> {
        let rows = self
            .db
            .fetch_all(sql("SELECT * FROM faq_entries ORDER BY id LIMIT $1").bind(MAX_RANKED_ENTRIES))
            .await?;
        rows.iter().map(faq_entry).collect()
    }

    pub async fn message(&self, id: &str) -> Result<Message, Error> {
        let mut tx = self.db.begin_read().await?;
        read_message(&mut tx, id).await
    }

    /// Records the bot's answer as a pending reply and marks the conversation answered
    /// automatically; `None` once a person has taken over (an agent is assigned or has written
    /// there), checked in the same transaction so that the bot never talks over an agent.
    pub async fn record_bot_reply(
        &self,
        conversation_id: &str,
        text: &str,
        hands_over: bool,
    ) -> Result<Option<Message>, Error> {
        let (conversation_id, text, clock) = (conversation_id.to_owned(), text.to_owned(), self.clock.clone());
        self.write(move |tx| {
            Box::pin(async move {
                let now = clock.now();
                if taken_over(tx, &conversation_id).await? {
                    return Ok(None);
                }
                let id = id::new(Kind::Message);
                insert_bot_reply(tx, &id, &conversation_id, &text, now).await?;
                if hands_over {
                    tx.execute(
                        sql("UPDATE conversations SET bot_handed_over_at = $2 WHERE id = $1")
                            .bind(&conversation_id)
                            .bind(now.millis()),
                    )
                    .await?;
                }
                let created = read_message(tx, &id).await?;
                let data = json!({"message_id": id, "conversation_id": conversation_id, "private": false,
                                  "status": created.status, "sender_kind": created.sender_kind});
                append(tx, now, NewEvent::new(EventType::MessageCreated, data));
                Ok(Some(created))
            })
        })
        .await
    }
}

async fn read_faq_entry(tx: &mut Tx, id: &str) -> Result<FaqEntry, Error> {
    let row = tx
        .fetch_optional(sql("SELECT * FROM faq_entries WHERE id = $1").bind(id))
        .await?
        .ok_or(Error::NotFound("FAQ entry"))?;
    faq_entry(&row)
}

/// Whether the bot left the conversation to people, or an agent is assigned to it or has
/// written in it, notes included.
async fn taken_over(tx: &mut Tx, conversation_id: &str) -> Result<bool, Error> {
    let conversation = read_conversation(tx, conversation_id).await?;
    if conversation.assignee_id.is_some() {
        return Ok(true);
    }
    let handed_over = tx
        .fetch_optional(
            sql("SELECT id FROM conversations WHERE id = $1 AND bot_handed_over_at IS NOT NULL").bind(conversation_id),
        )
        .await?;
    if handed_over.is_some() {
        return Ok(true);
    }
    let by_agent = tx
        .fetch_optional(
            sql("SELECT id FROM messages WHERE conversation_id = $1 AND sender_kind = 'agent' LIMIT 1")
                .bind(conversation_id),
        )
        .await?;
    Ok(by_agent.is_some())
}

async fn insert_bot_reply(
    tx: &mut Tx,
    id: &str,
    conversation_id: &str,
    text: &str,
    now: Timestamp,
) -> Result<(), Error> {
    tx.execute(
        sql(
            "INSERT INTO messages (id, conversation_id, inbox_id, direction, sender_kind, text, private, status, \
             created_at, updated_at) SELECT $1, id, inbox_id, 'out', 'bot', $2, $3, $4, $5, $5 \
             FROM conversations WHERE id = $6",
        )
        .bind(id)
        .bind(text)
        .bind(false)
        .bind(MessageStatus::Pending.as_str())
        .bind(now.millis())
        .bind(conversation_id),
    )
    .await?;
    tx.execute(
        sql("UPDATE conversations SET answered_automatically_at = $2, updated_at = $2 WHERE id = $1")
            .bind(conversation_id)
            .bind(now.millis()),
    )
    .await?;
    Ok(())
}
