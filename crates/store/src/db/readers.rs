//! SQLite's read connections: a pool of read-only rusqlite connections beside the one write
//! connection, each set up as the write connection is (WAL, `synchronous=FULL`, foreign keys,
//! the same busy timeout).
//!
//! Where a read runs. SQLite runs a statement on the thread that asks. Most reads take a few
//! microseconds (a row by key, the lines of an order), less than handing them to another
//! thread and their rows back costs; but a read may be long (a page of 500 rows, a report), and
//! must not hold an async runtime's thread meanwhile. So a read starts on the calling thread
//! with a budget ([`INLINE_BUDGET`]): a statement still running when it is spent is
//! interrupted and run again from the start on a reading thread, and if it is long there too,
//! its text is remembered so that it goes there at once the next time. Reading threads are a few threads of our own
//! that take reads from one queue (with their connections) and send the rows back; a busy one
//! takes the next read without sleeping, and only an idle one is woken. tokio's blocking pool
//! would do the same, but starts a thread for each read that finds none idle: 64 concurrent
//! reads kept dozens of threads switching on 2 cores, at 23–40 µs of CPU per read by key
//! against 6–7 µs through the queue and 3 µs on the calling thread (BENCHMARKS.md). A read
//! transaction's statements each take a turn on the runtime's cooperative budget, so that a
//! transaction of many short reads lets other tasks run between them.

use std::collections::{HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::Sql;
use super::sqlite::{self, SqliteRow};
use crate::Error;

/// How long a read waits for a connection to come free before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a statement may run on the calling thread: past it, the hand-over to a reading
/// thread costs a small part of the statement's own time.
const INLINE_BUDGET: Duration = Duration::from_micros(100);

/// SQLite asks whether to go on about every this many steps of its virtual machine (some
/// microseconds).
const STEPS_BETWEEN_CHECKS: i32 = 1000;

/// Statement texts remembered as long, at most; past it others are simply interrupted each
/// time (only texts built from many row counts could get near it).
const LONG_TEXTS: usize = 1024;

/// Reading threads: two per core, so that one long read does not hold up the others on a small
/// machine (4 threads spent as little CPU per read as 2 on 2 cores, 16 twice as much).
fn reading_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (2 * cores).clamp(4, 16)
}

/// At most `size` read connections to one database file, opened as they are first needed.
#[derive(Clone)]
pub struct Readers {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    busy_timeout: Duration,
    idle: Mutex<Vec<ReadConnection>>,
    permits: Arc<Semaphore>,
    queue: Arc<Queue>,
    /// Texts of statements that outran [`INLINE_BUDGET`].
    long: Mutex<HashSet<String>>,
}

impl Drop for Inner {
    /// The reading threads end with the last handle on the readers.
    fn drop(&mut self) {
        self.queue.close();
    }
}

