//! NATS JetStream on the wire: the event log published to the stream OMNIHUB as
//! `omnihub.<type>`, deduplicated by event id, so the merchant's other systems can consume it
//! durably; every node follows those subjects to learn that another has committed events, and
//! nudges whichever node publishes when it commits some itself. Which node publishes, and from
//! where in the log, is the caller's.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use futures_util::StreamExt;
use omnihub_domain::events::Event;
use tokio::sync::watch;

const STREAM: &str = "OMNIHUB";
const SUBJECTS: &str = "omnihub.>";
/// "I have committed events": outside the stream's subjects, never stored.
const NUDGE: &str = "_omnihub.committed";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Connect(#[from] async_nats::ConnectError),
    #[error(transparent)]
    Stream(#[from] jetstream::context::CreateStreamError),
    #[error(transparent)]
    Publish(#[from] jetstream::context::PublishError),
    #[error(transparent)]
    Nudge(#[from] async_nats::PublishError),
    #[error(transparent)]
    Encode(#[from] serde_json::Error),
}

/// A connection to NATS, shared by the publisher and the followers.
#[derive(Clone)]
pub struct Nats {
    client: async_nats::Client,
    jetstream: jetstream::Context,
}

/// A client that connects in the background and reconnects by itself: NATS speeds nodes up,
/// but the database is the truth, so a node serves while NATS is away.
pub async fn connect(url: &str) -> Result<Nats, Error> {
    let client = async_nats::ConnectOptions::new()
        .name("omnihub")
        .retry_on_initial_connect()
        .connect(url)
        .await?;
    Ok(Nats {
        jetstream: jetstream::new(client.clone()),
        client,
    })
}

/// The part of a published event that tells how far the log has grown, and with what.
#[derive(serde::Deserialize)]
struct Published {
    seq: i64,
    #[serde(rename = "type")]
    kind: String,
}

impl Nats {
    /// Makes the stream when it is not there yet: every event subject, a week of history, and
    /// a deduplication window that covers a publisher's restart.
    pub async fn make_stream(&self) -> Result<(), Error> {
        let config = jetstream::stream::Config {
            name: STREAM.to_owned(),
            subjects: vec![SUBJECTS.to_owned()],
            max_age: Duration::from_secs(7 * 24 * 60 * 60),
            duplicate_window: Duration::from_secs(10 * 60),
            ..Default::default()
        };
        self.jetstream.get_or_create_stream(config).await?;
        Ok(())
    }

    /// Publishes `events` in their order, all before awaiting their acknowledgements. One
    /// published again (after a crash) is dropped by JetStream by its `Nats-Msg-Id`.
    pub async fn publish(&self, events: &[Event]) -> Result<(), Error> {
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let message = PublishMessage::build()
                .payload(serde_json::to_vec(event)?.into())
                .message_id(&event.id);
            acks.push(
                self.jetstream
                    .send_publish(format!("omnihub.{}", event.kind), message)
                    .await?,
            );
        }
        for ack in acks {
            ack.await?;
        }
        Ok(())
    }

    /// Tells the publisher, wherever it runs, that this node has committed events.
    pub async fn nudge(&self) -> Result<(), Error> {
        self.client.publish(NUDGE, "".into()).await?;
        Ok(())
    }

    /// Calls `on_event` with the `seq` and type of every event published, by any node, until
    /// `stopping`.
    pub async fn follow_events(self, on_event: impl Fn(i64, &str), stopping: watch::Receiver<bool>) {
        let on_message = |payload: &[u8]| {
            if let Ok(Published { seq, kind }) = serde_json::from_slice(payload) {
                on_event(seq, &kind);
            }
        };
        self.listen(SUBJECTS, on_message, stopping).await;
    }

    /// Calls `on_nudge` for every nudge, from any node, until `stopping`.
    pub async fn follow_nudges(self, on_nudge: impl Fn(), stopping: watch::Receiver<bool>) {
        self.listen(NUDGE, |_| on_nudge(), stopping).await;
    }

    /// Calls `on_message` for every message on `subject`; without NATS, the caller's polling
    /// covers for it.
    async fn listen(&self, subject: &'static str, on_message: impl Fn(&[u8]), mut stopping: watch::Receiver<bool>) {
        let mut messages = match self.client.subscribe(subject).await {
            Ok(subscriber) => subscriber,
            Err(error) => {
                tracing::warn!(%error, subject, "could not subscribe to NATS; other nodes are followed by polling");
                return;
            }
        };
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(message) => on_message(&message.payload),
                    None => return,
                },
                _ = stopping.wait_for(|stop| *stop) => return,
            }
        }
    }
}
