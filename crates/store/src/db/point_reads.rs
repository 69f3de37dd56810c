//! SQLite reads of a few rows by key, run on the calling thread.
//!
//! A cart and its lines are read three times in a checkout flow. Through sqlx's pool each read
//! is two thread hand-overs, which cost more than SQLite's lookup itself; these reads take a
//! connection of their own from a small stack and run where they are asked for. Only reads
//! bounded by a key belong here: anything long would hold up the async runtime's thread.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::Sql;
use super::direct::{self, DirectRow};
use crate::Error;

/// Connections kept between reads; more are opened while more readers run at once.
const KEPT: usize = 8;

pub struct PointReaders {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
}

impl PointReaders {
    pub(crate) fn new(path: &Path, busy_timeout: Duration) -> PointReaders {
        PointReaders {
            path: path.to_owned(),
            busy_timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn fetch_all(&self, sql: Sql) -> Result<Vec<DirectRow>, Error> {
        let connection = match self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            Some(connection) => connection,
            None => self.open()?,
        };
        let rows = direct::run(&connection, sql, usize::MAX);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < KEPT
        {
            idle.push(connection);
        }
        rows
    }

    fn open(&self) -> Result<Connection, Error> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(&self.path, flags)?;
        connection.busy_timeout(self.busy_timeout)?;
        connection.set_prepared_statement_cache_capacity(direct::STATEMENT_CACHE);
        Ok(connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::sql;
    use crate::db::write_connection::tests::table;

    #[tokio::test]
    async fn reads_see_each_commit_and_survive_a_failed_statement() {
        let (writer, scratch) = table().await;
        let readers = PointReaders::new(&scratch.0, Duration::from_millis(100));
        let read = || readers.fetch_all(sql("SELECT id, n FROM t WHERE id = $1").bind("a"));
        assert!(read().unwrap().is_empty());
        let mut tx = writer.begin().await.unwrap();
        tx.execute(sql("INSERT INTO t (id, n) VALUES ($1, $2)").bind("a").bind(7))
            .unwrap();
        assert!(read().unwrap().is_empty(), "nothing is seen before the commit");
        tx.commit().await.unwrap();
        assert_eq!(read().unwrap()[0].get::<i64>("n").unwrap(), 7);
        assert!(readers.fetch_all(sql("SELECT * FROM missing")).is_err());
        assert!(
            readers
                .fetch_all(sql("INSERT INTO t (id) VALUES ($1)").bind("b"))
                .is_err(),
            "read only"
        );
        assert_eq!(read().unwrap().len(), 1);
        assert!(readers.idle.lock().unwrap().len() <= KEPT);
    }
}
