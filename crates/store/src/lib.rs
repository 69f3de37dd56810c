//! Omnihub's storage: every domain's state in SQLite or PostgreSQL, behind one [`Store`].
//!
//! Each write is one transaction that also appends its events to the event log (the
//! transactional outbox), so the log never misses a change and never shows one that was
//! rolled back.

mod access;
mod catalog;
mod conversations;
mod customers;
// The drivers and the SQL interface stay inside; tests that must reach past the use cases
// (to plant a stale row, say) turn on `test-support`.
#[cfg(feature = "test-support")]
pub mod db;
#[cfg(not(feature = "test-support"))]
mod db;
mod inventory;
mod orders;
mod reports;
mod webhooks;

use std::collections::BTreeSet;
use std::sync::Arc;

use omnihub_domain::customers::Region;
use omnihub_domain::destinations::Destinations;
use omnihub_domain::events::NewEvent;
use omnihub_domain::orders::PaymentRules;
use omnihub_domain::{Clock, Invalid, Timestamp};
use tokio::sync::watch;

pub use access::{ApiKey, Claim, KEYS_TRUSTED_FOR, LogIn, NewApiKey, NewSession, SignedIn, User};
use catalog::cache::CatalogCache;
pub use conversations::{ConversationFilter, Received, StoredMessage, WebchatSession};
pub use customers::{Holder, Resolution};
#[cfg(feature = "test-support")]
pub use customers::{add_loyalty_points_in, record_spend_in, resolve_customer_in};
pub use db::Page;
use db::Sql;
use db::events::LogCommits;
pub use db::migrate::run as migrate;
pub use db::sealed::{BadSecretKey, SecretKey};
use db::writer::{BoxFuture, Undo, Writer};
pub use db::{Backend, Db};
pub use inventory::{Discrepancy, LevelFilter};
use inventory::{KnownStock, StockView};
pub use orders::{ExternalLine, ExternalOrder, OrderSearch, OrderSummary};
pub use orders::{FulfillmentDraft, OrderFilter};
pub use reports::ChannelSales;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("stale version: the current one is {current}")]
    VersionMismatch { current: i64 },
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// Some lines cannot be served; each short line is a field error.
    #[error("insufficient stock")]
    InsufficientStock(Vec<omnihub_domain::FieldError>),
    /// The stock a write planned with was taken by another before it could be held; the write
    /// was undone, and planning again may succeed.
    #[error("the stock changed while it was being held")]
    StockMoved,
    /// Too many of something at once (unpaid orders of one buyer).
    #[error("{0}")]
    RateLimited(String),
    /// The channel's reply window is closed: only a template may go out.
    #[error("{0}")]
    WindowClosed(String),
    /// The database could not take the write (it failed to commit, or the writer stopped).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Sqlite(rusqlite::Error),
    #[error("database: {}", with_cause(.0))]
    Postgres(#[from] tokio_postgres::Error),
}

/// tokio-postgres says only "db error" or "error connecting to server"; what PostgreSQL or the
/// network said is the error's cause.
fn with_cause(error: &tokio_postgres::Error) -> String {
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
        match error.sqlite_error_code() {
            // Another process held the database for longer than the busy timeout.
            Some(DatabaseBusy | DatabaseLocked) => Error::Unavailable(format!("the database is busy: {error}")),
            _ => Error::Sqlite(error),
        }
    }
}

impl Error {
    fn is_unique_violation(&self) -> bool {
        match self {
            Error::Postgres(e) => e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
            Error::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ),
            _ => false,
        }
    }
}

/// How often a write that takes stock is planned again before it gives up.
const TAKE_STOCK_ATTEMPTS: usize = 8;

