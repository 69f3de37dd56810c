//! E-mail threads: the `Message-ID`s of a conversation's mails, by which replies find their
//! conversation and outgoing mails name what they answer.

use crate::db::sql;
use crate::{Error, Store};

/// How many ids of a thread an outgoing mail names in `References`; mail clients need the
/// latest ones, and headers have limits.
const MAX_REFERENCES: i64 = 20;

impl Store {
    /// Where replies go in the conversation of the first of `answers` (message ids, nearest
    /// first) that is a mail of the inbox: a reply joins that thread, whoever sends it.
    pub async fn email_thread_address(&self, inbox_id: &str, answers: &[String]) -> Result<Option<String>, Error> {
        for id in answers.iter().take(MAX_REFERENCES as usize) {
            let row = self
                .db
                .fetch_optional(
                    sql(
                        "SELECT c.contact_address FROM messages m JOIN conversations c ON c.id = m.conversation_id \
                         WHERE m.inbox_id = $1 AND m.provider_message_id = $2",
                    )
                    .bind(inbox_id)
                    .bind(id),
                )
                .await?;
            if let Some(row) = row {
                return row.text("contact_address").map(Some);
            }
        }
        Ok(None)
    }

    /// The latest message ids of the conversation's mails, oldest first: what a reply by mail
    /// names in `References` (see [`Store::reply_target`]).
    pub(crate) async fn email_references(&self, conversation_id: &str) -> Result<Vec<String>, Error> {
        let rows = self
            .db
            .fetch_all(
                sql("SELECT provider_message_id FROM messages WHERE conversation_id = $1 \
                     AND provider_message_id IS NOT NULL ORDER BY id DESC LIMIT $2")
                .bind(conversation_id)
                .bind(MAX_REFERENCES),
            )
            .await?;
        let mut ids = rows
            .iter()
            .map(|row| row.text("provider_message_id"))
            .collect::<Result<Vec<_>, _>>()?;
        ids.reverse();
        Ok(ids)
    }
}