impl Readers {
    /// Readers of the database at `path`, which must exist (the write connection creates it);
    /// one connection is opened at once, so a file that cannot be read fails here.
    pub(crate) fn open(path: &Path, busy_timeout: Duration, size: usize) -> Result<Readers, Error> {
        let readers = Readers {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                busy_timeout,
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(size.max(1))),
                queue: Queue::start(reading_threads())?,
                long: Mutex::new(HashSet::new()),
            }),
        };
        let first = readers.connect()?;
        readers.put_back(first);
        Ok(readers)
    }

    /// A read connection, waiting for one to come free if all are taken.
    pub(crate) async fn acquire(&self) -> Result<Reader, Error> {
        let permits = self.inner.permits.clone();
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, permits.acquire_owned())
            .await
            .map_err(|_| Error::Unavailable("no database connection came free in time".into()))?
            .map_err(|_| Error::Unavailable("the database is closed".into()))?;
        let idle = lock(&self.inner.idle).pop();
        let connection = match idle {
            Some(connection) => connection,
            None => self.connect()?,
        };
        Ok(Reader {
            connection: Some(connection),
            readers: self.clone(),
            _permit: permit,
        })
    }

    fn connect(&self) -> Result<ReadConnection, Error> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_PRIVATE_CACHE;
        let connection = Connection::open_with_flags(&self.inner.path, flags)?;
        connection.busy_timeout(self.inner.busy_timeout)?;
        // Those of the write connection: WAL is the file's (set by the writer, only confirmed
        // here); the others hold per connection.
        connection.pragma_update(None, "journal_mode", "wal")?;
        connection.pragma_update(None, "foreign_keys", "on")?;
        connection.pragma_update(None, "synchronous", "full")?;
        connection.set_prepared_statement_cache_capacity(sqlite::STATEMENT_CACHE);
        let deadline = Arc::new(Deadline::default());
        let checked = deadline.clone();
        connection.progress_handler(STEPS_BETWEEN_CHECKS, Some(move || checked.passed()))?;
        Ok(ReadConnection { connection, deadline })
    }

    fn put_back(&self, connection: ReadConnection) {
        if !self.inner.permits.is_closed() {
            lock(&self.inner.idle).push(connection);
        }
    }

    fn is_long(&self, sql: &Sql) -> bool {
        lock(&self.inner.long).contains(sql.text())
    }

    fn remember_long(&self, sql: &Sql) {
        let mut long = lock(&self.inner.long);
        if long.len() < LONG_TEXTS {
            long.insert(sql.text().to_owned());
        }
    }

    /// Closes the idle connections and lets no new one be taken.
    pub(crate) fn close(&self) {
        self.inner.permits.close();
        lock(&self.inner.idle).clear();
        self.inner.queue.close();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A read connection and the moment its statement on the calling thread must stop.
struct ReadConnection {
    connection: Connection,
    deadline: Arc<Deadline>,
}

/// Microseconds since [`EPOCH`]; 0 for none.
#[derive(Default)]
struct Deadline(AtomicU64);

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn micros_since_epoch() -> u64 {
    u64::try_from(EPOCH.elapsed().as_micros()).unwrap_or(u64::MAX)
}

impl Deadline {
    fn set(&self, budget: Option<Duration>) {
        let at = budget.map_or(0, |budget| {
            micros_since_epoch().saturating_add(u64::try_from(budget.as_micros()).unwrap_or(u64::MAX))
        });
        self.0.store(at, Ordering::Relaxed);
    }

    fn passed(&self) -> bool {
        let at = self.0.load(Ordering::Relaxed);
        at != 0 && micros_since_epoch() > at
    }
}

/// A read connection taken from the pool; it goes back when dropped, a read transaction left
/// open ended first.
pub(crate) struct Reader {
    /// `None` only while a statement runs on a reading thread, or if it never came back.
    connection: Option<ReadConnection>,
    readers: Readers,
    _permit: OwnedSemaphorePermit,
}

impl Reader {
    fn connection(&self) -> Result<&ReadConnection, Error> {
        self.connection
            .as_ref()
            .ok_or_else(|| Error::Unavailable("the read connection was lost".into()))
    }

    /// Starts a read transaction: its statements see the database as of its first. Deferred,
    /// so it takes no lock and waits for nothing until then.
    pub(crate) fn begin(&mut self) -> Result<(), Error> {
        Ok(self.connection()?.connection.execute_batch("BEGIN")?)
    }

    /// Ends the read transaction, letting go of its snapshot; nothing waits for the disk.
    pub(crate) fn end(&mut self) -> Result<(), Error> {
        let connection = &self.connection()?.connection;
        if !connection.is_autocommit() {
            connection.execute_batch("COMMIT")?;
        }
        Ok(())
    }

    /// Runs a statement bounded by a key on the calling thread, whatever it takes.
    pub(crate) fn fetch_here(&self, sql: Sql) -> Result<Vec<SqliteRow>, Error> {
        sqlite::run(&self.connection()?.connection, &sql, usize::MAX)
    }

    /// Runs a statement, keeping at most `limit` rows: on the calling thread within
    /// [`INLINE_BUDGET`], else on a reading thread.
    pub(crate) async fn fetch(&mut self, sql: Sql, limit: usize) -> Result<Vec<SqliteRow>, Error> {
        let known_long = self.readers.is_long(&sql);
        if !known_long {
            tokio::task::consume_budget().await;
            match self.fetch_within_budget(&sql, limit) {
                Err(error) if is_interrupted(&error) => {}
                answered => return answered,
            }
        }
        let (rows, took, sql) = self
            .off_runtime(move |connection| {
                let started = Instant::now();
                let rows = sqlite::run(connection, &sql, limit)?;
                Ok((rows, started.elapsed(), sql))
            })
            .await?;
        // Only a statement long on a reading thread too: one interrupted because its thread
        // was preempted meanwhile goes on starting on the calling thread.
        if !known_long && took > INLINE_BUDGET {
            self.readers.remember_long(&sql);
        }
        Ok(rows)
    }

    fn fetch_within_budget(&self, sql: &Sql, limit: usize) -> Result<Vec<SqliteRow>, Error> {
        let read = self.connection()?;
        read.deadline.set(Some(INLINE_BUDGET));
        let answered = sqlite::run(&read.connection, sql, limit);
        read.deadline.set(None);
        answered
    }

    /// Runs a script of several statements on a reading thread.
    pub(crate) async fn execute_script(&mut self, script: String) -> Result<(), Error> {
        self.off_runtime(move |connection| Ok(connection.execute_batch(&script)?))
            .await
    }

    /// Rows changed by the last statement: none, on a read-only connection.
    pub(crate) fn changes(&self) -> u64 {
        self.connection().map_or(0, |read| read.connection.changes())
    }

    /// Runs `step` on a reading thread, with the connection. Should the caller give up
    /// meanwhile, the connection is closed there when `step` ends (ending any read
    /// transaction), and its place in the pool freed.
    async fn off_runtime<T: Send + 'static>(
        &mut self,
        step: impl FnOnce(&Connection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let read = self
            .connection
            .take()
            .ok_or_else(|| Error::Unavailable("the read connection was lost".into()))?;
        let (reply, answer) = oneshot::channel();
        self.readers.inner.queue.push(Box::new(move || {
            let answer = step(&read.connection);
            let _ = reply.send((read, answer));
        }))?;
        let (read, answer) = answer
            .await
            .map_err(|_| Error::Unavailable("the read was dropped by its thread".into()))?;
        self.connection = Some(read);
        answer
    }
}

/// A statement stopped because it outran its budget on the calling thread.
fn is_interrupted(error: &Error) -> bool {
    matches!(error, Error::Sqlite(error) if error.sqlite_error_code() == Some(ErrorCode::OperationInterrupted))
}

impl Drop for Reader {
    fn drop(&mut self) {
        let Some(read) = self.connection.take() else {
            return;
        };
        // Ending a read transaction only lets go of its snapshot: nothing waits for the disk.
        if read.connection.is_autocommit() || read.connection.execute_batch("ROLLBACK").is_ok() {
            self.readers.put_back(read);
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Reads waiting for a reading thread, and how many threads wait for reads.
struct Queue {
    waiting: Mutex<Waiting>,
    ready: Condvar,
}

#[derive(Default)]
struct Waiting {
    jobs: VecDeque<Job>,
    idle_threads: usize,
    closed: bool,
}

impl Queue {
    fn start(threads: usize) -> Result<Arc<Queue>, Error> {
        let queue = Arc::new(Queue {
            waiting: Mutex::new(Waiting::default()),
            ready: Condvar::new(),
        });
        for _ in 0..threads {
            let serving = queue.clone();
            std::thread::Builder::new()
                .name("omnihub-reader".into())
                .spawn(move || serving.serve())
                .map_err(|error| Error::Unavailable(format!("no reading thread: {error}")))?;
        }
        Ok(queue)
    }

    fn push(&self, job: Job) -> Result<(), Error> {
        let mut waiting = lock(&self.waiting);
        if waiting.closed {
            return Err(Error::Unavailable("the database is closed".into()));
        }
        waiting.jobs.push_back(job);
        let wake = waiting.idle_threads > 0;
        drop(waiting);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Lets the threads end once the reads queued so far are done.
    fn close(&self) {
        lock(&self.waiting).closed = true;
        self.ready.notify_all();
    }

    /// A reading thread: takes reads until the queue is closed and empty. A read that panics
    /// answers nobody (its caller hears the read was dropped) and the thread goes on.
    fn serve(&self) {
        while let Some(job) = self.next() {
            let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
        }
    }

    fn next(&self) -> Option<Job> {
        let mut waiting = lock(&self.waiting);
        loop {
            if let Some(job) = waiting.jobs.pop_front() {
                return Some(job);
            }
            if waiting.closed {
                return None;
            }
            waiting.idle_threads += 1;
            waiting = self
                .ready
                .wait(waiting)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            waiting.idle_threads -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::sql;
    use crate::db::write_connection::tests::table;

    fn count() -> Sql {
        sql("SELECT COUNT(*) AS n FROM t")
    }

    #[tokio::test]
    async fn reads_see_each_commit_and_survive_a_failed_statement() {
        let (writer, scratch) = table().await;
        let readers = Readers::open(&scratch.0, Duration::from_millis(100), 2).unwrap();
        let by_key = || sql("SELECT id, n FROM t WHERE id = $1").bind("a");
        assert!(
            readers
                .acquire()
                .await
                .unwrap()
                .fetch_here(by_key())
                .unwrap()
                .is_empty()
        );
        let mut tx = writer.begin().await.unwrap();
        tx.execute(sql("INSERT INTO t (id, n) VALUES ($1, $2)").bind("a").bind(7))
            .unwrap();
        let mut reader = readers.acquire().await.unwrap();
        assert!(
            reader.fetch(by_key(), 1).await.unwrap().is_empty(),
            "nothing is seen before the commit"
        );
        tx.commit().await.unwrap();
        assert_eq!(reader.fetch(by_key(), 1).await.unwrap()[0].get::<i64>("n").unwrap(), 7);
        assert!(reader.fetch(sql("SELECT * FROM missing"), 1).await.is_err());
        let insert = sql("INSERT INTO t (id) VALUES ($1)").bind("b");
        assert!(reader.fetch(insert, 0).await.is_err(), "read only");
        assert_eq!(reader.fetch_here(by_key()).unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_read_transaction_sees_one_moment_until_it_ends() {
        let (writer, scratch) = table().await;
        let readers = Readers::open(&scratch.0, Duration::from_millis(100), 2).unwrap();
        let mut reader = readers.acquire().await.unwrap();
        reader.begin().unwrap();
        assert_eq!(reader.fetch(count(), 1).await.unwrap()[0].get::<i64>("n").unwrap(), 0);
        let mut tx = writer.begin().await.unwrap();
        tx.execute(sql("INSERT INTO t (id) VALUES ($1)").bind("a")).unwrap();
        tx.commit().await.unwrap();
        assert_eq!(reader.fetch(count(), 1).await.unwrap()[0].get::<i64>("n").unwrap(), 0);
        assert_eq!(reader.fetch_here(count()).unwrap()[0].get::<i64>("n").unwrap(), 0);
        reader.end().unwrap();
        assert_eq!(reader.fetch(count(), 1).await.unwrap()[0].get::<i64>("n").unwrap(), 1);
    }

    /// A statement that runs far past the budget, also reading `t`.
    fn long() -> Sql {
        sql(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) \
             SELECT (SELECT COUNT(*) FROM t) AS n, COUNT(*) AS steps FROM c",
        )
    }

    #[tokio::test]
    async fn a_long_read_moves_to_a_reading_thread_in_its_transaction_and_goes_there_next_time() {
        let (writer, scratch) = table().await;
        let readers = Readers::open(&scratch.0, Duration::from_millis(100), 2).unwrap();
        let mut reader = readers.acquire().await.unwrap();
        reader.begin().unwrap();
        assert_eq!(reader.fetch(count(), 1).await.unwrap()[0].get::<i64>("n").unwrap(), 0);
        let mut tx = writer.begin().await.unwrap();
        tx.execute(sql("INSERT INTO t (id) VALUES ($1)").bind("a")).unwrap();
        tx.commit().await.unwrap();
        assert!(!readers.is_long(&long()));
        let rows = reader.fetch(long(), 1).await.unwrap();
        assert_eq!(rows[0].get::<i64>("steps").unwrap(), 200_000);
        assert_eq!(rows[0].get::<i64>("n").unwrap(), 0, "the transaction's moment, kept");
        assert!(readers.is_long(&long()));
        reader.end().unwrap();
        assert_eq!(reader.fetch(long(), 1).await.unwrap()[0].get::<i64>("n").unwrap(), 1);
    }

    #[tokio::test]
    async fn a_reader_dropped_in_a_transaction_goes_back_without_it() {
        let (writer, scratch) = table().await;
        let readers = Readers::open(&scratch.0, Duration::from_millis(100), 1).unwrap();
        let mut reader = readers.acquire().await.unwrap();
        reader.begin().unwrap();
        reader.fetch(count(), 1).await.unwrap();
        drop(reader);
        let mut tx = writer.begin().await.unwrap();
        tx.execute(sql("INSERT INTO t (id) VALUES ($1)").bind("a")).unwrap();
        tx.commit().await.unwrap();
        let reader = readers.acquire().await.unwrap();
        assert_eq!(lock(&readers.inner.idle).len(), 0, "the one connection, taken again");
        assert!(reader.connection().unwrap().connection.is_autocommit());
        assert_eq!(reader.fetch_here(count()).unwrap()[0].get::<i64>("n").unwrap(), 1);
    }

    #[tokio::test]
    async fn at_most_size_connections_are_taken_at_once() {
        let (_writer, scratch) = table().await;
        let readers = Readers::open(&scratch.0, Duration::from_millis(100), 2).unwrap();
        let first = readers.acquire().await.unwrap();
        let _second = readers.acquire().await.unwrap();
        let third = tokio::time::timeout(Duration::from_millis(50), readers.acquire()).await;
        assert!(third.is_err(), "waits while both are taken");
        drop(first);
        readers.acquire().await.unwrap();
        readers.close();
        assert!(matches!(readers.acquire().await, Err(Error::Unavailable(_))));
    }

    #[tokio::test]
    async fn the_reading_threads_end_with_the_readers() {
        let (_writer, scratch) = table().await;
        let readers = Readers::open(&scratch.0, Duration::from_millis(100), 2).unwrap();
        let mut reader = readers.acquire().await.unwrap();
        assert_eq!(reader.fetch(count(), 1).await.unwrap().len(), 1);
        let queue = Arc::downgrade(&readers.inner.queue);
        drop((reader, readers));
        for _ in 0..100 {
            if queue.upgrade().is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the reading threads are still there");
    }
}
