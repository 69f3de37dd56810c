//! The public API of one running server, for setting up fixtures and checking results. The
//! bench only ever speaks HTTP to the server, like an integrator would: it never opens the
//! database.

use std::fmt;
use std::time::Duration;

use hyper::body::Bytes;
use hyper::header::HeaderValue;
use hyper::{Method, Uri};
use serde_json::{Value, json};

use crate::http::{self, Server};

/// What went wrong, said for a person reading the terminal.
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// The API of one running server, called with one secret key.
#[derive(Debug, Clone)]
pub struct Api {
    pub server: Server,
    /// The whole `Authorization` header.
    pub auth: HeaderValue,
    pub timeout: Duration,
}

impl Api {
    pub fn new(server: Server, key: &str, timeout: Duration) -> Result<Api> {
        let auth = HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| Error("--key holds characters a header cannot carry".into()))?;
        Ok(Api { server, auth, timeout })
    }

    /// `/api/v1{path}`; `path` may carry a query.
    pub fn path(&self, path: &str) -> Result<Uri> {
        http::path(&format!("/api/v1{path}"))
    }

    /// Sends a request on a connection of its own and answers the status and the JSON body
    /// (`null` when there is none). Set-up is not measured, so no connection is kept.
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let failed = |failure: http::Failure| Error(format!("{method} {path}: {}", failure.kind()));
        let body = body.map(|b| Bytes::from(b.to_string()));
        let request = self
            .server
            .request(method.clone(), &self.path(path)?, &self.auth, body)?;
        let mut connection = http::connect(&self.server).await.map_err(failed)?;
        let answer = connection.send(request, self.timeout).await.map_err(failed)?;
        let value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        Ok((answer.status, value))
    }

    /// Sends a request that must answer `expected`; anything else is an error naming the call.
    pub async fn expect(&self, method: Method, path: &str, body: Option<&Value>, expected: u16) -> Result<Value> {
        let (status, value) = self.send(method.clone(), path, body).await?;
        if status == expected {
            Ok(value)
        } else {
            Err(Error(format!(
                "{method} {path} answered {status} (expected {expected}): {value}"
            )))
        }
    }

    pub async fn create(&self, path: &str, body: &Value) -> Result<String> {
        let created = self.expect(Method::POST, path, Some(body), 201).await?;
        id_of(&created)
    }
}

/// The `id` of a resource the server answered.
pub fn id_of(value: &Value) -> Result<String> {
    value["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Error(format!("no id in {value}")))
}

/// A suffix no earlier run used, so that every run works on its own fresh SKUs even against a
/// database that earlier runs filled.
pub fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{:x}", std::process::id())
}

/// One inventory level of a SKU, as `GET /inventory/levels` answers it.
#[derive(Debug, serde::Serialize)]
pub struct LevelFigures {
    pub location_id: String,
    pub on_hand: i64,
    pub reserved: i64,
}

/// Every level of a SKU.
pub async fn levels(api: &Api, sku: &str) -> Result<Vec<LevelFigures>> {
    let answer = api
        .expect(Method::GET, &format!("/inventory/levels?sku={sku}"), None, 200)
        .await?;
    let rows = answer["data"]
        .as_array()
        .ok_or_else(|| Error(format!("levels without data: {answer}")))?;
    rows.iter()
        .map(|row| {
            let int = |field: &str| {
                row[field]
                    .as_i64()
                    .ok_or_else(|| Error(format!("level without {field}: {row}")))
            };
            Ok(LevelFigures {
                location_id: row["location_id"].as_str().unwrap_or_default().to_owned(),
                on_hand: int("on_hand")?,
                reserved: int("reserved")?,
            })
        })
        .collect()
}

// ---- fixtures: the smallest valid resources the scenarios need ----

pub async fn location(api: &Api, name: &str, kind: &str) -> Result<String> {
    let body = json!({
        "name": name,
        "kind": kind,
        "address": {"line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "pickup": kind == "store",
        "ship_from": true,
        "priority": 1
    });
    api.create("/locations", &body).await
}

pub async fn channel(api: &Api, name: &str, location_ids: &[String]) -> Result<String> {
    let body = json!({"name": name, "kind": "web", "currency": "EUR", "location_ids": location_ids});
    api.create("/channels", &body).await
}

pub async fn product(api: &Api, title: &str, skus: &[String]) -> Result<String> {
    let variants: Vec<Value> = skus
        .iter()
        .map(|sku| json!({"sku": sku, "title": sku, "price": {"amount": 1999, "currency": "EUR"}}))
        .collect();
    api.create("/products", &json!({"title": title, "variants": variants}))
        .await
}

/// Receives stock: one `receipt` movement.
pub async fn receive(api: &Api, sku: &str, location_id: &str, units: i64) -> Result<()> {
    let body = json!({"sku": sku, "location_id": location_id, "delta": units, "reason": "receipt"});
    api.expect(Method::POST, "/inventory/adjustments", Some(&body), 200)
        .await
        .map(drop)
}

/// Publishes a product in a channel at its base prices.
pub async fn publish(api: &Api, product_id: &str, channel_id: &str) -> Result<()> {
    let path = format!("/products/{product_id}/listings/{channel_id}");
    api.expect(Method::PUT, &path, Some(&json!({"published": true})), 200)
        .await
        .map(drop)
}
