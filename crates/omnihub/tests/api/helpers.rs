//! Starts the real server on `127.0.0.1:0` against a fresh database: a temporary SQLite file,
//! or a new PostgreSQL database when `OMNIHUB_TEST_POSTGRES_URL` is set.

use std::path::PathBuf;
use std::sync::Arc;

use omnihub::{Application, Settings, bootstrap_owner_key, open_store};
use omnihub_domain::Timestamp;
use omnihub_domain::clock::ManualClock;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

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
    cleanup: Cleanup,
}

enum Cleanup {
    Folder(PathBuf),
    Database { admin_url: String, name: String },
}

impl TestApp {
    pub async fn sqlite() -> TestApp {
        let dir = std::env::temp_dir().join(format!("omnihub-test-{}", ulid::Ulid::new()));
        let settings = Settings {
            data_dir: Some(dir.clone()),
            ..test_settings()
        };
        TestApp::start(settings, Cleanup::Folder(dir)).await
    }

    /// A fresh PostgreSQL database, or `None` (skipped) when none is configured outside CI.
    pub async fn postgres() -> Option<TestApp> {
        let in_ci = std::env::var_os("CI").is_some();
        let Ok(admin_url) = std::env::var("OMNIHUB_TEST_POSTGRES_URL") else {
            assert!(!in_ci, "OMNIHUB_TEST_POSTGRES_URL must be set in CI");
            eprintln!("skipped: OMNIHUB_TEST_POSTGRES_URL is not set");
            return None;
        };
        let name = format!("omnihub_test_{}", ulid::Ulid::new().to_string().to_lowercase());
        if let Err(error) = admin(&admin_url, &format!("CREATE DATABASE {name}")).await {
            assert!(
                !in_ci,
                "PostgreSQL at OMNIHUB_TEST_POSTGRES_URL is unreachable: {error}"
            );
            eprintln!("skipped: PostgreSQL is unreachable: {error}");
            return None;
        }
        let settings = Settings {
            database_url: Some(database_url(&admin_url, &name)),
            db_max_connections: Some(8),
            ..test_settings()
        };
        Some(TestApp::start(settings, Cleanup::Database { admin_url, name }).await)
    }

    async fn start(settings: Settings, cleanup: Cleanup) -> TestApp {
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
            cleanup,
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
        let Cleanup::Database { admin_url, name } = &self.cleanup else {
            return None;
        };
        let settings = Settings {
            database_url: Some(database_url(admin_url, name)),
            ..self.settings.clone()
        };
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
            .generate_api_key("test", &scopes, None)
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

impl Drop for TestApp {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Folder(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Database { admin_url, name } => {
                let (url, sql) = (
                    admin_url.clone(),
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                );
                // Drop runs outside async code: a thread with its own runtime drops the database.
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    runtime.block_on(admin(&url, &sql)).map_err(std::io::Error::other)
                })
                .join();
            }
        }
    }
}

fn test_settings() -> Settings {
    Settings {
        listen: Some("127.0.0.1:0".parse().expect("address")),
        max_body_bytes: Some(64 * 1024),
        db_max_connections: Some(8),
        ..Settings::default()
    }
}

async fn admin(url: &str, statement: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
        .execute(&mut connection)
        .await?;
    connection.close().await
}

/// The same server and credentials, another database.
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let root = base.rsplit_once('/').map_or(base, |(root, _)| root);
    match query {
        Some(query) => format!("{root}/{name}?{query}"),
        None => format!("{root}/{name}"),
    }
}

/// The JSON body of a response, after checking its status.
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
