//! NATS JetStream: one server process at a time publishes the event log, in `seq` order, to
//! the stream (see [`omnihub_providers::nats`]), so the merchant's other systems can consume
//! it durably. Every process follows the published events and wakes its live readers (the SSE
//! stream, the webhook worker) as soon as another process has committed events.
//!
//! A process that commits events nudges the publisher, wherever it runs, over plain NATS, so
//! that the events reach the stream and the other processes at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use omnihub_domain::id::{self, Kind};
use omnihub_providers::nats::Nats;
use omnihub_store::Store;
use tokio::sync::{Notify, watch};

use crate::BoxError;

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

/// Publishes (while this process holds the lease), nudges and listens, until the server stops.
pub async fn relay(store: Store, nats: Nats, stopping: watch::Receiver<bool>) {
    let nudged = Arc::new(Notify::new());
    let readers = store.clone();
    let on_event = move |seq: i64, kind: &str| readers.notify_log(seq, kind);
    tokio::spawn(nats.clone().follow_events(on_event, stopping.clone()));
    let publisher_wake = nudged.clone();
    let on_nudge = move || publisher_wake.notify_one();
    tokio::spawn(nats.clone().follow_nudges(on_nudge, stopping.clone()));
    tokio::spawn(nudge_on_commit(store.clone(), nats.clone(), stopping.clone()));
    let mut publisher = Publisher {
        store,
        nats,
        holder: id::new(Kind::ServerNode),
        holding: false,
        renewed: None,
        published: None,
        stream_ready: false,
    };
    publisher.run(&nudged, stopping).await;
}

/// Tells the publisher, wherever it runs, whenever this process sees the log grow. Nudges
/// wake only the publisher, never the log's readers, so they cannot echo between processes.
async fn nudge_on_commit(store: Store, nats: Nats, mut stopping: watch::Receiver<bool>) {
    let mut commits = store.watch_log();
    loop {
        tokio::select! {
            changed = commits.changed() => if changed.is_err() { return },
            _ = stopping.wait_for(|stop| *stop) => return,
        }
        if let Err(error) = nats.nudge().await {
            tracing::debug!(%error, "could not nudge the NATS publisher");
        }
    }
}

struct Publisher {
    store: Store,
    nats: Nats,
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
            self.nats.make_stream().await?;
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
    /// the two publishes some events again; JetStream drops them by their id.
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
            self.nats.publish(&events).await?;
            self.store.record_nats_published(last).await?;
            self.published = Some(last);
        }
    }
}
