//! Starts the real server on `127.0.0.1:0` against a fresh database: a temporary SQLite file,
//! or a new PostgreSQL database when `OMNIHUB_TEST_POSTGRES_URL` is set.

use std::sync::Arc;

use omnihub::{Application, Settings, bootstrap_owner_key, open_store};
use omnihub_domain::Timestamp;
use omnihub_domain::clock::ManualClock;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

use crate::scratch::Scratch;

pub const OWNER_KEY: &str = "sk_test_owner_0123456789abcdef";

/// Runs each listed test on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::helpers::TestApp::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(app) = $crate::helpers::TestApp::postgres().await {
                        super::$test(app).await;
                    }
                }
            )*
        }
    };
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    app: Option<Application>,
    /// More server processes on the same database.
    nodes: std::sync::Mutex<Vec<Application>>,
    /// What the server was started with; restarts and more nodes use it too.
    settings: Settings,
    /// Last: the database goes once the servers have stopped.
    scratch: Scratch,
}

impl TestApp {
    pub async fn sqlite() -> TestApp {
        TestApp::start(Scratch::folder("omnihub-test")).await
    }

    /// A fresh PostgreSQL database, or `None` (skipped) when none is configured outside CI.
    pub async fn postgres() -> Option<TestApp> {
        Some(TestApp::start(Scratch::postgres("omnihub_test").await?).await)
    }

    async fn start(scratch: Scratch) -> TestApp {
        let settings = scratch.settings(test_settings());
        let clock = ManualClock::at(Timestamp(1_790_000_000_000));
        let store = open_store(&settings, Arc::new(clock.clone()))
            .await
            .expect("database opens");
        bootstrap_owner_key(&store, Some(OWNER_KEY)).await.expect("owner key");
        let app = Application::start(&settings, store).await.expect("server starts");
        TestApp {
            base: format!("http://{}", app.address),
            client: reqwest::Client::new(),
            clock,
            app: Some(app),
            nodes: Default::default(),
            settings,
            scratch,
        }
    }

    pub fn store(&self) -> &omnihub_store::Store {
        &self.app.as_ref().expect("running").store
    }

    /// A request to `/api/v1{path}` with the owner key.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(OWNER_KEY)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("request")
    }

    /// The OpenAPI document the server serves.
    pub async fn openapi(&self) -> Value {
        let document = self.client.get(format!("{}/openapi.json", self.base)).send().await;
        json(document.expect("request"), 200).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path).send().await.expect("request")
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.request(Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Response {
        self.request(Method::PATCH, path)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.request(Method::PUT, path)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// On PostgreSQL, a second server process on the same database (answers its base URL);
    /// on SQLite, `None`: one file has one server.
    pub async fn another_node(&self) -> Option<String> {
        if !self.scratch.is_shared() {
            return None;
        }
        let settings = self.settings.clone();
        let store = open_store(&settings, Arc::new(self.clock.clone()))
            .await
            .expect("database opens");
        let node = Application::start(&settings, store).await.expect("second node starts");
        let base = format!("http://{}", node.address);
        self.nodes.lock().expect("nodes").push(node);
        Some(base)
    }

    /// A secret key with just these scopes.
    pub async fn key_with(&self, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        self.store()
            .generate_api_key("test", &scopes, None, &[])
            .await
            .expect("key")
            .token
    }

    /// Stops the server gracefully (tests of shutdown behaviour).
    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await.expect("stops cleanly");
        }
    }

    /// Stops the server and starts a new one on the same database and clock, with `change`
    /// made to its settings (a new port: `base` follows).
    pub async fn restart_with(&mut self, change: impl FnOnce(&mut Settings)) {
        self.stop().await;
        change(&mut self.settings);
        let store = open_store(&self.settings, Arc::new(self.clock.clone()))
            .await
            .expect("database opens");
        let app = Application::start(&self.settings, store).await.expect("server starts");
        self.base = format!("http://{}", app.address);
        self.app = Some(app);
    }
}

fn test_settings() -> Settings {
    Settings {
        listen: Some("127.0.0.1:0".parse().expect("address")),
        max_body_bytes: Some(64 * 1024),
        db_max_connections: Some(8),
        // The fake providers and receivers listen on 127.0.0.1.
        allow_private_destinations: Some(true),
        // One key for every node and restart, as the README asks of PostgreSQL nodes: sealed
        // credentials and webhook secrets open everywhere.
        secret_key: Some(omnihub::config::Secret("5e".repeat(32))),
        // The test SMTP servers' certificate is signed by this CA.
        extra_ca_file: Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls/ca.pem")),
        ..Settings::default()
    }
}

/// The JSON body of a response, after checking its status.
/// The `type` of each item of a list page (events, timeline entries).
pub fn types(page: &Value) -> Vec<&str> {
    page["data"]
        .as_array()
        .expect("a list page")
        .iter()
        .map(|item| item["type"].as_str().expect("an item with a type"))
        .collect()
}

pub async fn json(response: Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Checks a problem answer's status and code; answers the problem.
pub async fn problem(response: Response, status: u16, code: &str) -> Value {
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = json(response, status).await;
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["code"], code, "{body}");
    body
}