/// The hub's state, shared by every request and worker of a server process.
#[derive(Clone)]
pub struct Store {
    db: Db,
    clock: Arc<dyn Clock>,
    /// The `seq` of the newest event this process committed and has on disk (or heard another
    /// process did), so live readers wake at once and the stock view knows how far it must
    /// have caught up.
    log_commits: Arc<LogCommits>,
    /// Where phone numbers written without a country code are read.
    phone_region: Region,
    /// How long storefronts' orders wait for their payment.
    payment_rules: PaymentRules,
    /// Which servers the URLs given to the hub (webhook endpoints, inboxes) may name.
    destinations: Destinations,
    /// SQLite's group-commit writer; PostgreSQL has none.
    writer: Option<Writer>,
    known_keys: Arc<access::KnownKeys>,
    /// What every channel may sell, kept in memory from the log.
    stock_view: Arc<StockView>,
    catalog_cache: Arc<CatalogCache>,
    recent_carts: Arc<orders::RecentCarts>,
    /// Seals the credentials of messaging channels at rest.
    secret_key: Arc<SecretKey>,
    /// Sign-in attempts checked against a password hash (see [`Store::password_checks`]).
    password_checks: Arc<std::sync::atomic::AtomicU64>,
}

impl Store {
    /// The store of a database. On SQLite this starts the group-commit writer's thread, which
    /// fails only when the system refuses a thread.
    pub fn new(db: Db, clock: Arc<dyn Clock>) -> std::io::Result<Store> {
        let stock_view = Arc::new(StockView::default());
        let catalog_cache = Arc::new(CatalogCache::default());
        let log_commits = Arc::new(LogCommits::new(vec![stock_view.clone(), catalog_cache.clone()]));
        let writer = match db.backend() {
            Backend::Sqlite => Some(Writer::start(db.clone(), log_commits.clone())?),
            Backend::Postgres => None,
        };
        Ok(Store {
            db,
            clock,
            log_commits,
            phone_region: Region::DE,
            payment_rules: PaymentRules::default(),
            destinations: Destinations::PublicOnly,
            writer,
            known_keys: Default::default(),
            stock_view,
            catalog_cache,
            recent_carts: Default::default(),
            // Until the configured key is given, a key of this process alone.
            secret_key: Arc::new(SecretKey::generate()),
            password_checks: Default::default(),
        })
    }

    /// Runs `job` in a write transaction and commits it: on SQLite together with whatever other
    /// writes are waiting (group commit), on PostgreSQL alone. The answer comes after the
    /// commit. The job must not start transactions of its own.
    pub(crate) async fn write<T, F>(&self, job: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut db::Tx) -> BoxFuture<'t, Result<T, Error>> + Send + 'static,
    {
        self.write_undone_by(Undo::Savepoint, job).await
    }

    /// [`Store::write`] for a job that changes rows with one statement at most, which needs no
    /// savepoint in a group commit: SQLite undoes a failing statement by itself. Should the job
    /// fail after its statement changed rows, its whole group fails instead.
    pub(crate) async fn write_one_statement<T, F>(&self, job: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut db::Tx) -> BoxFuture<'t, Result<T, Error>> + Send + 'static,
    {
        self.write_undone_by(Undo::Statement, job).await
    }

    /// A write of one statement, ending in `RETURNING`, whose one event is known before it runs
    /// (a new row's, say); the event is logged when the statement returns a row, which this
    /// answers. On PostgreSQL both go in one statement outside any transaction: one round trip
    /// instead of four (begin, write, log, commit). On SQLite it is a one-statement job of the
    /// group commit.
    pub(crate) async fn write_announced(
        &self,
        statement: Sql,
        now: Timestamp,
        event: NewEvent,
    ) -> Result<Option<db::Row>, Error> {
        if self.writer.is_none() {
            return self.write_announced_on_postgres(statement, None, now, event).await;
        }
        self.write_one_statement(move |tx| {
            Box::pin(async move {
                let row = tx.fetch_optional(statement).await?;
                if row.is_some() {
                    db::events::append(tx, now, event);
                }
                Ok(row)
            })
        })
        .await
    }

