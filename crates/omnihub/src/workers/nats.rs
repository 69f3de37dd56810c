//! NATS JetStream: one server process at a time publishes the event log, in `seq` order, to
//! the stream OMNIHUB as `omnihub.<type>`, so the merchant's other systems can consume it
//! durably. Every process listens to those subjects and wakes its live readers (the SSE
//! stream, the webhook worker) as soon as another process has committed events.
//!
//! A process that commits events nudges the publisher, wherever it runs, over plain NATS, so
//! that the events reach the stream and the other processes at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage};
use futures_util::StreamExt;
use omnihub_domain::id::{self, Kind};
use omnihub_store::Store;
use tokio::sync::{Notify, watch};

use crate::BoxError;

const STREAM: &str = "OMNIHUB";
const SUBJECTS: &str = "omnihub.>";
/// "I have committed events": outside the stream's subjects, never stored.
const NUDGE: &str = "_omnihub.committed";

/// The lease that makes one process the publisher, and how long it lasts unless renewed.
const LEASE: &str = "nats_publisher";
const LEASE_SECONDS: i64 = 15;
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// The publisher is woken by commits and nudges; this often it looks for new events anyway,
/// as a nudge is sent at most once and may be lost.
const PUBLISHER_POLL: Duration = Duration::from_millis(500);

/// After a failure (NATS or the database away), wait this long before trying again.
const AFTER_FAILURE: Duration = Duration::from_secs(2);

/// How many events are published before their acknowledgements are awaited.
const BATCH: i64 = 200;

/// A client that connects in the background and reconnects by itself: NATS speeds nodes up,
/// but the database is the truth, so a node serves while NATS is away.
pub async fn connect(url: &str) -> Result<async_nats::Client, BoxError> {
    Ok(async_nats::ConnectOptions::new()
        .name("omnihub")
        .retry_on_initial_connect()
        .connect(url)
        .await?)
}

/// Publishes (while this process holds the lease), nudges and listens, until the server stops.
pub async fn relay(store: Store, client: async_nats::Client, stopping: watch::Receiver<bool>) {
    let nudged = Arc::new(Notify::new());
    let readers = store.clone();
    let on_event = move |payload: &[u8]| {
        if let Ok(Published { seq, kind }) = serde_json::from_slice(payload) {
            readers.notify_log(seq, &kind);
        }
    };
    tokio::spawn(listen(client.clone(), SUBJECTS, on_event, stopping.clone()));
    let publisher_wake = nudged.clone();
    let on_nudge = move |_: &[u8]| publisher_wake.notify_one();
    tokio::spawn(listen(client.clone(), NUDGE, on_nudge, stopping.clone()));
    tokio::spawn(nudge_on_commit(store.clone(), client.clone(), stopping.clone()));
    let mut publisher = Publisher {
        store,
        jetstream: jetstream::new(client),
        holder: id::new(Kind::ServerNode),
        holding: false,
        renewed: None,
        published: None,
        stream_ready: false,
    };
    publisher.run(&nudged, stopping).await;
}

/// The part of a published event that tells how far the log has grown, and with what.
#[derive(serde::Deserialize)]
struct Published {
    seq: i64,
    #[serde(rename = "type")]
    kind: String,
}

/// Calls `on_message` for every message on `subject`; without NATS, polling covers for it.
async fn listen(
    client: async_nats::Client,
    subject: &'static str,
    on_message: impl Fn(&[u8]),
    mut stopping: watch::Receiver<bool>,
) {
    let mut messages = match client.subscribe(subject).await {
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

/// Tells the publisher, wherever it runs, whenever this process sees the log grow. Nudges
/// wake only the publisher, never the log's readers, so they cannot echo between processes.
async fn nudge_on_commit(store: Store, client: async_nats::Client, mut stopping: watch::Receiver<bool>) {
    let mut commits = store.watch_log();
    loop {
        tokio::select! {
            changed = commits.changed() => if changed.is_err() { return },
            _ = stopping.wait_for(|stop| *stop) => return,
        }
        if let Err(error) = client.publish(NUDGE, "".into()).await {
            tracing::debug!(%error, "could not nudge the NATS publisher");
        }
    }
}

struct Publisher {
    store: Store,
    jetstream: jetstream::Context,
    /// This process, as the holder of the lease.
    holder: String,
    holding: bool,
    renewed: Option<Instant>,
    /// The last `seq` published, while this process holds the lease.
    published: Option<i64>,
    stream_ready: bool,
}

impl Publisher {
    async fn run(&mut self, nudged: &Notify, mut stopping: watch::Receiver<bool>) {
        let mut wake = self.store.watch_log();
        loop {
            let pause = match self.step().await {
                Ok(()) if self.holding => PUBLISHER_POLL,
                Ok(()) => RENEW_EVERY,
                Err(error) => {
                    tracing::warn!(%error, "could not publish events to NATS");
                    AFTER_FAILURE
                }
            };
            tokio::select! {
                _ = wake.changed() => {}
                _ = nudged.notified() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = stopping.wait_for(|stop| *stop) => return,
            }
        }
    }

    async fn step(&mut self) -> Result<(), BoxError> {
        if !self.holds_lease().await? {
            return Ok(());
        }
        if !self.stream_ready {
            self.jetstream.get_or_create_stream(stream_config()).await?;
            self.stream_ready = true;
        }
        self.publish_new().await
    }

    /// Renews the lease when due; `false` while another process holds it.
    async fn holds_lease(&mut self) -> Result<bool, BoxError> {
        if self.renewed.is_some_and(|at| at.elapsed() < RENEW_EVERY) {
            return Ok(self.holding);
        }
        let holding = self.store.claim_lease(LEASE, &self.holder, LEASE_SECONDS).await?;
        if !holding {
            // Another process may publish meanwhile: read the cursor afresh when it is ours again.
            self.published = None;
        }
        self.holding = holding;
        self.renewed = Some(Instant::now());
        Ok(holding)
    }

    /// Publishes every event after the stored cursor, then moves the cursor. A crash between
    /// the two publishes some events again; JetStream drops them by their `Nats-Msg-Id`.
    async fn publish_new(&mut self) -> Result<(), BoxError> {
        loop {
            let after = match self.published {
                Some(seq) => seq,
                None => self.store.nats_published().await?,
            };
            let events = self.store.events_after(after, &[], BATCH).await?;
            let Some(last) = events.last().map(|event| event.seq) else {
                self.published = Some(after);
                return Ok(());
            };
            let mut acks = Vec::with_capacity(events.len());
            for event in &events {
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
            self.store.record_nats_published(last).await?;
            self.published = Some(last);
        }
    }
}

/// The stream, when it has to be made: every event subject, a week of history, and a
/// deduplication window that covers a publisher's restart.
fn stream_config() -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: STREAM.to_owned(),
        subjects: vec![SUBJECTS.to_owned()],
        max_age: Duration::from_secs(7 * 24 * 60 * 60),
        duplicate_window: Duration::from_secs(10 * 60),
        ..Default::default()
    }
}
