//! PostgreSQL's connections, driven by tokio-postgres.
//!
//! Every statement is a round trip, and on a busy machine a round trip costs both ends more
//! than most statements do. tokio-postgres sends requests without waiting for the answers to
//! the ones before (pipelining), so a transaction's `BEGIN` goes out with its first statement
//! and its `COMMIT` with its last: a checkout's locks are let go one round trip sooner.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use futures_util::TryStreamExt;
use futures_util::future::join;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Row, Statement};

use super::{Arg, Sql};
use crate::Error;

/// At most this many statements are kept prepared per connection; past it the cache starts
/// again (only texts built from many row counts ever get near it).
const STATEMENT_CACHE: usize = 512;

/// A pool of connections to one database.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
}

/// One connection, with the statements it has prepared.
struct Connection {
    client: Arc<Client>,
    statements: HashMap<String, Statement>,
    in_transaction: bool,
}

impl Pool {
    /// A pool of at most `size` connections to `url`, each started with `options` (PostgreSQL's
    /// `-c name=value`); one connection is opened at once, so a wrong URL fails here.
    pub(crate) async fn connect(url: &str, options: &str, size: u32, acquire_timeout: Duration) -> Result<Pool, Error> {
        let mut config = Config::from_str(url)?;
        // After any the URL names, so ours win.
        let options = match config.get_options() {
            Some(named) if !options.is_empty() => format!("{named} {options}"),
            Some(named) => named.to_owned(),
            None => options.to_owned(),
        };
        config.options(options);
        let pool = Pool {
            inner: Arc::new(Inner {
                config,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(size.max(1) as usize)),
                acquire_timeout,
            }),
        };
        let first = pool.acquire().await?;
        drop(first);
        Ok(pool)
    }

    /// A connection of the pool, waiting for one to come free if all are taken.
    pub(crate) async fn acquire(&self) -> Result<Pooled, Error> {
        let inner = &self.inner;
        let permit = tokio::time::timeout(inner.acquire_timeout, inner.permits.clone().acquire_owned())
            .await
            .map_err(|_| Error::Unavailable("no database connection came free in time".into()))?
            .map_err(|_| Error::Unavailable("the database pool is closed".into()))?;
        let idle = self.take_idle();
        let connection = match idle {
            Some(connection) => connection,
            None => self.open().await?,
        };
        Ok(Pooled {
            connection: Some(connection),
            pool: self.clone(),
            permit: Some(permit),
        })
    }

    fn take_idle(&self) -> Option<Connection> {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while let Some(connection) = idle.pop() {
            if !connection.client.is_closed() {
                return Some(connection);
            }
        }
        None
    }

    async fn open(&self) -> Result<Connection, Error> {
        let (client, connection) = self.inner.config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "a database connection ended");
            }
        });
        Ok(Connection {
            client: Arc::new(client),
            statements: HashMap::new(),
            in_transaction: false,
        })
    }

    fn put_back(&self, connection: Connection) {
        if connection.client.is_closed() || connection.in_transaction || self.inner.permits.is_closed() {
            return;
        }
        let mut idle = self.inner.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        idle.push(connection);
    }

    /// Closes the idle connections and lets no new one be taken.
    pub(crate) fn close(&self) {
        self.inner.permits.close();
        self.inner
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
    }
}

/// A connection taken from the pool; it goes back when dropped, a transaction left open rolled
/// back first (so its locks are let go at once, not when the connection is next used).
pub(crate) struct Pooled {
    connection: Option<Connection>,
    pool: Pool,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let (Some(mut connection), Some(permit)) = (self.connection.take(), self.permit.take()) else {
            return;
        };
        if !connection.in_transaction {
            self.pool.put_back(connection);
            return;
        }
        let pool = self.pool.clone();
        // Without a runtime the connection is closed instead, which rolls back as well.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if connection.client.batch_execute("ROLLBACK").await.is_ok() {
                    connection.in_transaction = false;
                    pool.put_back(connection);
                }
                drop(permit);
            });
        }
    }
}

impl Pooled {
    fn connection(&mut self) -> &mut Connection {
        self.connection
            .as_mut()
            .expect("a pooled connection is there until dropped")
    }

