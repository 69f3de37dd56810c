//! The two database backends behind one small interface.
//!
//! Everything above this module writes its SQL once (`$1` placeholders, `RETURNING`,
//! `ON CONFLICT`), binds [`Arg`]s and reads typed columns from a [`Row`]; this module hands it
//! to the one driver of whichever backend is configured: tokio-postgres for PostgreSQL (see
//! [`postgres`]), rusqlite for SQLite, whose reads go through a pool of read-only connections
//! (see [`readers`]) and writes through one write connection (see [`write_connection`]). The
//! backends are a closed set, so an enum dispatches to them.

pub(crate) mod events;
mod flush;
mod leases;
pub mod migrate;
mod paging;
mod postgres;
mod readers;
pub(crate) mod sealed;
mod sqlite;
mod write_connection;
pub(crate) mod writer;

use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::Error;
use flush::Flusher;
pub use paging::Page;
use readers::{Reader, Readers};
#[cfg(test)]
pub(crate) use sqlite::Scratch;
pub use sqlite::SqliteRow;
pub use write_connection::WriteConnection;
use write_connection::WriteTx;

/// A value bound to a `$n` placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(bool),
    Float(Option<f64>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl From<Option<f64>> for Arg {
    fn from(v: Option<f64>) -> Self {
        Arg::Float(v)
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_owned))
    }
}
impl From<Option<&String>> for Arg {
    fn from(v: Option<&String>) -> Self {
        Arg::Text(v.cloned())
    }
}

/// A statement and its arguments.
#[derive(Debug, Clone)]
pub struct Sql {
    text: Text,
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
enum Text {
    Static(&'static str),
    /// Built at run time, but only ever from fixed fragments and `$n` placeholders.
    Built(String),
}

/// Starts a statement; the text is shared by both backends.
pub fn sql(text: &'static str) -> Sql {
    Sql {
        text: Text::Static(text),
        args: Vec::new(),
    }
}

/// A statement whose text is assembled from fixed fragments, e.g. `IN ($2, $3, $4)` for a
/// list of values. Values themselves are always bound, never spliced in.
pub(crate) fn sql_built(text: String) -> Sql {
    Sql {
        text: Text::Built(text),
        args: Vec::new(),
    }
}

/// `$first, $first+1, …` for `count` values.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts of many rows, each of `width` values bound by `bind`: `{head} VALUES (…), (…)
/// {tail}`. A few rows go in one statement (every size up to 8 has its own text), more 64 at a
/// time in power-of-two sizes, so only a dozen texts per table are ever prepared.
pub(crate) fn row_inserts<T>(
    head: &str,
    width: usize,
    tail: &str,
    rows: impl ExactSizeIterator<Item = T>,
    bind: impl Fn(Sql, T) -> Sql,
) -> Vec<Sql> {
    let mut rows = rows.peekable();
    let mut inserts = Vec::new();
    while rows.peek().is_some() {
        let take = rows_per_insert(rows.len());
        let values = (0..take)
            .map(|row| format!("({})", placeholders(row * width + 1, width)))
            .collect::<Vec<_>>()
            .join(", ");
        let insert = sql_built(format!("{head} VALUES {values} {tail}"));
        inserts.push(rows.by_ref().take(take).fold(insert, &bind));
    }
    inserts
}

/// How many of `left` rows the next insert takes.
fn rows_per_insert(left: usize) -> usize {
    const EXACT_UP_TO: usize = 8;
    const MOST: usize = 64;
    if left <= EXACT_UP_TO {
        left
    } else {
        MOST.min(1 << left.ilog2())
    }
}

impl Sql {
    pub fn bind(mut self, value: impl Into<Arg>) -> Self {
        self.args.push(value.into());
        self
    }

    /// How many values are bound so far.
    pub(crate) fn arg_count(&self) -> usize {
        self.args.len()
    }

