//! Webhook deliveries: new events become deliveries, due deliveries are claimed, POSTed
//! signed, and every attempt is recorded. Everything goes through the database, so a crash or
//! a restart loses none, and several server processes share the sending.

use std::sync::Arc;
use std::time::{Duration, Instant};

use omnihub_domain::webhooks::{self, SIGNATURE_HEADER, accepted};
use omnihub_http::egress::{self, Egress, HttpClient};
use omnihub_store::{Outcome, Outgoing, Store};
use reqwest::header::CONTENT_TYPE;
use tokio::sync::{Semaphore, watch};

/// Due retries are looked for this often; new events wake the worker at once.
const POLL: Duration = Duration::from_millis(500);

/// Woken by a commit, the worker waits this long for the commits that follow, so that a busy
/// shop's hundreds of commits a second cost a few passes, not one each.
const GATHER: Duration = Duration::from_millis(20);

/// At most this many deliveries are on their way at once, so that a few slow receivers do not
/// hold up the others, and a backlog does not open thousands of connections.
const SENDING_AT_ONCE: usize = 32;

/// The client that sends deliveries, to the destinations the egress allows. HTTPS goes
/// through rustls with ring, the process's only crypto provider. Redirects are not followed:
/// a receiver answers where it was registered.
pub fn client(egress: &Egress, timeout: Duration) -> Result<HttpClient, reqwest::Error> {
    egress.http_client(timeout, concat!("Omnihub-Webhooks/", env!("CARGO_PKG_VERSION")))
}

/// Delivers webhooks until the server stops.
pub async fn deliver(store: Store, client: HttpClient, mut stopping: watch::Receiver<bool>) {
    let mut wake = store.watch_log();
    let sending = Arc::new(Semaphore::new(SENDING_AT_ONCE));
    loop {
        fan_out(&store).await;
        send_due(&store, &client, &sending).await;
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
async fn send_due(store: &Store, client: &HttpClient, sending: &Arc<Semaphore>) {
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
        let (store, client) = (store.clone(), client.clone());
        tokio::spawn(async move {
            send(&store, &client, &outgoing).await;
            drop(slot);
        });
    }
}

/// One attempt: POST the event, signed, and record what came of it.
async fn send(store: &Store, client: &HttpClient, outgoing: &Outgoing) {
    let at = store.now();
    let body = serde_json::to_vec(&outgoing.event).unwrap_or_default();
    let signature = webhooks::sign(&outgoing.secret, at.millis().div_euclid(1000), &body);
    let started = Instant::now();
    let answer = match client.post(&outgoing.url) {
        Ok(request) => request
            .header(CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header("Omnihub-Event-Id", &outgoing.event.id)
            .header("Omnihub-Event-Type", &outgoing.event.kind)
            .body(body)
            .send()
            .await
            .map_err(|error| egress::failure(&error).to_owned()),
        Err(refused) => Err(refused.to_string()),
    };
    let response_time_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    // What the receiver said is never kept: its status code tells what the log needs.
    let outcome = match answer {
        Ok(response) => {
            let code = response.status().as_u16();
            Outcome {
                at,
                status_code: Some(code),
                error: (!accepted(code)).then(|| format!("answered {code}")),
                response_time_ms,
            }
        }
        Err(error) => Outcome {
            at,
            status_code: None,
            error: Some(error),
            response_time_ms,
        },
    };
    match store.record_webhook_attempt(outgoing, &outcome).await {
        Ok(status) => tracing::debug!(delivery = %outgoing.delivery_id, status = status.as_str(), "webhook attempt"),
        Err(error) => tracing::warn!(%error, delivery = %outgoing.delivery_id, "could not record a webhook attempt"),
    }
}
