//! Background work each server process runs. Every job is safe with several processes on one
//! database: the database decides which process does a piece of work.

pub mod nats;
pub mod webhooks;

use std::time::Duration;

use omnihub_store::Store;
use tokio::sync::watch;

/// How often lapsed reservations are looked for.
const EXPIRY_INTERVAL: Duration = Duration::from_millis(500);

/// Releases reservations whose time has run out, until the server stops.
pub async fn expire_reservations(store: Store, mut stopping: watch::Receiver<bool>) {
    loop {
        match store.expire_reservations().await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "released lapsed reservations"),
            Err(error) => tracing::warn!(%error, "could not release lapsed reservations"),
        }
        tokio::select! {
            _ = tokio::time::sleep(EXPIRY_INTERVAL) => {}
            _ = stopping.wait_for(|stop| *stop) => return,
        }
    }
}
