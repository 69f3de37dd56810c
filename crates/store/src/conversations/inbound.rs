//! What providers tell the hub: customers' messages, each finding its customer and its
//! conversation, and receipts for the messages sent to them.

use omnihub_domain::Timestamp;
use omnihub_domain::conversations::inbound::{Inbound, InboundMessage, Receipt, ReceiptStatus, ReceiptTarget};
use omnihub_domain::conversations::{Inbox, MessageStatus};
use omnihub_domain::customers::{Identity, IdentityKind, Region, mask, normalize};
use omnihub_domain::events::{EventType, NewEvent};
use omnihub_domain::id::{self, Kind};
use serde_json::json;

use super::read_message;
use crate::customers::{resolve_customer_in, timeline};
use crate::db::events::append;
use crate::db::{Tx, sql};
use crate::{Error, Store};

/// A customer's message as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredMessage {
    pub message_id: String,
    pub conversation_id: String,
    pub customer_id: String,
}

/// What one webhook call changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    /// The messages stored now.
    pub messages: Vec<StoredMessage>,
    /// Messages stored before (a provider retrying).
    pub duplicates: usize,
    /// Receipts that moved a message's status.
    pub status_changes: usize,
    pub ignored: usize,
}

impl Store {
    /// Stores what a verified webhook call carried, in one transaction.
    pub async fn receive(&self, inbox: &Inbox, items: Vec<Inbound>) -> Result<Received, Error> {
        let (inbox, clock, region) = (inbox.clone(), self.clock.clone(), self.phone_region());
        self.write(move |tx| {
            Box::pin(async move {
                let now = clock.now();
                let mut received = Received::default();
                for item in items {
                    match item {
                        Inbound::Message(message) => match take_message(tx, &inbox, message, now, region).await? {
                            Taken::Stored(ids) => received.messages.push(ids),
                            Taken::Duplicate => received.duplicates += 1,
                            Taken::Unknown => received.ignored += 1,
                        },
                        Inbound::Receipt(receipt) => {
                            received.status_changes += apply_receipt(tx, &inbox.id, &receipt, now).await?;
                        }
                        Inbound::Ignored(_) => received.ignored += 1,
                    }
                }
                Ok(received)
            })
        })
        .await
    }
}

enum Taken {
    Stored(StoredMessage),
    Duplicate,
    /// The sender cannot be recognised by any identity.
    Unknown,
}

async fn take_message(
    tx: &mut Tx,
    inbox: &Inbox,
    message: InboundMessage,
    now: Timestamp,
    region: Region,
) -> Result<Taken, Error> {
    if stored_before(tx, &inbox.id, &message.provider_message_id).await? {
        return Ok(Taken::Duplicate);
    }
    let identities = recognisable(&message.identities, region);
    if identities.is_empty() {
        return Ok(Taken::Unknown);
    }
    let customer = resolve_customer_in(tx, &identities, message.name.as_deref(), now, region).await?;
    let (conversation_id, customer_id) = open_conversation(tx, inbox, &customer, &message.address, now).await?;
    let id = id::new(Kind::Message);
    let inserted = tx
        .execute(
            sql(
                "INSERT INTO messages (id, conversation_id, inbox_id, direction, sender_kind, text, private, \
                 provider_message_id, status, created_at, updated_at) \
                 VALUES ($1, $2, $3, 'in', 'customer', $4, $5, $6, 'received', $7, $7) \
                 ON CONFLICT (inbox_id, provider_message_id) DO NOTHING",
            )
            .bind(&id)
            .bind(&conversation_id)
            .bind(&inbox.id)
            .bind(message.text.as_deref())
            .bind(false)
            .bind(&message.provider_message_id)
            .bind(now.millis()),
        )
        .await?;
    if inserted == 0 {
        return Ok(Taken::Duplicate);
    }
    let claimed_phone = message.claimed_phone.as_ref().and_then(|phone| {
        let identity = Identity::new(IdentityKind::Phone, phone.clone());
        normalize(&identity, region).ok().map(|normal| normal.value)
    });
    if message.claimed_email.is_some() || claimed_phone.is_some() {
        tx.execute(
            sql("UPDATE conversations SET claimed_email = COALESCE($2, claimed_email), \
                 claimed_phone = COALESCE($3, claimed_phone) WHERE id = $1")
            .bind(&conversation_id)
            .bind(message.claimed_email.as_deref())
            .bind(claimed_phone.as_deref()),
        )
        .await?;
    }
    tx.execute(
        sql("UPDATE conversations SET last_customer_message_at = $2, last_message_at = $2, updated_at = $2 WHERE id = $1")
            .bind(&conversation_id)
            .bind(now.millis()),
    )
    .await?;
    let data = json!({"message_id": id, "conversation_id": conversation_id, "customer_id": customer_id,
                      "inbox_id": inbox.id, "channel": inbox.kind});
    timeline::record(tx, &customer_id, now, "message.received", Some(&conversation_id), &data).await?;
    append(tx, now, NewEvent::new(EventType::MessageReceived, data));
    tracing::debug!(inbox = %inbox.id, sender = %mask(&identities[0]), "message received");
    Ok(Taken::Stored(StoredMessage {
        message_id: id,
        conversation_id,
        customer_id,
    }))
}

async fn stored_before(tx: &mut Tx, inbox_id: &str, provider_message_id: &str) -> Result<bool, Error> {
    let row = tx
        .fetch_optional(
            sql("SELECT id FROM messages WHERE inbox_id = $1 AND provider_message_id = $2")
                .bind(inbox_id)
                .bind(provider_message_id),
        )
        .await?;
    Ok(row.is_some())
}

