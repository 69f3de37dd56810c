//! `checkout`: buyers run the whole flow again and again — create a cart, add a line, choose
//! the fulfilment, check out: four requests on one keep-alive connection — for a while. Every
//! flow must end in a placed order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request};
use serde::Serialize;
use serde_json::json;

use crate::api::{self, Api, Result};
use crate::http::{self, Connection};
use crate::load::{ErrorKinds, Histogram, round};

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub buyers: usize,
    pub seconds: u64,
    /// How many SKUs the buyers spread over: 1 makes every checkout take the same level.
    pub skus: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    scenario: &'static str,
    buyers: usize,
    skus: usize,
    seconds: f64,
    /// Flows that ended in a placed order.
    flows: u64,
    flows_per_second: f64,
    errors: u64,
    #[serde(skip_serializing_if = "ErrorKinds::is_empty")]
    error_kinds: ErrorKinds,
    /// Latency of a whole flow (four requests).
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.errors == 0 && self.flows > 0
    }
}

pub struct Fixture {
    pub channel: String,
    pub skus: Vec<String>,
}

/// A warehouse with plenty of `skus` fresh SKUs, a web channel that sells them.
pub async fn set_up(api: &Api, skus: usize) -> Result<Fixture> {
    let suffix = api::unique_suffix();
    let warehouse = api::location(api, &format!("Bench warehouse {suffix}"), "warehouse").await?;
    let channel = api::channel(api, &format!("Bench web {suffix}"), std::slice::from_ref(&warehouse)).await?;
    let skus: Vec<String> = (1..=skus).map(|n| format!("BENCH-CHECKOUT-{suffix}-{n}")).collect();
    let product = api::product(api, "Bench checkout", &skus).await?;
    api::publish(api, &product, &channel).await?;
    for sku in &skus {
        api::receive(api, sku, &warehouse, 10_000_000).await?;
    }
    Ok(Fixture { channel, skus })
}

pub async fn run(api: &Api, options: Options) -> Result<Report> {
    let fixture = Arc::new(set_up(api, options.skus).await?);
    let running = Arc::new(AtomicBool::new(true));
    let timer = {
        let running = running.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(options.seconds)).await;
            running.store(false, Ordering::Relaxed);
        })
    };
    let started = Instant::now();
    let outcome = buyers(api, &fixture, options.buyers, &running).await;
    timer.abort();
    let seconds = started.elapsed().as_secs_f64();
    let latencies = &outcome.latencies;
    Ok(Report {
        scenario: "checkout",
        buyers: options.buyers,
        skus: options.skus,
        seconds: round(seconds, 2),
        flows: latencies.count(),
        flows_per_second: round(latencies.count() as f64 / seconds, 1),
        errors: outcome.errors.total(),
        p50_ms: latencies.percentile_ms(0.50),
        p99_ms: latencies.percentile_ms(0.99),
        max_ms: latencies.max_ms(),
        error_kinds: outcome.errors,
    })
}

/// What a crowd of buyers achieved: every order the server acknowledged, the flows'
/// latencies and what went wrong.
#[derive(Default)]
pub struct Outcome {
    pub orders: Vec<String>,
    pub latencies: Histogram,
    pub errors: ErrorKinds,
}

/// `count` buyers running flows on their own connections while `running` holds.
pub async fn buyers(api: &Api, fixture: &Arc<Fixture>, count: usize, running: &Arc<AtomicBool>) -> Outcome {
    let buyers: Vec<_> = (0..count)
        .map(|n| {
            let (api, fixture, running) = (api.clone(), fixture.clone(), running.clone());
            tokio::spawn(async move { buyer(&api, &fixture, n, &running).await })
        })
        .collect();
    let mut outcome = Outcome::default();
    for buyer in buyers {
        match buyer.await {
            Ok(one) => {
                outcome.latencies.merge(&one.latencies);
                outcome.orders.extend(one.orders);
                outcome.errors.merge(&one.errors);
            }
            Err(_) => outcome.errors.add("buyer task panicked"),
        }
    }
    outcome
}

/// One buyer's flows while `running` holds; the `n`th buyer starts at the `n`th SKU and takes
/// the next one each flow.
async fn buyer(api: &Api, fixture: &Fixture, n: usize, running: &AtomicBool) -> Outcome {
    let mut outcome = Outcome::default();
    let mut skus = fixture.skus.iter().cycle().skip(n);
    let mut connection = None;
    while running.load(Ordering::Relaxed) {
        let mut open = match connection.take() {
            Some(open) => open,
            None => match http::connect(&api.server).await {
                Ok(open) => open,
                Err(failure) => {
                    outcome.errors.add(failure.kind());
                    // A server that is gone refuses at once: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let sku = skus.next().map_or("", String::as_str);
        let started = Instant::now();
        match flow(api, &fixture.channel, sku, &mut open).await {
            Ok(order) => {
                outcome.latencies.record(started.elapsed());
                outcome.orders.push(order);
                connection = Some(open);
            }
            Err(failure) => outcome.errors.add(failure),
        }
    }
    outcome
}

/// Cart, line, fulfilment, checkout: the placed order's id, or an error naming the step and
/// the answer. Like a real load generator it reads only what it needs from the answers (the
/// ids), so that its own work on the shared machine stays small.
async fn flow(api: &Api, channel: &str, sku: &str, connection: &mut Connection) -> std::result::Result<String, String> {
    let cart = json!({"channel_id": channel}).to_string();
    let cart = id_of(&call(api, connection, "cart", Method::POST, "/carts", cart, 201).await?)?;
    let line = json!({"sku": sku, "quantity": 1}).to_string();
    let lines = format!("/carts/{cart}/lines");
    call(api, connection, "line", Method::POST, &lines, line, 200).await?;
    let details = json!({
        "email": "bench@example.com",
        "shipping_address": {"line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "fulfillment": {"method": "ship"}
    })
    .to_string();
    let path = format!("/carts/{cart}");
    call(api, connection, "fulfilment", Method::PATCH, &path, details, 200).await?;
    let checkout = format!("/carts/{cart}/checkout");
    let order = call(api, connection, "checkout", Method::POST, &checkout, "{}".into(), 201).await?;
    id_of(&order)
}

/// The `id` of a created cart or order.
fn id_of(body: &Bytes) -> std::result::Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Created {
        id: String,
    }
    serde_json::from_slice::<Created>(body)
        .map(|created| created.id)
        .map_err(|_| "an answer without an id".to_owned())
}

async fn call(
    api: &Api,
    connection: &mut Connection,
    step: &str,
    method: Method,
    path: &str,
    body: String,
    expected: u16,
) -> std::result::Result<Bytes, String> {
    let request: Request<Full<Bytes>> = api
        .server
        .request(
            method,
            &api.path(path).map_err(|e| e.0)?,
            &api.auth,
            Some(Bytes::from(body)),
        )
        .map_err(|e| e.0)?;
    let answer = connection
        .send(request, api.timeout)
        .await
        .map_err(|f| f.kind().to_owned())?;
    if answer.status != expected {
        return Err(format!("{step} {}", answer.status));
    }
    Ok(answer.body)
}
