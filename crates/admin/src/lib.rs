//! The admin web app at `/admin`: where owners, managers, agents and store staff work all day.
//!
//! Pages are rendered on the server (askama templates) and work without JavaScript; a small
//! script only refreshes lists live from the event log. Every asset is compiled into the
//! binary, so the app works on a store's network with no internet. The app knows no SQL: it
//! reads and changes everything through the [`Store`], like the API does, and every page and
//! action checks the signed-in person's role first.

mod assets;
mod catalog;
mod chart;
mod customers;
mod dashboard;
mod desk;
mod forms;
mod inbox;
mod inventory;
mod live;
mod names;
mod orders;
mod page;
mod pickup_code;
mod session;
mod settings;
mod show;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::Response;
use axum::routing::{get, post};
use omnihub_domain::conversations::courier::Courier;
use omnihub_store::Store;
use tokio::sync::watch;

/// What the admin app needs from the server it runs in.
pub struct AdminConfig {
    /// Where the server is reached from outside: providers' webhooks are registered under it.
    pub public_url: String,
    /// Session cookies are marked `Secure` (sent over HTTPS only) when the public URL is https.
    pub secure_cookies: bool,
    /// Turns true when the server shuts down, so that live streams end.
    pub shutdown: watch::Receiver<bool>,
    /// Takes agents' replies to the providers, as the API's replies go.
    pub courier: Arc<dyn Courier>,
}

/// Shared by every admin request.
#[derive(Clone)]
struct Admin {
    store: Store,
    public_url: String,
    secure_cookies: bool,
    shutdown: watch::Receiver<bool>,
    courier: Arc<dyn Courier>,
}

/// Every route of the admin app, under `/admin`.
pub fn router(store: Store, config: AdminConfig) -> Router {
    let admin = Admin {
        store,
        public_url: config.public_url,
        secure_cookies: config.secure_cookies,
        shutdown: config.shutdown,
        courier: config.courier,
    };
    let signed_in = Router::new()
        .route("/admin", get(session::home))
        .route("/admin/logout", post(session::log_out))
        .route("/admin/live", get(live::stream))
        .merge(dashboard::routes())
        .merge(inbox::routes())
        .merge(orders::routes())
        .merge(desk::routes())
        .merge(inventory::routes())
        .merge(catalog::routes())
        .merge(customers::routes())
        .merge(settings::routes())
        .route("/admin/{*rest}", get(page::not_found))
        .layer(from_fn_with_state(admin.clone(), session::require_session));
    Router::new()
        .route("/admin/login", get(session::login_page).post(session::log_in))
        .route("/admin/assets/{name}", get(assets::serve))
        .merge(signed_in)
        .layer(map_response(security_headers))
        .with_state(admin)
}

/// What browsers are told about every admin page: scripts and styles only from the app's own
/// files (nothing inline, so an injected `<script>` or `onclick` does not run), never framed
/// by another site, no address sent to other sites, no content type guessed.
async fn security_headers(mut response: Response) -> Response {
    const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                       frame-ancestors 'none'";
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}