    /// [`Store::write_announced`] on PostgreSQL, with `then` (a write of rows that hang off the
    /// written one, which it takes `FROM written`) inside the same statement.
    pub(crate) async fn write_announced_on_postgres(
        &self,
        statement: Sql,
        then: Option<Sql>,
        now: Timestamp,
        event: NewEvent,
    ) -> Result<Option<db::Row>, Error> {
        let kind = event.kind;
        let followed = self.log_commits.is_followed(kind).then(|| event.data.clone());
        let logged = db::events::with_logged_event(statement, then, now, event);
        let Some(row) = self.db.fetch_optional(logged).await? else {
            return Ok(None);
        };
        let seq = row.int("logged_seq")?;
        let followed = followed
            .map(|data| db::events::Logged { seq, kind, data })
            .into_iter()
            .collect();
        self.db.flushed().await?;
        let appended = db::events::Appended {
            last_seq: seq,
            followed,
        };
        self.log_commits.note_own(&appended);
        Ok(Some(row))
    }

    async fn write_undone_by<T, F>(&self, undo: Undo, job: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut db::Tx) -> BoxFuture<'t, Result<T, Error>> + Send + 'static,
    {
        let Some(writer) = &self.writer else {
            let mut tx = self.db.begin().await?;
            let value = job(&mut tx).await?;
            self.commit(tx).await?;
            return Ok(value);
        };
        let value = writer.submit(db::writer::erase(job), undo).await?;
        value
            .downcast::<T>()
            .map(|value| *value)
            .map_err(|_| Error::Corrupt("a write answered with the wrong type".into()))
    }

    /// Runs a write that takes stock of `skus`, planning it again (a fresh job from `job`) while
    /// the stock it planned with is taken by others first ([`Error::StockMoved`]); `what` names
    /// the write in the conflict it gives up with. The first plan is made with what the stock
    /// view knows, if it is current (two reads fewer); the others with the database.
    pub(crate) async fn write_taking_stock<T, F>(
        &self,
        what: &str,
        skus: &BTreeSet<String>,
        job: impl Fn(Option<KnownStock>) -> F,
    ) -> Result<T, Error>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut db::Tx) -> BoxFuture<'t, Result<T, Error>> + Send + 'static,
    {
        for attempt in 0..TAKE_STOCK_ATTEMPTS {
            let known = if attempt == 0 { self.known_stock(skus) } else { None };
            match self.write(job(known)).await {
                Err(Error::StockMoved) => continue,
                done => return done,
            }
        }
        Err(Error::Conflict(format!("the stock changed too fast to {what}; retry")))
    }

    /// Reads phone numbers without a country code as numbers of `region` (default DE).
    pub fn with_phone_region(self, region: Region) -> Store {
        Store {
            phone_region: region,
            ..self
        }
    }

    /// Seals and opens stored channel credentials with `key`.
    pub fn with_secret_key(self, key: SecretKey) -> Store {
        Store {
            secret_key: Arc::new(key),
            ..self
        }
    }

    pub fn phone_region(&self) -> Region {
        self.phone_region
    }

    /// How long storefronts' unpaid orders hold their stock, and how many one e-mail may have.
    pub fn with_payment_rules(self, rules: PaymentRules) -> Store {
        Store {
            payment_rules: rules,
            ..self
        }
    }

    /// Lets the URLs given to the hub name private destinations too (local development).
    pub fn with_destinations(self, destinations: Destinations) -> Store {
        Store { destinations, ..self }
    }

    pub fn destinations(&self) -> Destinations {
        self.destinations
    }

    #[cfg(feature = "test-support")]
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Closes the database's connections (at shutdown).
    pub async fn close(&self) {
        self.db.close().await;
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Wakes when this process commits new events (other processes are seen by polling).
    pub fn watch_log(&self) -> watch::Receiver<u64> {
        self.log_commits.any.subscribe()
    }

    /// Wakes the live readers of the log as a commit here would: another process has told this
    /// one (over NATS) that it committed the event `seq` of `kind`, and every one before it.
    pub fn notify_log(&self, seq: i64, kind: &str) {
        self.log_commits.note_heard(seq, kind);
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        self.db.fetch_optional(db::sql("SELECT 1 AS one")).await.is_ok()
    }

    async fn commit(&self, tx: db::Tx) -> Result<(), Error> {
        let appended = db::events::commit(tx, &self.log_commits).await?;
        if let Some(appended) = appended {
            self.log_commits.note_own(&appended);
        }
        Ok(())
    }
}
