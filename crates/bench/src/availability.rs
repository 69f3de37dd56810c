//! `availability-read`: the storefront's and the marketplace feed's hot path. Keep-alive
//! clients alternate `GET /availability` for a few SKUs and `GET /products/{id}` with the
//! channel's prices, for a fixed time.

use std::collections::BTreeMap;

use hyper::Method;
use serde::Serialize;

use crate::api::{self, Api, Error, Result};
use crate::load::{self, Figures, Latencies, Plan, Target};

/// Resources to read; made by the scenario unless the command line names existing ones.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub channel_id: String,
    pub product_id: String,
    pub skus: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub concurrency: usize,
    pub seconds: f64,
    #[serde(flatten)]
    pub figures: Figures,
    pub endpoints: BTreeMap<&'static str, Latencies>,
}

/// A channel selling from a warehouse and a pick-up store, and one product whose three SKUs
/// have stock at both and are published in the channel.
pub async fn set_up(api: &Api) -> Result<Fixture> {
    let suffix = api::unique_suffix();
    let warehouse = api::location(api, &format!("Bench warehouse {suffix}"), "warehouse").await?;
    let store = api::location(api, &format!("Bench store {suffix}"), "store").await?;
    let locations = [warehouse, store];
    let channel_id = api::channel(api, &format!("Bench web {suffix}"), &locations).await?;
    let skus: Vec<String> = ["A", "B", "C"]
        .iter()
        .map(|v| format!("BENCH-READ-{suffix}-{v}"))
        .collect();
    let product_id = api::product(api, "Bench read", &skus).await?;
    for sku in &skus {
        for (location, units) in locations.iter().zip([40, 7]) {
            api::receive(api, sku, location, units).await?;
        }
    }
    api::publish(api, &product_id, &channel_id).await?;
    Ok(Fixture {
        channel_id,
        product_id,
        skus,
    })
}

/// The two reads, each checked once so that a broken fixture fails loudly instead of
/// producing a fast stream of errors.
pub async fn targets(api: &Api, fixture: &Fixture) -> Result<Vec<Target>> {
    let channel = &fixture.channel_id;
    let skus = fixture.skus.iter().take(2).cloned().collect::<Vec<_>>().join(",");
    let paths = [
        (
            "availability",
            format!("/availability?channel_id={channel}&skus={skus}"),
        ),
        (
            "product",
            format!("/products/{}?channel_id={channel}", fixture.product_id),
        ),
    ];
    let mut targets = Vec::new();
    for (name, path) in paths {
        api.expect(Method::GET, &path, None, 200)
            .await
            .map_err(|e| Error(format!("the fixture cannot be read: {e}")))?;
        targets.push(Target {
            name,
            path: api.path(&path)?,
        });
    }
    Ok(targets)
}

/// Warms up (connections, caches, the server's pools), then measures.
pub async fn run(api: &Api, targets: &[Target], warm_up: Plan, plan: Plan) -> Report {
    load::run(&api.server, &api.auth, targets, warm_up).await;
    let outcome = load::run(&api.server, &api.auth, targets, plan).await;
    Report {
        scenario: "availability-read",
        concurrency: plan.concurrency,
        seconds: load::round(outcome.elapsed.as_secs_f64(), 2),
        figures: outcome.figures(),
        endpoints: outcome.per_target_figures(targets),
    }
}
