//! Omnihub's HTTP API: the routes of `/api/v1`, the conventions every route shares (auth,
//! problem+json errors, idempotency, pagination, request ids, metrics) and the OpenAPI
//! document that describes them.

mod auth;
mod cors;
mod edge;
mod idempotency;
pub mod json;
mod limits;
mod lists;
mod observe;
mod openapi;
pub mod problem;
mod query;
mod routes;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use omnihub_domain::conversations::courier::Courier;
use omnihub_domain::network::TrustedProxies;
use omnihub_store::Store;
use tokio::sync::watch;

pub use observe::Metrics;
pub use openapi::document as openapi_document;

/// What the HTTP layer needs to know of the server's configuration.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Where providers reach the server (`https://hub.example.com`), for inboxes' webhook URLs.
    pub public_url: String,
    /// The load balancers and proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            body_limit: 2 * 1024 * 1024,
            public_url: "http://127.0.0.1:8080".to_owned(),
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// Shared by every request: one pointer, which every layer and handler clones.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What the requests share.
pub struct Shared {
    pub store: Store,
    /// Takes replies to the providers.
    pub courier: Arc<dyn Courier>,
    pub config: Arc<HttpConfig>,
    pub metrics: Arc<Metrics>,
    /// Turns true when the server shuts down, so that long-lived streams end.
    pub shutdown: watch::Receiver<bool>,
}

/// The whole HTTP surface of the hub.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The hub's HTTP surface with more routes beside the API (the admin app), which share its
/// request ids, logs, metrics and body limit.
pub fn router_with(state: AppState, more: Router) -> Router {
    let api = routes::api()
        .layer(from_fn_with_state(state.clone(), idempotency::idempotent))
        .layer(from_fn_with_state(state.clone(), auth::authenticate));
    Router::new()
        .nest("/api/v1", api)
        // Providers prove themselves by their signatures, not by our API keys.
        .merge(routes::hooks())
        .merge(routes::webchat().layer(from_fn_with_state(state.clone(), cors::webchat)))
        .merge(routes::ops())
        .method_not_allowed_fallback(routes::method_not_allowed)
        .fallback(routes::not_found)
        .with_state(state.clone())
        .merge(more)
        .layer(from_fn(edge::refuse_control_paths))
        .layer(from_fn_with_state(state.clone(), edge::identify_client))
        .layer(from_fn_with_state(state.clone(), observe::observe))
        .layer(DefaultBodyLimit::max(state.config.body_limit))
}
