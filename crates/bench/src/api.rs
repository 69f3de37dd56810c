//! A small client of the public API, for setting up fixtures and checking results. The bench
//! only ever speaks HTTP to the server, like an integrator would: it never opens the database.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Client, Method, Url};
use serde_json::{Value, json};

/// What went wrong, said for a person reading the terminal.
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<reqwest::Error> for Error {
    fn from(error: reqwest::Error) -> Self {
        Error(format!("HTTP: {error}"))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// One HTTP client for the whole run: keep-alive connections are pooled and reused, so the
/// figures measure requests, not TCP handshakes.
pub fn client(request_timeout: Duration) -> Result<Client> {
    Ok(Client::builder()
        // A proxy from the environment would put a third process into the measurement, and
        // the bench must only ever reach the local server.
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(request_timeout)
        .build()?)
}

/// The base URL, refused unless it points at this machine: a load generator must never be
/// aimed at somebody else's server by a typo.
pub fn local_base(url: &str) -> Result<Url> {
    let base = Url::parse(url).map_err(|e| Error(format!("--url {url}: {e}")))?;
    let loopback = match base.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    if base.scheme() != "http" || !loopback {
        return Err(Error(format!(
            "--url {url}: only a server on this machine over plain HTTP (e.g. http://127.0.0.1:8080)"
        )));
    }
    Ok(base)
}

/// The API of one running server, called with one secret key.
#[derive(Clone)]
pub struct Api {
    client: Client,
    base: Url,
    auth: HeaderValue,
}

impl Api {
    pub fn new(client: Client, base: Url, key: &str) -> Result<Api> {
        let auth = HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| Error("--key holds characters a header cannot carry".into()))?;
        Ok(Api { client, base, auth })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The `Authorization` header every API request carries.
    pub fn auth(&self) -> &HeaderValue {
        &self.auth
    }

    /// `/api/v1{path}` on the server; `path` may carry a query.
    pub fn url(&self, path: &str) -> Result<Url> {
        self.base
            .join(&format!("/api/v1{path}"))
            .map_err(|e| Error(format!("{path}: {e}")))
    }

    /// A URL outside the API (e.g. `/healthz`).
    pub fn plain_url(&self, path: &str) -> Result<Url> {
        self.base.join(path).map_err(|e| Error(format!("{path}: {e}")))
    }

    /// Sends a request and answers the status and the JSON body (`null` when there is none).
    pub async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let mut request = self
            .client
            .request(method, self.url(path)?)
            .header(AUTHORIZATION, self.auth.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, value))
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

#[cfg(test)]
mod tests {
    use super::local_base;

    #[test]
    fn only_this_machine_is_a_target() {
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:80",
            "http://127.0.0.2",
        ] {
            assert!(local_base(url).is_ok(), "{url}");
        }
        for url in [
            "http://10.0.0.1:8080",
            "https://127.0.0.1",
            "http://example.com",
            "nonsense",
        ] {
            assert!(local_base(url).is_err(), "{url}");
        }
    }
}
