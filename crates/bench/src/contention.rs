//! `contention`: the stampede. Many buyers want one unit each of a SKU that has 100 units over
//! three locations, from five channels, all at the same instant. Exactly the stock may be
//! reserved, every other buyer must get a clean 409 `insufficient_stock`, and no unit may stay
//! unsold while a buyer was turned away.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::api::{self, Api, LevelFigures, Result};
use crate::http::{self, Connection};
use crate::load::{ErrorKinds, Histogram, round};

/// How the stock is spread over the three locations: 100 units in all.
const SPREAD: [i64; 3] = [50, 30, 20];
const CHANNELS: usize = 5;

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub buyers: usize,
    /// Open every buyer's connection before the start, so that the figure is the server
    /// deciding, not 1,000 TCP handshakes.
    pub connect_first: bool,
}

/// What the run found; `ok()` says whether every promise held.
#[derive(Debug, Serialize)]
pub struct Report {
    scenario: &'static str,
    buyers: usize,
    stock: i64,
    reserved_units: i64,
    refused_409: u64,
    errors: u64,
    #[serde(skip_serializing_if = "ErrorKinds::is_empty")]
    error_kinds: ErrorKinds,
    oversold: bool,
    unsold_while_refused: bool,
    /// What `GET /inventory/levels` says afterwards agrees with the answers the buyers got.
    levels_agree: bool,
    levels: Vec<LevelFigures>,
    elapsed_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.errors == 0 && !self.oversold && !self.unsold_while_refused && self.levels_agree
    }
}

struct Fixture {
    sku: String,
    channels: Vec<String>,
}

pub async fn run(api: &Api, options: Options) -> Result<Report> {
    let fixture = set_up(api).await?;
    let requests = buyers_requests(api, &fixture, options.buyers)?;
    let (answers, elapsed) = stampede(api, requests, options.connect_first).await;
    let levels = api::levels(api, &fixture.sku).await?;
    Ok(report(options.buyers, &answers, elapsed, levels))
}

/// Three locations, five channels that sell from all three, a fresh SKU with its stock.
async fn set_up(api: &Api) -> Result<Fixture> {
    let suffix = api::unique_suffix();
    let mut locations = Vec::new();
    for (n, kind) in ["warehouse", "store", "store"].into_iter().enumerate() {
        locations.push(api::location(api, &format!("Bench {kind} {n} {suffix}"), kind).await?);
    }
    let mut channels = Vec::new();
    for n in 0..CHANNELS {
        channels.push(api::channel(api, &format!("Bench channel {n} {suffix}"), &locations).await?);
    }
    let sku = format!("BENCH-HOT-{suffix}");
    api::product(api, "Bench stampede", std::slice::from_ref(&sku)).await?;
    for (location, units) in locations.iter().zip(SPREAD) {
        api::receive(api, &sku, location, units).await?;
    }
    Ok(Fixture { sku, channels })
}

/// Every buyer's request, built before the start so that the start releases only sending.
fn buyers_requests(api: &Api, fixture: &Fixture, buyers: usize) -> Result<Vec<Request<Full<Bytes>>>> {
    let path = api.path("/reservations")?;
    let bodies: Vec<Bytes> = fixture
        .channels
        .iter()
        .map(|channel| {
            let body =
                json!({"channel_id": channel, "lines": [{"sku": fixture.sku, "quantity": 1}], "ttl_seconds": 3600});
            Bytes::from(body.to_string())
        })
        .collect();
    (0..buyers)
        .map(|n| {
            let body = bodies[n % bodies.len()].clone();
            api.server.request(Method::POST, &path, &api.auth, Some(body))
        })
        .collect()
}

/// What one buyer was told.
enum Answer {
    Reserved(Duration),
    Refused(Duration),
    Failed(String),
}

/// Releases all buyers at once through a barrier and waits for every answer.
async fn stampede(api: &Api, requests: Vec<Request<Full<Bytes>>>, connect_first: bool) -> (Vec<Answer>, Duration) {
    // The buyers and this task meet at the barrier; the clock starts when it opens.
    let barrier = Arc::new(Barrier::new(requests.len() + 1));
    let buyers: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let (api, barrier) = (api.clone(), barrier.clone());
            tokio::spawn(async move {
                // A buyer whose connection failed still must reach the barrier, or nobody
                // would ever start.
                let early = if connect_first {
                    Some(http::connect(&api.server).await)
                } else {
                    None
                };
                barrier.wait().await;
                let started = Instant::now();
                let connection = match early {
                    Some(connected) => connected,
                    None => http::connect(&api.server).await,
                };
                match connection {
                    Ok(connection) => buy(connection, request, &api, started).await,
                    Err(failure) => Answer::Failed(failure.kind().into()),
                }
            })
        })
        .collect();
    barrier.wait().await;
    let started = Instant::now();
    let mut answers = Vec::with_capacity(buyers.len());
    for buyer in buyers {
        answers.push(
            buyer
                .await
                .unwrap_or_else(|_| Answer::Failed("buyer task panicked".into())),
        );
    }
    (answers, started.elapsed())
}

async fn buy(mut connection: Connection, request: Request<Full<Bytes>>, api: &Api, started: Instant) -> Answer {
    let answer = match connection.send(request, api.timeout).await {
        Ok(answer) => answer,
        Err(failure) => return Answer::Failed(failure.kind().into()),
    };
    let latency = started.elapsed();
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    match (answer.status, body["code"].as_str()) {
        (201, _) => Answer::Reserved(latency),
        (409, Some("insufficient_stock")) => Answer::Refused(latency),
        // Any other refusal (a 409 `conflict` after too many retries, a 5xx) is not clean.
        (status, code) => Answer::Failed(format!("{status} {}", code.unwrap_or("")).trim_end().to_owned()),
    }
}

fn report(buyers: usize, answers: &[Answer], elapsed: Duration, levels: Vec<LevelFigures>) -> Report {
    let mut latency = Histogram::default();
    let (mut reserved_units, mut refused, mut errors) = (0i64, 0u64, ErrorKinds::default());
    for answer in answers {
        match answer {
            Answer::Reserved(took) => {
                reserved_units += 1;
                latency.record(*took);
            }
            Answer::Refused(took) => {
                refused += 1;
                latency.record(*took);
            }
            Answer::Failed(kind) => errors.add(kind.clone()),
        }
    }
    let stock: i64 = SPREAD.iter().sum();
    let (on_hand, held): (i64, i64) = levels
        .iter()
        .map(|l| (l.on_hand, l.reserved))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    let left = on_hand - held;
    // Every buyer wanted one unit: with at least as many buyers as units, all must be gone.
    let all_sold_if_enough_buyers = buyers < stock as usize || left == 0;
    Report {
        scenario: "contention",
        buyers,
        stock,
        reserved_units,
        refused_409: refused,
        errors: errors.total(),
        error_kinds: errors,
        oversold: reserved_units > stock || levels.iter().any(|l| l.reserved > l.on_hand),
        unsold_while_refused: refused > 0 && left > 0,
        levels_agree: on_hand == stock && held == reserved_units && all_sold_if_enough_buyers,
        levels,
        elapsed_ms: round(elapsed.as_secs_f64() * 1000.0, 1),
        p50_ms: round(latency.percentile_ms(0.50), 3),
        p99_ms: round(latency.percentile_ms(0.99), 3),
        max_ms: round(latency.max_ms(), 3),
    }
}