    /// The statement between fixed fragments (as a common table expression, say), with the
    /// same arguments.
    pub(crate) fn within(self, before: &str, after: &str) -> Sql {
        Sql {
            text: Text::Built(format!("{before}{}{after}", self.text())),
            args: self.args,
        }
    }

    /// This statement, then `between`, then `next` with its placeholders numbered on after
    /// this one's.
    pub(crate) fn then(self, between: &str, next: Sql) -> Sql {
        let text = format!("{}{between}{}", self.text(), renumbered(next.text(), self.args.len()));
        let mut args = self.args;
        args.extend(next.args);
        Sql {
            text: Text::Built(text),
            args,
        }
    }

    fn text(&self) -> &str {
        match &self.text {
            Text::Static(text) => text,
            Text::Built(text) => text.as_str(),
        }
    }

    /// This statement with `writes` run in it, as common table expressions ahead of it: one
    /// statement, so one round trip. The writes' placeholders are numbered on after its own.
    fn hosting(self, writes: Vec<Sql>) -> Sql {
        if writes.is_empty() {
            return self;
        }
        let rest = match self.text().strip_prefix("WITH ") {
            Some(ctes) => format!("), {ctes}"),
            None => format!(") {}", self.text()),
        };
        let head = Sql {
            text: Text::Static(""),
            args: self.args,
        };
        writes
            .into_iter()
            .enumerate()
            .fold(head, |hosted, (n, write)| {
                let between = if n == 0 {
                    "WITH deferred_0 AS (".to_owned()
                } else {
                    format!("), deferred_{n} AS (")
                };
                hosted.then(&between, write)
            })
            .within("", &rest)
    }
}

/// `text` with every `$n` placeholder outside quoted literals moved on by `by`.
fn renumbered(text: &str, by: usize) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        match c {
            '\'' => quoted = !quoted,
            '$' if !quoted => {
                let mut digits = String::new();
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    digits.push(d);
                }
                if let Ok(n) = digits.parse::<usize>() {
                    out.push_str(&(n + by).to_string());
                }
            }
            _ => {}
        }
    }
    out
}

/// A result row of either backend, read by column name.
pub enum Row {
    Sqlite(SqliteRow),
    Postgres(tokio_postgres::Row),
}

macro_rules! get {
    ($row:expr, $col:expr, $ty:ty) => {
        match $row {
            Row::Sqlite(r) => r.get::<$ty>($col),
            Row::Postgres(r) => r.try_get::<_, $ty>($col).map_err(Error::from),
        }
    };
}

impl Row {
    pub fn int(&self, col: &str) -> Result<i64, Error> {
        get!(self, col, i64)
    }
    pub fn opt_int(&self, col: &str) -> Result<Option<i64>, Error> {
        get!(self, col, Option<i64>)
    }
    pub fn text(&self, col: &str) -> Result<String, Error> {
        get!(self, col, String)
    }
    pub fn opt_text(&self, col: &str) -> Result<Option<String>, Error> {
        get!(self, col, Option<String>)
    }
    pub fn bool(&self, col: &str) -> Result<bool, Error> {
        get!(self, col, bool)
    }
    pub fn opt_float(&self, col: &str) -> Result<Option<f64>, Error> {
        get!(self, col, Option<f64>)
    }
    /// A column holding a JSON document as text.
    pub fn json<T: DeserializeOwned>(&self, col: &str) -> Result<T, Error> {
        let text = self.text(col)?;
        serde_json::from_str(&text).map_err(|e| Error::Corrupt(format!("{col}: {e}")))
    }
}

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool to one of the backends.
///
/// SQLite allows one writer at a time: writes go through a single connection (so they queue
/// for it instead of failing with `SQLITE_BUSY`) while reads use their own pool, and its
/// writes share their flushes to disk by group commit (`writer`). PostgreSQL's commits share
/// them through a flusher (see [`flush`]).
#[derive(Clone)]
pub enum Db {
    Sqlite { readers: Readers, writer: WriteConnection },
    Postgres { pool: postgres::Pool, flusher: Flusher },
}