    /// Runs a statement on its own (it commits by itself).
    pub(crate) async fn run(&mut self, sql: Sql) -> Result<Ran, Error> {
        let connection = self.connection();
        let statement = connection.prepared(&sql).await?;
        Ok(run(&connection.client, &statement, &sql.args).await?)
    }

    /// Runs a statement of a transaction; the transaction's `BEGIN` goes out with its first.
    pub(crate) async fn run_in_transaction(&mut self, sql: Sql) -> Result<Ran, Error> {
        self.send_in_transaction(sql).await?.answer().await
    }

    /// Sends a statement of a transaction (its `BEGIN` with the first) without waiting for the
    /// answer: statements sent after it go out at once, behind it.
    pub(crate) async fn send_in_transaction(&mut self, sql: Sql) -> Result<Sent, Error> {
        let connection = self.connection();
        let statement = connection.prepared(&sql).await?;
        let client = connection.client.clone();
        let begin = !std::mem::replace(&mut connection.in_transaction, true);
        let mut answer: Pin<Box<Answer>> = Box::pin(async move {
            if !begin {
                return run(&client, &statement, &sql.args).await;
            }
            // Polled in this order: `BEGIN` goes out first, the statement right behind it.
            let (begun, ran) = join(client.batch_execute("BEGIN"), run(&client, &statement, &sql.args)).await;
            begun?;
            ran
        });
        // tokio-postgres sends a request the first time its future is polled.
        match std::future::poll_fn(|cx| Poll::Ready(answer.as_mut().poll(cx))).await {
            Poll::Ready(answered) => Ok(Sent(Box::pin(std::future::ready(answered)))),
            Poll::Pending => Ok(Sent(answer)),
        }
    }

    /// Runs the transaction's last statement, if any, and commits: the `COMMIT` goes out with
    /// it. A transaction that ran nothing has nothing to commit; one whose only statement is
    /// `last` runs it on its own, which commits it.
    pub(crate) async fn commit_with(&mut self, last: Option<Sql>) -> Result<Ran, Error> {
        let connection = self.connection();
        let last = match (last, connection.in_transaction) {
            (None, false) => return Ok(Ran::default()),
            (None, true) => {
                connection.client.batch_execute("COMMIT").await?;
                connection.in_transaction = false;
                return Ok(Ran::default());
            }
            (Some(last), false) => return self.run(last).await,
            (Some(last), true) => last,
        };
        let statement = connection.prepared(&last).await?;
        let (ran, committed) = join(
            run(&connection.client, &statement, &last.args),
            connection.client.batch_execute("COMMIT"),
        )
        .await;
        // A failed statement turns the `COMMIT` into a rollback: either way it is over.
        connection.in_transaction = false;
        let ran = ran?;
        committed?;
        Ok(ran)
    }

    /// Runs a script of several statements (the migrations), in the transaction.
    pub(crate) async fn execute_script(&mut self, script: &str) -> Result<(), Error> {
        let connection = self.connection();
        if !connection.in_transaction {
            connection.client.batch_execute("BEGIN").await?;
            connection.in_transaction = true;
        }
        Ok(connection.client.batch_execute(script).await?)
    }
}

impl Connection {
    /// The statement prepared on this connection, typed by the values bound to it.
    async fn prepared(&mut self, sql: &Sql) -> Result<Statement, Error> {
        let text = sql.text();
        let types: Vec<Type> = sql.args.iter().map(type_of).collect();
        if let Some(statement) = self.statements.get(text)
            && statement.params() == types.as_slice()
        {
            return Ok(statement.clone());
        }
        tracing::trace!(statement = text, "prepare");
        let statement = self.client.prepare_typed(text, &types).await?;
        if self.statements.len() >= STATEMENT_CACHE {
            self.statements.clear();
        }
        self.statements.insert(text.to_owned(), statement.clone());
        Ok(statement)
    }
}

type Answer = dyn Future<Output = Result<Ran, tokio_postgres::Error>> + Send;

/// A statement sent, its answer not read yet.
pub(crate) struct Sent(Pin<Box<Answer>>);

impl Sent {
    pub(crate) async fn answer(self) -> Result<Ran, Error> {
        Ok(self.0.await?)
    }
}

/// What a statement answered: its rows, and how many rows it changed.
#[derive(Default)]
pub(crate) struct Ran {
    pub(crate) rows: Vec<Row>,
    pub(crate) changed: u64,
}