/// The identities that normalise: a malformed extra (a shared number the parser refuses)
/// must not lose the message, but without the channel's own identity nobody wrote it.
fn recognisable(identities: &[Identity], region: Region) -> Vec<Identity> {
    let Some((own, extra)) = identities.split_first() else {
        return Vec::new();
    };
    if normalize(own, region).is_err() {
        return Vec::new();
    }
    std::iter::once(own)
        .chain(extra.iter().filter(|i| normalize(i, region).is_ok()))
        .cloned()
        .collect()
}

/// The person's conversation in the inbox, started or reopened for a new message; answers it
/// and the customer it belongs to (after a merge, the survivor).
async fn open_conversation(
    tx: &mut Tx,
    inbox: &Inbox,
    customer_id: &str,
    address: &str,
    now: Timestamp,
) -> Result<(String, String), Error> {
    let id = id::new(Kind::Conversation);
    let started = tx
        .execute(
            sql("INSERT INTO conversations (id, inbox_id, customer_id, contact_address, status, tags, opened_at, version, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, 'open', '[]', $5, 1, $5, $5) \
                 ON CONFLICT (inbox_id, contact_address) DO NOTHING")
            .bind(&id)
            .bind(&inbox.id)
            .bind(customer_id)
            .bind(address)
            .bind(now.millis()),
        )
        .await?;
    if started == 1 {
        let data =
            json!({"conversation_id": id, "inbox_id": inbox.id, "customer_id": customer_id, "channel": inbox.kind});
        timeline::record(tx, customer_id, now, "conversation.created", Some(&id), &data).await?;
        append(tx, now, NewEvent::new(EventType::ConversationCreated, data));
        return Ok((id, customer_id.to_owned()));
    }
    let row = tx
        .fetch_optional(
            sql("SELECT id, customer_id, status FROM conversations WHERE inbox_id = $1 AND contact_address = $2")
                .bind(&inbox.id)
                .bind(address),
        )
        .await?
        .ok_or(Error::NotFound("conversation"))?;
    let (id, owner) = (row.text("id")?, row.text("customer_id")?);
    if row.text("status")? == "resolved" {
        reopen(tx, &id, &owner, now).await?;
    }
    Ok((id, owner))
}

/// A resolved conversation the customer writes to again is open, and its response clock
/// starts over.
async fn reopen(tx: &mut Tx, id: &str, customer_id: &str, now: Timestamp) -> Result<(), Error> {
    tx.execute(
        sql(
            "UPDATE conversations SET status = 'open', opened_at = $2, first_response_at = NULL, resolved_at = NULL, \
             version = version + 1, updated_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(now.millis()),
    )
    .await?;
    let data = json!({"conversation_id": id, "customer_id": customer_id});
    append(tx, now, NewEvent::new(EventType::ConversationReopened, data));
    Ok(())
}

/// Moves the status of the messages a receipt names; answers how many moved.
async fn apply_receipt(tx: &mut Tx, inbox_id: &str, receipt: &Receipt, now: Timestamp) -> Result<usize, Error> {
    let rows = match &receipt.target {
        ReceiptTarget::Message(provider_id) => {
            tx.fetch_all(
                sql("SELECT id FROM messages WHERE inbox_id = $1 AND provider_message_id = $2 AND direction = 'out'")
                    .bind(inbox_id)
                    .bind(provider_id),
            )
            .await?
        }
        ReceiptTarget::UpTo { address, before } => {
            tx.fetch_all(
                sql(
                    "SELECT m.id FROM messages m JOIN conversations c ON c.id = m.conversation_id \
                     WHERE c.inbox_id = $1 AND c.contact_address = $2 AND m.direction = 'out' AND m.sent_at <= $3 \
                     AND m.status IN ('sent', 'delivered')",
                )
                .bind(inbox_id)
                .bind(address)
                .bind(before.millis()),
            )
            .await?
        }
    };
    let mut moved = 0;
    for row in &rows {
        if set_status(tx, &row.text("id")?, receipt, now).await? {
            moved += 1;
        }
    }
    Ok(moved)
}

async fn set_status(tx: &mut Tx, message_id: &str, receipt: &Receipt, now: Timestamp) -> Result<bool, Error> {
    let before = read_message(tx, message_id).await?;
    let Some(next) = before.status.and_then(|s| s.after_receipt(receipt.status)) else {
        return Ok(false);
    };
    let reached = |status: ReceiptStatus| (receipt.status == status).then_some(now.millis());
    let delivered = reached(ReceiptStatus::Delivered).or(reached(ReceiptStatus::Read));
    tx.execute(
        sql("UPDATE messages SET status = $2, delivered_at = COALESCE(delivered_at, $3), read_at = COALESCE(read_at, $4), \
             error = COALESCE($5, error), updated_at = $6 WHERE id = $1")
        .bind(message_id)
        .bind(next.as_str())
        .bind(delivered)
        .bind(reached(ReceiptStatus::Read))
        .bind(receipt.error.as_deref().filter(|_| next == MessageStatus::Failed))
        .bind(now.millis()),
    )
    .await?;
    let data = json!({"message_id": message_id, "conversation_id": before.conversation_id,
                      "status": next, "previous": before.status});
    append(tx, now, NewEvent::new(EventType::MessageStatusChanged, data));
    Ok(true)
}