/// Each PostgreSQL connection is a process on the database's cores, and writers wait on each
/// other's locks (a busy SKU's level, the event log): past a few per core, more connections
/// only queue inside the database, where waking the next costs a signal and a context switch,
/// instead of in our pool. Measured on 2 cores: 8 connections checked out 20 % more than 16.
/// At most 32, so that a few servers stay within PostgreSQL's default 100 connections.
fn postgres_connections() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
    (4 * cores).clamp(4, 32)
}

/// The file a `sqlite://path` URL names; `sqlite:path` and a bare path will do too.
fn sqlite_path(url: &str) -> Result<&Path, Error> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.contains('?') {
        return Err(Error::Unavailable(format!(
            "a SQLite URL names a file and takes no parameters: {url}"
        )));
    }
    Ok(Path::new(path))
}

impl Db {
    /// Opens `sqlite://path` or `postgres://…` with at most `max_connections` (a default for the
    /// backend when `None`).
    pub async fn connect(url: &str, max_connections: Option<u32>) -> Result<Db, Error> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let timeout = Duration::from_secs(10);
            let max_connections = max_connections.unwrap_or_else(postgres_connections);
            // Commits wait for a shared flush instead (see `flush`).
            let pool = postgres::Pool::connect(url, "-c synchronous_commit=off", max_connections, timeout).await?;
            let flusher = Flusher::start(postgres::Pool::connect(url, "", 1, timeout).await?);
            return Ok(Db::Postgres { pool, flusher });
        }
        let path = sqlite_path(url)?;
        let busy_timeout = Duration::from_secs(10);
        // Opened first: it creates the file the readers open.
        let writer = WriteConnection::open(path, busy_timeout)?;
        let size = max_connections.unwrap_or(16).max(2) as usize;
        let readers = Readers::open(path, busy_timeout, size)?;
        Ok(Db::Sqlite { readers, writer })
    }

    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres { .. } => Backend::Postgres,
        }
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx, Error> {
        let (inner, flusher) = match self {
            Db::Sqlite { writer, .. } => (TxInner::Written(writer.begin().await?), None),
            Db::Postgres { pool, flusher } => (TxInner::Postgres(pool.acquire().await?), Some(flusher.clone())),
        };
        Ok(Tx {
            inner,
            deferred: Vec::new(),
            events: Vec::new(),
            flusher,
        })
    }

    /// Starts a write transaction for a thread of its own, which may wait for the disk itself
    /// (the SQLite writer's; on PostgreSQL the same as [`Db::begin`]).
    pub(crate) async fn begin_in_place(&self) -> Result<Tx, Error> {
        let inner = match self {
            Db::Sqlite { writer, .. } => TxInner::Written(writer.begin_in_place().await?),
            Db::Postgres { .. } => return self.begin().await,
        };
        Ok(Tx {
            inner,
            deferred: Vec::new(),
            events: Vec::new(),
            flusher: None,
        })
    }

    /// Starts a read-only transaction: several reads that see one moment.
    pub async fn begin_read(&self) -> Result<Tx, Error> {
        let inner = match self {
            Db::Sqlite { readers, .. } => {
                let mut reader = readers.acquire().await?;
                reader.begin()?;
                TxInner::Read(reader)
            }
            Db::Postgres { pool, .. } => TxInner::Postgres(pool.acquire().await?),
        };
        Ok(Tx {
            inner,
            deferred: Vec::new(),
            events: Vec::new(),
            flusher: None,
        })
    }

    /// Waits until everything committed so far is on disk. SQLite's commits are on disk
    /// before anyone sees them.
    pub(crate) async fn flushed(&self) -> Result<(), Error> {
        match self {
            Db::Sqlite { .. } => Ok(()),
            Db::Postgres { flusher, .. } => flusher.flushed().await,
        }
    }

    pub async fn fetch_all(&self, sql: Sql) -> Result<Vec<Row>, Error> {
        Ok(match self {
            Db::Sqlite { readers, .. } => readers
                .acquire()
                .await?
                .fetch(sql, usize::MAX)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Db::Postgres { pool, .. } => pool
                .acquire()
                .await?
                .run(sql)
                .await?
                .rows
                .into_iter()
                .map(Row::Postgres)
                .collect(),
        })
    }

    /// Reads the few rows a key names (a cart and its lines, say): on SQLite on the calling
    /// thread, which is quicker for such reads than a hand-over to another (see [`readers`]).
    pub async fn fetch_by_key(&self, sql: Sql) -> Result<Vec<Row>, Error> {
        match self {
            Db::Sqlite { readers, .. } => {
                let rows = readers.acquire().await?.fetch_here(sql)?;
                Ok(rows.into_iter().map(Row::Sqlite).collect())
            }
            Db::Postgres { .. } => self.fetch_all(sql).await,
        }
    }

    pub async fn fetch_optional(&self, sql: Sql) -> Result<Option<Row>, Error> {
        Ok(match self {
            Db::Sqlite { readers, .. } => readers.acquire().await?.fetch(sql, 1).await?.pop().map(Row::Sqlite),
            Db::Postgres { .. } => self.fetch_all(sql).await?.into_iter().next(),
        })
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite { readers, writer } => {
                readers.close();
                writer.close().await;
            }
            Db::Postgres { pool, flusher } => {
                pool.close();
                flusher.close();
            }
        }
    }
}

