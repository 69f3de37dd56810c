//! Webhook deliveries on the wire: one attempt is one signed POST of the event to the
//! endpoint, and its outcome is what the receiver's status code says. Claiming deliveries
//! and recording attempts is the caller's.

use std::time::{Duration, Instant};

use omnihub_domain::Timestamp;
use omnihub_domain::webhooks::{self, Outcome, Outgoing, SIGNATURE_HEADER, accepted};
use reqwest::header::CONTENT_TYPE;

use crate::egress::{self, Egress, HttpClient};

/// Sends deliveries to the destinations the egress allows. HTTPS goes through rustls with
/// ring, the process's only crypto provider. Redirects are not followed: a receiver answers
/// where it was registered.
#[derive(Clone)]
pub struct Sender {
    client: HttpClient,
}

impl Sender {
    /// `timeout`: how long a receiver may take to answer one attempt.
    pub fn new(egress: &Egress, timeout: Duration) -> Result<Sender, reqwest::Error> {
        let client = egress.http_client(timeout, concat!("Omnihub-Webhooks/", env!("CARGO_PKG_VERSION")))?;
        Ok(Sender { client })
    }

    /// One attempt at `at`: POST the event, signed, and tell what came of it.
    pub async fn send(&self, outgoing: &Outgoing, at: Timestamp) -> Outcome {
        let body = serde_json::to_vec(&outgoing.event).unwrap_or_default();
        let signature = webhooks::sign(&outgoing.secret, at.millis().div_euclid(1000), &body);
        let started = Instant::now();
        let answer = match self.client.post(&outgoing.url) {
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
        match answer {
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
        }
    }
}
