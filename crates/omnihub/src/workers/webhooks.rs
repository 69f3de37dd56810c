//! Webhook deliveries: new events become deliveries, due deliveries are claimed, sent by the
//! [`Sender`], and every attempt is recorded. Everything goes through the database, so a crash
//! or a restart loses none, and several server processes share the sending.

use std::sync::Arc;
use std::time::Duration;

use omnihub_domain::webhooks::Outgoing;
use omnihub_providers::webhooks::Sender;
use omnihub_store::Store;
use tokio::sync::{Semaphore, watch};

/// Due retries are looked for this often; new events wake the worker at once.
const POLL: Duration = Duration::from_millis(500);

/// Woken by a commit, the worker waits this long for the commits that follow, so that a busy
/// shop's hundreds of commits a second cost a few passes, not one each.
const GATHER: Duration = Duration::from_millis(20);

/// At most this many deliveries are on their way at once, so that a few slow receivers do not
/// hold up the others, and a backlog does not open thousands of connections.
const SENDING_AT_ONCE: usize = 32;

/// Delivers webhooks until the server stops.
pub async fn deliver(store: Store, sender: Sender, mut stopping: watch::Receiver<bool>) {
    let mut wake = store.watch_log();
    let sending = Arc::new(Semaphore::new(SENDING_AT_ONCE));
    loop {
        fan_out(&store).await;
        send_due(&store, &sender, &sending).await;
        let woken = tokio::select! {
            _ = wake.changed() => true,
            _ = tokio::time::sleep(POLL) => false,
            _ = stopping.wait_for(|stop| *stop) => return,
        };
        if woken {
            tokio::time::sleep(GATHER).await;
        }
    }
}

/// Turns every event the endpoints have not looked at yet into deliveries.
async fn fan_out(store: &Store) {
    loop {
        match store.fan_out_webhooks().await {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "could not turn events into webhook deliveries");
                return;
            }
        }
    }
}

/// Claims as many due deliveries as there are free sending slots and sends each in its own task.
async fn send_due(store: &Store, sender: &Sender, sending: &Arc<Semaphore>) {
    let free = sending.available_permits();
    if free == 0 {
        return;
    }
    let claimed = match store.claim_webhook_deliveries(free as i64).await {
        Ok(claimed) => claimed,
        Err(error) => {
            tracing::warn!(%error, "could not claim webhook deliveries");
            return;
        }
    };
    for outgoing in claimed {
        // This loop alone takes slots, and it claimed no more than were free.
        let Ok(slot) = sending.clone().acquire_owned().await else {
            return;
        };
        let (store, sender) = (store.clone(), sender.clone());
        tokio::spawn(async move {
            send(&store, &sender, &outgoing).await;
            drop(slot);
        });
    }
}

/// One attempt, at the store's time, and its record.
async fn send(store: &Store, sender: &Sender, outgoing: &Outgoing) {
    let outcome = sender.send(outgoing, store.now()).await;
    match store.record_webhook_attempt(outgoing, &outcome).await {
        Ok(status) => tracing::debug!(delivery = %outgoing.delivery_id, status = status.as_str(), "webhook attempt"),
        Err(error) => tracing::warn!(%error, delivery = %outgoing.delivery_id, "could not record a webhook attempt"),
    }
}