async fn run(client: &Client, statement: &Statement, args: &[Arg]) -> Result<Ran, tokio_postgres::Error> {
    let stream = client.query_raw(statement, params(args)).await?;
    let mut stream = std::pin::pin!(stream);
    let mut rows = Vec::new();
    while let Some(row) = stream.try_next().await? {
        rows.push(row);
    }
    let changed = stream.rows_affected().unwrap_or(0);
    Ok(Ran { rows, changed })
}

fn type_of(arg: &Arg) -> Type {
    match arg {
        Arg::Int(_) => Type::INT8,
        Arg::Text(_) => Type::TEXT,
        Arg::Bool(_) => Type::BOOL,
        Arg::Float(_) => Type::FLOAT8,
    }
}

fn params(args: &[Arg]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|arg| -> &(dyn ToSql + Sync) {
            match arg {
                Arg::Int(v) => v,
                Arg::Text(v) => v,
                Arg::Bool(v) => v,
                Arg::Float(v) => v,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::db::{Db, sql_built};

    /// The database named by `OMNIHUB_TEST_POSTGRES_URL`, or `None` (the test says it was
    /// skipped) when none is set or reachable outside CI; in CI that fails the test.
    async fn test_db() -> Option<Db> {
        let in_ci = std::env::var_os("CI").is_some();
        let Ok(url) = std::env::var("OMNIHUB_TEST_POSTGRES_URL") else {
            assert!(!in_ci, "OMNIHUB_TEST_POSTGRES_URL must be set in CI");
            eprintln!("skipped: OMNIHUB_TEST_POSTGRES_URL is not set");
            return None;
        };
        match Db::connect(&url, Some(2)).await {
            Ok(db) => Some(db),
            Err(error) => {
                assert!(
                    !in_ci,
                    "PostgreSQL at OMNIHUB_TEST_POSTGRES_URL is unreachable: {error}"
                );
                eprintln!("skipped: PostgreSQL is unreachable: {error}");
                None
            }
        }
    }

    #[tokio::test]
    async fn a_transaction_left_unfinished_writes_nothing_and_lets_its_locks_go_at_once() {
        let Some(db) = test_db().await else { return };
        let table = format!("pipelining_{}", ulid::Ulid::new().to_string().to_lowercase());
        let statement = |text: &str| sql_built(text.replace("{table}", &table));
        db.fetch_all(statement(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)",
        ))
        .await
        .unwrap();
        db.fetch_all(statement("INSERT INTO {table} (id, n) VALUES (1, 0)"))
            .await
            .unwrap();

        let mut unfinished = db.begin().await.unwrap();
        let changed = unfinished
            .execute(statement("UPDATE {table} SET n = n + 1 WHERE id = 1"))
            .await
            .unwrap();
        assert_eq!(changed, 1);
        drop(unfinished);

        // The row is free at once (the other connection of the pool would wait for its lock).
        let mut next = db.begin().await.unwrap();
        let took = tokio::time::timeout(
            Duration::from_secs(5),
            next.execute(statement("UPDATE {table} SET n = n + 10 WHERE id = 1")),
        )
        .await;
        assert_eq!(took.expect("the row's lock was let go").unwrap(), 1);
        let read = next
            .commit_with(Some(statement("SELECT n FROM {table} WHERE id = 1")))
            .await
            .unwrap();
        assert_eq!(read[0].int("n").unwrap(), 10, "only the committed change stays");

        // A last statement that fails turns the commit that goes with it into a rollback.
        let mut failing = db.begin().await.unwrap();
        failing
            .execute(statement("UPDATE {table} SET n = 99 WHERE id = 1"))
            .await
            .unwrap();
        let duplicate = failing
            .commit_with(Some(statement("INSERT INTO {table} (id, n) VALUES (1, 0)")))
            .await;
        assert!(matches!(duplicate, Err(error) if error.is_unique_violation()));
        let rows = db
            .fetch_all(statement("SELECT n FROM {table} WHERE id = 1"))
            .await
            .unwrap();
        assert_eq!(rows[0].int("n").unwrap(), 10);

        db.fetch_all(statement("DROP TABLE {table}")).await.unwrap();
    }
}
