//! Small builders of valid resources for tests.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, json};

pub fn location_body(name: &str, kind: &str) -> Value {
    json!({
        "name": name,
        "kind": kind,
        "address": {"line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "geo": {"lat": 52.53, "lon": 13.38},
        "pickup": kind == "store",
        "ship_from": true,
        "priority": 1
    })
}

pub async fn location(app: &TestApp, name: &str, kind: &str) -> Value {
    json(app.post("/locations", &location_body(name, kind)).await, 201).await
}

pub async fn channel(app: &TestApp, name: &str, kind: &str, location_ids: &[&str]) -> Value {
    let body = json!({"name": name, "kind": kind, "currency": "EUR", "location_ids": location_ids});
    json(app.post("/channels", &body).await, 201).await
}

pub fn product_body(title: &str, skus: &[&str], price: i64) -> Value {
    let variants: Vec<Value> = skus
        .iter()
        .map(|sku| json!({"sku": sku, "title": sku, "price": {"amount": price, "currency": "EUR"}}))
        .collect();
    json!({"title": title, "variants": variants})
}

pub async fn product(app: &TestApp, title: &str, skus: &[&str], price: i64) -> Value {
    json(app.post("/products", &product_body(title, skus, price)).await, 201).await
}

/// Order #1001 of one scarf, taken in from the web shop for the buyer with `email` and shipped
/// with DHL (tracking number 00340434); answers the order as shipped.
pub async fn shipped_order(app: &TestApp, name: &str, email: &str) -> Value {
    let warehouse = location(app, "Warehouse", "warehouse").await;
    let web = channel(app, "Web", "web", &[id(&warehouse)]).await;
    product(app, "Scarf", &["SCARF-1"], 1900).await;
    let stock = json!({"sku": "SCARF-1", "location_id": id(&warehouse), "delta": 3, "reason": "receipt"});
    json(app.post("/inventory/adjustments", &stock).await, 200).await;
    let sale = json!({"channel_id": id(&web), "external_id": "WEB-1", "lines": [{"sku": "SCARF-1", "quantity": 1,
        "unit_price": {"amount": 1900, "currency": "EUR"}}], "fulfillment": {"method": "ship"},
        "shipping_address": {"name": name, "line1": "Torstr. 1", "city": "Berlin", "postal_code": "10119", "country": "DE"},
        "customer": {"identities": [{"kind": "email", "value": email}]}});
    let order = json(app.post("/orders", &sale).await, 201).await;
    let parcel =
        json!({"location_id": id(&warehouse), "kind": "shipment", "lines": [{"sku": "SCARF-1", "quantity": 1}]});
    let order = json(
        app.post(&format!("/orders/{}/fulfillments", id(&order)), &parcel).await,
        201,
    )
    .await;
    let fulfillment = order["fulfillments"][0]["id"].as_str().unwrap();
    let shipped = json!({"carrier": "DHL", "tracking_number": "00340434"});
    let path = format!("/orders/{}/fulfillments/{fulfillment}/ship", id(&order));
    json(app.post(&path, &shipped).await, 200).await
}

pub fn id(value: &Value) -> &str {
    value["id"].as_str().expect("an id")
}

/// A publishable key of `channel`, as a storefront holds it.
pub async fn publishable_key(app: &TestApp, channel: &str) -> String {
    app.store()
        .generate_api_key("storefront", &[], Some(channel), &[])
        .await
        .expect("key")
        .token
}

/// A request to `/api/v1{path}` with `key`, and `body` as JSON.
pub async fn as_key(app: &TestApp, key: &str, method: Method, path: &str, body: Option<&Value>) -> reqwest::Response {
    let request = app
        .client
        .request(method, format!("{}/api/v1{path}", app.base))
        .bearer_auth(key);
    let request = match body {
        Some(body) => request.json(body),
        None => request,
    };
    request.send().await.expect("request")
}
