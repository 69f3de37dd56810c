//! Small builders of valid resources for tests.

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

pub fn id(value: &Value) -> &str {
    value["id"].as_str().expect("an id")
}
