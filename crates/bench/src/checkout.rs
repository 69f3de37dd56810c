//! `checkout`: buyers run the whole flow again and again — create a cart, add a line, choose
//! the fulfilment, check out: four requests on one keep-alive connection — for a while. Every
//! flow must end in a placed order.

use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request};
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::{self, Api, Result};
use crate::http::{self, Connection};
use crate::load::{ErrorKinds, Histogram, round};

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub buyers: usize,
    pub seconds: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    scenario: &'static str,
    buyers: usize,
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

struct Fixture {
    channel: String,
    sku: String,
}

/// A warehouse with plenty of a fresh SKU, a web channel that sells it.
async fn set_up(api: &Api) -> Result<Fixture> {
    let suffix = api::unique_suffix();
    let warehouse = api::location(api, &format!("Bench warehouse {suffix}"), "warehouse").await?;
    let channel = api::channel(api, &format!("Bench web {suffix}"), std::slice::from_ref(&warehouse)).await?;
    let sku = format!("BENCH-CHECKOUT-{suffix}");
    let product = api::product(api, "Bench checkout", std::slice::from_ref(&sku)).await?;
    api::publish(api, &product, &channel).await?;
    api::receive(api, &sku, &warehouse, 10_000_000).await?;
    Ok(Fixture { channel, sku })
}

pub async fn run(api: &Api, options: Options) -> Result<Report> {
    let fixture = std::sync::Arc::new(set_up(api).await?);
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let started = Instant::now();
    let buyers: Vec<_> = (0..options.buyers)
        .map(|_| {
            let (api, fixture) = (api.clone(), fixture.clone());
            tokio::spawn(async move { buyer(&api, &fixture, deadline).await })
        })
        .collect();
    let (mut latencies, mut errors) = (Histogram::default(), ErrorKinds::default());
    for buyer in buyers {
        match buyer.await {
            Ok((histogram, kinds)) => {
                latencies.merge(&histogram);
                kinds.into_iter().for_each(|kind| errors.add(kind));
            }
            Err(_) => errors.add("buyer task panicked"),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Report {
        scenario: "checkout",
        buyers: options.buyers,
        seconds: round(seconds, 2),
        flows: latencies.count(),
        flows_per_second: round(latencies.count() as f64 / seconds, 1),
        errors: errors.total(),
        error_kinds: errors,
        p50_ms: latencies.percentile_ms(0.50),
        p99_ms: latencies.percentile_ms(0.99),
        max_ms: latencies.max_ms(),
    })
}

/// One buyer's flows until the deadline: their latencies and what went wrong.
async fn buyer(api: &Api, fixture: &Fixture, deadline: Instant) -> (Histogram, Vec<String>) {
    let (mut latencies, mut failures) = (Histogram::default(), Vec::new());
    let mut connection = None;
    while Instant::now() < deadline {
        let mut open = match connection.take() {
            Some(open) => open,
            None => match http::connect(&api.server).await {
                Ok(open) => open,
                Err(failure) => {
                    failures.push(failure.kind().to_owned());
                    continue;
                }
            },
        };
        let started = Instant::now();
        match flow(api, fixture, &mut open).await {
            Ok(()) => {
                latencies.record(started.elapsed());
                connection = Some(open);
            }
            Err(failure) => failures.push(failure),
        }
    }
    (latencies, failures)
}

/// Cart, line, fulfilment, checkout; an error names the step and the answer.
async fn flow(api: &Api, fixture: &Fixture, connection: &mut Connection) -> std::result::Result<(), String> {
    let cart = call(
        api,
        connection,
        "cart",
        Method::POST,
        "/carts",
        json!({"channel_id": fixture.channel}),
        201,
    )
    .await?;
    let cart = cart["id"].as_str().ok_or("cart without id")?.to_owned();
    let line = json!({"sku": fixture.sku, "quantity": 1});
    call(
        api,
        connection,
        "line",
        Method::POST,
        &format!("/carts/{cart}/lines"),
        line,
        200,
    )
    .await?;
    let details = json!({
        "email": "bench@example.com",
        "shipping_address": {"line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "fulfillment": {"method": "ship"}
    });
    call(
        api,
        connection,
        "fulfilment",
        Method::PATCH,
        &format!("/carts/{cart}"),
        details,
        200,
    )
    .await?;
    call(
        api,
        connection,
        "checkout",
        Method::POST,
        &format!("/carts/{cart}/checkout"),
        json!({}),
        201,
    )
    .await?;
    Ok(())
}

async fn call(
    api: &Api,
    connection: &mut Connection,
    step: &str,
    method: Method,
    path: &str,
    body: Value,
    expected: u16,
) -> std::result::Result<Value, String> {
    let request: Request<Full<Bytes>> = api
        .server
        .request(
            method,
            &api.path(path).map_err(|e| e.0)?,
            &api.auth,
            Some(Bytes::from(body.to_string())),
        )
        .map_err(|e| e.0)?;
    let answer = connection
        .send(request, api.timeout)
        .await
        .map_err(|f| f.kind().to_owned())?;
    if answer.status != expected {
        return Err(format!("{step} {}", answer.status));
    }
    Ok(serde_json::from_slice(&answer.body).unwrap_or(Value::Null))
}
