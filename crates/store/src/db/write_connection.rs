//! The SQLite write connection, whose statements run (`sqlite`) on the thread that writes: the
//! group-commit writer's, or the caller's for the few writes made outside it. Only what waits
//! for the disk (taking the write lock, the commit's fsync) moves off the async runtime's
//! threads.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::Sql;
use super::sqlite::{self, SqliteRow};
use crate::Error;

/// The database's one write connection; writers take turns.
#[derive(Clone)]
pub struct WriteConnection(Arc<Mutex<Connection>>);

impl WriteConnection {
    /// Opens (creating it if missing) the database file, with every acknowledged write on disk.
    pub(crate) fn open(path: &Path, busy_timeout: Duration) -> Result<WriteConnection, Error> {
        let connection = Connection::open_with_flags(path, OpenFlags::default())?;
        connection.busy_timeout(busy_timeout)?;
        connection.pragma_update(None, "journal_mode", "wal")?;
        connection.pragma_update(None, "synchronous", "full")?;
        connection.pragma_update(None, "foreign_keys", "on")?;
        // The group commit's savepoints keep their undo pages in memory, not in temp files.
        connection.pragma_update(None, "temp_store", "memory")?;
        connection.set_prepared_statement_cache_capacity(sqlite::STATEMENT_CACHE);
        Ok(WriteConnection(Arc::new(Mutex::new(connection))))
    }

    /// Waits for the connection and starts a write transaction on it.
    pub(crate) async fn begin(&self) -> Result<WriteTx, Error> {
        let tx = WriteTx {
            connection: Some(self.0.clone().lock_owned().await),
            waits_in_place: false,
        };
        // Waits (up to the busy timeout) for another process's write to end. Should the caller
        // give up meanwhile, the transaction is dropped there, and so rolled back.
        off_runtime(move || {
            tx.connection()?
                .execute_batch("BEGIN IMMEDIATE")
                .map(|()| tx)
                .map_err(Error::from)
        })
        .await
    }

    /// The same for a thread of its own (the group-commit writer's), which waits for the disk
    /// itself instead of handing each wait to another thread.
    pub(crate) async fn begin_in_place(&self) -> Result<WriteTx, Error> {
        let connection = self.0.clone().lock_owned().await;
        connection.execute_batch("BEGIN IMMEDIATE")?;
        Ok(WriteTx {
            connection: Some(connection),
            waits_in_place: true,
        })
    }

    /// Waits for the write under way to end.
    pub(crate) async fn close(&self) {
        drop(self.0.lock().await);
    }
}

/// Runs `step`, which may wait for the disk, on a thread made for blocking.
async fn off_runtime<T: Send + 'static>(step: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(step)
        .await
        .map_err(|_| Error::Unavailable("the database thread stopped".into()))?
}

/// A write transaction on the write connection; dropped without a commit, it rolls back.
pub(crate) struct WriteTx {
    /// `None` once committed.
    connection: Option<OwnedMutexGuard<Connection>>,
    /// The commit may wait for the disk on the calling thread.
    waits_in_place: bool,
}

impl WriteTx {
    fn connection(&self) -> Result<&Connection, Error> {
        self.connection
            .as_deref()
            .ok_or_else(|| Error::Unavailable("the transaction has ended".into()))
    }

    /// Runs a statement to its end; answers the number of rows it changed.
    pub(crate) fn execute(&mut self, sql: Sql) -> Result<u64, Error> {
        self.run(sql, usize::MAX)?;
        Ok(self.connection()?.changes())
    }

    pub(crate) fn fetch_all(&mut self, sql: Sql) -> Result<Vec<SqliteRow>, Error> {
        self.run(sql, usize::MAX)
    }

    pub(crate) fn fetch_optional(&mut self, sql: Sql) -> Result<Option<SqliteRow>, Error> {
        Ok(self.run(sql, 1)?.pop())
    }

    pub(crate) fn total_changes(&self) -> u64 {
        self.connection().map_or(0, Connection::total_changes)
    }

    pub(crate) fn execute_script(&mut self, script: &str) -> Result<(), Error> {
        Ok(self.connection()?.execute_batch(script)?)
    }

