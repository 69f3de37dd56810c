//! The Omnihub server: start-up, the background workers and the operations commands. The
//! binary (`main.rs`) parses the command line; tests start the same [`Application`].

pub mod config;
pub mod demo;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;

use omnihub_domain::Clock;
use omnihub_domain::access::Scope;
use omnihub_domain::clock::SystemClock;
use omnihub_domain::conversations::courier::Courier;
use omnihub_http::{AppState, HttpConfig, Metrics, Shared};
use omnihub_providers::egress::Egress;
use omnihub_providers::messaging::Providers;
use omnihub_providers::{nats, webhooks};
use omnihub_store::{Db, SecretKey, Store};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::Settings;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Opens the configured database and applies pending migrations.
pub async fn open_store(settings: &Settings, clock: Arc<dyn Clock>) -> Result<Store, BoxError> {
    let phone_region = settings.phone_region()?;
    let db = Db::connect(&settings.database_url()?, settings.db_max_connections).await?;
    let applied = omnihub_store::migrate(&db).await?;
    if applied > 0 {
        tracing::info!(applied, "database schema is up to date");
    }
    let secret_key = settings.secret_key()?.unwrap_or_else(|| {
        tracing::warn!(
            "no secret key set (--secret-key, OMNIHUB_SECRET_KEY): channel credentials and webhook secrets are \
             sealed with a key of this process only, unreadable after a restart and by other nodes"
        );
        SecretKey::generate()
    });
    Ok(Store::new(db, clock)?
        .with_phone_region(phone_region)
        .with_payment_rules(settings.payment_rules())
        .with_destinations(settings.destinations())
        .with_secret_key(secret_key))
}

/// Makes sure an owner key exists. Answers a token to print when one was generated.
pub async fn bootstrap_owner_key(store: &Store, bootstrap: Option<&str>) -> Result<Option<String>, BoxError> {
    let owner = [Scope::Admin.as_str().to_owned()];
    if let Some(token) = bootstrap {
        if !token.starts_with("sk_") || token.len() < 20 {
            return Err("OMNIHUB_BOOTSTRAP_KEY must start with sk_ and be at least 20 characters".into());
        }
        if !store.is_api_key(token).await? {
            store.create_api_key("owner", token, &owner, None, &[]).await?;
        }
        return Ok(None);
    }
    if store.has_api_keys().await? {
        return Ok(None);
    }
    Ok(Some(store.generate_api_key("owner", &owner, None, &[]).await?.token))
}

/// Listens on `address` with room for a thousand connections waiting to be accepted: a flash
/// sale opens them all at once, and the system's default of 128 would turn buyers away.
fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

/// A running server: its address, its state, and a handle to stop it.
pub struct Application {
    pub address: SocketAddr,
    pub store: Store,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
}

impl Application {
    /// Binds the listener and starts serving in the background.
    pub async fn start(settings: &Settings, store: Store) -> Result<Application, BoxError> {
        let listener = listen(settings.listen())?;
        let address = listener.local_addr()?;
        let (shutdown, stopping) = watch::channel(false);
        // `main` installs it too; tests start the application without `main`. Installing
        // again fails harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let egress = Egress::new(settings.destinations(), settings.extra_roots()?)?;
        let courier: Arc<dyn Courier> = Arc::new(Providers::new(egress.clone())?);
        let state = AppState::new(Shared {
            store: store.clone(),
            courier: courier.clone(),
            config: Arc::new(HttpConfig {
                body_limit: settings.body_limit(),
                public_url: settings.public_url(address),
                trusted_proxies: settings.trusted_proxies.clone().unwrap_or_default(),
            }),
            metrics: Arc::new(Metrics::default()),
            shutdown: stopping.clone(),
        });
        // The admin app beside the API: the same store, and its cookies only over HTTPS when
        // the public address is HTTPS.
        let admin = omnihub_admin::router(
            store.clone(),
            omnihub_admin::AdminConfig {
                public_url: state.config.public_url.clone(),
                secure_cookies: state.config.public_url.starts_with("https://"),
                shutdown: stopping.clone(),
                courier,
            },
        );
        let app = omnihub_http::router_with(state, admin);
        tokio::spawn(workers::expire_reservations(store.clone(), stopping.clone()));
        let webhooks = webhooks::Sender::new(&egress, settings.webhook_timeout())?;
        tokio::spawn(workers::webhooks::deliver(store.clone(), webhooks, stopping.clone()));
        if let Some(url) = &settings.nats_url {
            let nats = nats::connect(url).await?;
            tokio::spawn(workers::nats::relay(store.clone(), nats, stopping.clone()));
        }
        let mut stop = stopping;
        let server = tokio::spawn(async move {
            // The peer's address is the client's, or names the proxy that forwards the client's.
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        });
        Ok(Application {
            address,
            store,
            shutdown,
            server,
        })
    }

    /// Stops accepting requests, lets those in flight finish, then returns.
    pub async fn stop(self) -> Result<(), BoxError> {
        let _ = self.shutdown.send(true);
        self.server.await??;
        self.store.close().await;
        Ok(())
    }

    /// Serves until SIGTERM or Ctrl-C, then stops gracefully.
    pub async fn run_until_signal(self) -> Result<(), BoxError> {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.stop().await
    }
}

/// The system clock, for the server.
pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