enum TxInner {
    /// A read transaction on a SQLite read connection.
    Read(Reader),
    /// A connection of the pool; the transaction begins with its first statement.
    Postgres(postgres::Pooled),
    Written(WriteTx),
}

/// A statement sent by [`Tx::send`].
pub(crate) enum Sent {
    Postgres(postgres::Sent),
    Answered(Vec<Row>),
}

impl Sent {
    pub(crate) async fn rows(self) -> Result<Vec<Row>, Error> {
        match self {
            Sent::Postgres(sent) => Ok(sent.answer().await?.rows.into_iter().map(Row::Postgres).collect()),
            Sent::Answered(rows) => Ok(rows),
        }
    }
}

/// A write transaction. Dropped without [`Tx::commit`], it rolls back.
pub struct Tx {
    inner: TxInner,
    /// Writes waiting to go with the next statement, on PostgreSQL (see [`Tx::defer`]).
    deferred: Vec<Sql>,
    /// Events to append when the transaction commits.
    pub(crate) events: Vec<(omnihub_domain::Timestamp, omnihub_domain::events::NewEvent)>,
    /// What puts the commit on disk, on PostgreSQL; `None` for reads and on SQLite, whose
    /// commit waits for the disk itself.
    flusher: Option<Flusher>,
}

impl Tx {
    pub fn backend(&self) -> Backend {
        match self.inner {
            TxInner::Read(_) | TxInner::Written(_) => Backend::Sqlite,
            TxInner::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs a write whose outcome nobody waits for, the insert of new rows, say. On PostgreSQL,
    /// where every statement is a round trip, it goes with the transaction's next statement
    /// instead, inside it (see [`Sql::hosting`]): so it must not write a row that statement
    /// reads or writes, and its failure is that statement's. SQLite runs it at once.
    pub async fn defer(&mut self, sql: Sql) -> Result<(), Error> {
        if let TxInner::Postgres(_) = self.inner {
            debug_assert!(!sql.text().starts_with("WITH "), "a deferred write nests no WITH");
            self.deferred.push(sql);
            return Ok(());
        }
        self.execute(sql).await.map(drop)
    }

    /// `sql` carrying the writes deferred so far.
    fn with_deferred(&mut self, sql: Sql) -> Sql {
        sql.hosting(std::mem::take(&mut self.deferred))
    }

    /// Runs a statement; answers the number of rows it changed.
    pub async fn execute(&mut self, sql: Sql) -> Result<u64, Error> {
        let sql = self.with_deferred(sql);
        Ok(match &mut self.inner {
            TxInner::Read(reader) => {
                reader.fetch(sql, 0).await?;
                reader.changes()
            }
            TxInner::Postgres(tx) => tx.run_in_transaction(sql).await?.changed,
            TxInner::Written(tx) => tx.execute(sql)?,
        })
    }

    pub async fn fetch_all(&mut self, sql: Sql) -> Result<Vec<Row>, Error> {
        let sql = self.with_deferred(sql);
        Ok(match &mut self.inner {
            TxInner::Read(reader) => reader
                .fetch(sql, usize::MAX)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            TxInner::Postgres(tx) => tx
                .run_in_transaction(sql)
                .await?
                .rows
                .into_iter()
                .map(Row::Postgres)
                .collect(),
            TxInner::Written(tx) => tx.fetch_all(sql)?.into_iter().map(Row::Sqlite).collect(),
        })
    }

    /// Sends a statement without waiting for its rows, read later with [`Sent::rows`]: on
    /// PostgreSQL the transaction's next statements go out right behind it, in the same round
    /// trip. SQLite runs it at once. A statement that fails makes every later one in the
    /// transaction fail too, so read the rows of what was sent before trusting their errors.
    pub(crate) async fn send(&mut self, sql: Sql) -> Result<Sent, Error> {
        match &mut self.inner {
            TxInner::Postgres(tx) => {
                let sql = sql.hosting(std::mem::take(&mut self.deferred));
                Ok(Sent::Postgres(tx.send_in_transaction(sql).await?))
            }
            TxInner::Read(_) | TxInner::Written(_) => Ok(Sent::Answered(self.fetch_all(sql).await?)),
        }
    }

    pub async fn fetch_optional(&mut self, sql: Sql) -> Result<Option<Row>, Error> {
        let sql = self.with_deferred(sql);
        Ok(match &mut self.inner {
            TxInner::Read(reader) => reader.fetch(sql, 1).await?.pop().map(Row::Sqlite),
            TxInner::Postgres(tx) => tx
                .run_in_transaction(sql)
                .await?
                .rows
                .into_iter()
                .next()
                .map(Row::Postgres),
            TxInner::Written(tx) => tx.fetch_optional(sql)?.map(Row::Sqlite),
        })
    }

    /// Runs a script of several statements: the migrations compiled into the binary, never
    /// anything built from input.
    pub(crate) async fn execute_script(&mut self, script: String) -> Result<(), Error> {
        match &mut self.inner {
            TxInner::Read(reader) => reader.execute_script(script).await?,
            TxInner::Postgres(tx) => tx.execute_script(&script).await?,
            TxInner::Written(tx) => tx.execute_script(&script)?,
        }
        Ok(())
    }

    /// How many rows the write connection has changed since it opened (SQLite's group-commit
    /// writer tells by it whether a failed job changed any); 0 elsewhere.
    pub(crate) fn total_changes(&self) -> u64 {
        match &self.inner {
            TxInner::Written(tx) => tx.total_changes(),
            TxInner::Read(_) | TxInner::Postgres(_) => 0,
        }
    }

    /// Commits, and answers once the commit is on disk.
    pub async fn commit(self) -> Result<(), Error> {
        self.commit_with(None).await.map(drop)
    }

    /// Runs `last` as the transaction's last statement and commits; answers its rows once the
    /// commit is on disk. On PostgreSQL the `COMMIT` goes out with it, in one round trip.
    pub(crate) async fn commit_with(mut self, last: Option<Sql>) -> Result<Vec<Row>, Error> {
        let mut last = match (last, self.deferred.is_empty()) {
            (None, true) => None,
            (last, _) => Some(self.with_deferred(last.unwrap_or_else(|| sql("SELECT 1")))),
        };
        let mut rows = Vec::new();
        if !matches!(self.inner, TxInner::Postgres(_))
            && let Some(last) = last.take()
        {
            rows = self.fetch_all(last).await?;
        }
        match self.inner {
            TxInner::Read(mut reader) => reader.end()?,
            TxInner::Written(tx) => tx.commit().await?,
            TxInner::Postgres(mut tx) => {
                rows = tx
                    .commit_with(last)
                    .await?
                    .rows
                    .into_iter()
                    .map(Row::Postgres)
                    .collect();
            }
        }
        if let Some(flusher) = self.flusher {
            flusher.flushed().await?;
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[tokio::test]
    async fn a_postgres_server_that_cannot_be_reached_is_named_with_the_reason() {
        // Port 1 is closed on any machine the tests run on.
        let Err(error) = Db::connect("postgres://postgres@127.0.0.1:1/omnihub", Some(2)).await else {
            panic!("nothing listens on port 1")
        };
        let message = error.to_string();
        assert!(
            message.starts_with("database: error connecting to server: "),
            "{message}"
        );
        assert!(
            message.len() > "database: error connecting to server: ".len(),
            "{message}"
        );
    }

    #[test]
    fn a_few_rows_go_in_one_statement_many_in_a_dozen_sizes() {
        assert_eq!(
            (1..=8).map(rows_per_insert).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(rows_per_insert(9), 8);
        assert_eq!(rows_per_insert(100), 64);
        let sizes: BTreeSet<usize> = (1..=1000).map(rows_per_insert).collect();
        assert_eq!(sizes.len(), 11);
    }

    #[test]
    fn row_inserts_number_every_value_and_bind_every_row() {
        let inserts = row_inserts(
            "INSERT INTO t (a, b)",
            2,
            "RETURNING a",
            (0..11_i64).collect::<Vec<_>>().into_iter(),
            |insert, n| insert.bind(n).bind(n * 10),
        );
        let rows: Vec<usize> = inserts.iter().map(|insert| insert.args.len() / 2).collect();
        assert_eq!(rows, [8, 3]);
        let Text::Built(last) = &inserts[1].text else {
            panic!("a built text")
        };
        assert_eq!(
            last,
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), ($5, $6) RETURNING a"
        );
        assert_eq!(inserts[1].args[..2], [Arg::from(8), Arg::from(80)]);
        assert!(row_inserts("INSERT INTO t (a)", 1, "", Vec::<i64>::new().into_iter(), Sql::bind).is_empty());
    }

    #[test]
    fn deferred_writes_ride_ahead_of_a_statement_numbered_after_its_own_values() {
        let host = sql("SELECT * FROM t WHERE a = $1 AND b = '$1'").bind(1);
        let writes = vec![
            sql("INSERT INTO u (a, b) VALUES ($1, $2)").bind(2).bind(3),
            sql("INSERT INTO v (a) VALUES ($1)").bind(4),
        ];
        let hosted = host.hosting(writes);
        assert_eq!(
            hosted.text(),
            "WITH deferred_0 AS (INSERT INTO u (a, b) VALUES ($2, $3)), deferred_1 AS (INSERT INTO v (a) VALUES ($4)) \
             SELECT * FROM t WHERE a = $1 AND b = '$1'"
        );
        assert_eq!(hosted.args, [1, 2, 3, 4].map(Arg::from));
        let with = sql("WITH x AS (SELECT $1 AS a) SELECT a FROM x").bind(1);
        let hosted = with.hosting(vec![sql("DELETE FROM w WHERE id = $1").bind(9)]);
        assert_eq!(
            hosted.text(),
            "WITH deferred_0 AS (DELETE FROM w WHERE id = $2), x AS (SELECT $1 AS a) SELECT a FROM x"
        );
        assert_eq!(renumbered("$9, $10, $1x", 3), "$12, $13, $4x");
    }
}