    fn run(&mut self, sql: Sql, limit: usize) -> Result<Vec<SqliteRow>, Error> {
        sqlite::run(self.connection()?, &sql, limit)
    }

    /// Commits, waiting for the disk off the async runtime's threads.
    pub(crate) async fn commit(mut self) -> Result<(), Error> {
        let Some(connection) = self.connection.take() else {
            return Err(Error::Unavailable("the transaction has ended".into()));
        };
        if self.waits_in_place {
            return commit(&connection);
        }
        off_runtime(move || commit(&connection)).await
    }
}

fn commit(connection: &Connection) -> Result<(), Error> {
    let committed = connection.execute_batch("COMMIT");
    if committed.is_err() && !connection.is_autocommit() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    Ok(committed?)
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if let Some(connection) = &self.connection
            && !connection.is_autocommit()
        {
            // Undoing a WAL transaction drops its pages from memory: nothing waits for the disk.
            let _ = connection.execute_batch("ROLLBACK");
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::db::sql;

    use crate::db::sqlite::Scratch;

    pub(crate) async fn table() -> (WriteConnection, Scratch) {
        let scratch = Scratch::new();
        let connection = WriteConnection::open(&scratch.0, Duration::from_millis(100)).unwrap();
        let mut tx = connection.begin().await.unwrap();
        tx.execute_script("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, f REAL, b INTEGER)")
            .unwrap();
        tx.commit().await.unwrap();
        (connection, scratch)
    }

    #[tokio::test]
    async fn placeholders_bind_by_number_wherever_they_stand() {
        let (connection, _scratch) = table().await;
        let mut tx = connection.begin().await.unwrap();
        let insert = sql("INSERT INTO t (n, id, f, b) VALUES ($3, $1, $2, $4)")
            .bind("a")
            .bind(Some(1.5))
            .bind(7)
            .bind(true);
        assert_eq!(tx.execute(insert).unwrap(), 1);
        let row = tx
            .fetch_optional(sql("SELECT * FROM t WHERE n = $2 AND id = $1").bind("a").bind(7))
            .unwrap()
            .unwrap();
        assert_eq!(row.get::<String>("id").unwrap(), "a");
        assert_eq!(row.get::<i64>("n").unwrap(), 7);
        assert_eq!(row.get::<Option<f64>>("f").unwrap(), Some(1.5));
        assert!(row.get::<bool>("b").unwrap());
        assert!(row.get::<String>("n").is_err(), "an integer is not text");
        assert!(row.get::<i64>("missing").is_err());
    }

    #[tokio::test]
    async fn a_transaction_dropped_without_commit_leaves_nothing() {
        let (connection, _scratch) = table().await;
        let mut tx = connection.begin().await.unwrap();
        tx.execute(sql("INSERT INTO t (id) VALUES ($1)").bind("gone")).unwrap();
        drop(tx);
        let mut tx = connection.begin().await.unwrap();
        assert!(tx.fetch_all(sql("SELECT id FROM t")).unwrap().is_empty());
        let twice = tx
            .execute(sql("INSERT INTO t (id) VALUES ($1), ($1)").bind("x"))
            .unwrap_err();
        assert!(twice.is_unique_violation());
    }

    #[tokio::test]
    async fn a_database_held_by_another_process_is_unavailable_and_then_free_again() {
        let (connection, scratch) = table().await;
        let other = Connection::open(&scratch.0).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        assert!(matches!(connection.begin().await, Err(Error::Unavailable(_))));
        other.execute_batch("ROLLBACK").unwrap();
        let mut tx = connection.begin().await.unwrap();
        tx.execute(sql("INSERT INTO t (id) VALUES ($1)").bind("a")).unwrap();
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_while_beginning_leaves_no_transaction_open() {
        let (connection, _scratch) = table().await;
        for _ in 0..20 {
            let begun = tokio::time::timeout(Duration::from_micros(1), connection.begin()).await;
            drop(begun);
        }
        let mut tx = connection.begin().await.unwrap();
        tx.execute(sql("INSERT INTO t (id) VALUES ($1)").bind("a")).unwrap();
        tx.commit().await.unwrap();
    }
}
