//! Group commit for SQLite.
//!
//! SQLite has one writer, and every commit waits for an fsync (about 1.5 ms here), so one
//! commit per request caps writes near 650 a second. Instead, write jobs queue for one writer
//! task, which runs as many as are waiting inside one transaction, commits once, and only then
//! answers each of them. A failing job rolls back alone: each runs in a savepoint of its own,
//! or, when it changes rows with one statement at most, relies on SQLite undoing a failing
//! statement (see [`Undo`]). Every answered write is on disk: durability is shared, not traded.
//!
//! The writer runs on a thread of its own: every statement of a job is a round trip to
//! SQLite's connection thread, and on the server's busy runtime the writer would wait behind
//! the requests for each of them, holding up every write queued behind it.
//!
//! PostgreSQL does its own group commit across connections, so there a job simply runs in a
//! transaction of its own.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};

use super::events;
use crate::Error;
use crate::db::events::LogCommits;
use crate::db::{Db, Tx, sql};

pub(crate) type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;
type Outcome = Result<Box<dyn Any + Send>, Error>;
type Job = Box<dyn for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Outcome> + Send>;
type Queued = (Job, Undo, oneshot::Sender<Outcome>);

/// How a failing job's changes are undone without undoing the rest of its group.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Undo {
    /// In a savepoint of its own, which copies every page the job changes.
    Savepoint,
    /// By SQLite itself: the job changes rows with one statement at most, and a failing
    /// statement leaves nothing behind.
    Statement,
}

/// Jobs sharing one commit, at most.
const MAX_BATCH: usize = 512;

/// The queue of the writer task.
#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::UnboundedSender<Queued>,
}

impl Writer {
    /// Starts the writer of a SQLite database on its own thread, which ends when the last
    /// `Writer` is dropped.
    pub(crate) fn start(db: Db, log_commits: Arc<LogCommits>) -> std::io::Result<Writer> {
        let (queue, jobs) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new()
            .name("omnihub-writer".into())
            .spawn(move || runtime.block_on(run(db, log_commits, jobs)))?;
        Ok(Writer { queue })
    }

    pub(crate) async fn submit(&self, job: Job, undo: Undo) -> Outcome {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((job, undo, reply))
            .map_err(|_| Error::Unavailable("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Unavailable("the writer stopped before answering".into()))?
    }
}

async fn run(db: Db, log_commits: Arc<LogCommits>, mut jobs: mpsc::UnboundedReceiver<Queued>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&db, &log_commits, batch).await;
    }
}

async fn run_batch(db: &Db, log_commits: &LogCommits, batch: Vec<Queued>) {
    let started = std::time::Instant::now();
    let jobs = batch.len();
    let mut tx = match db.begin_in_place().await {
        Ok(tx) => tx,
        Err(error) => return fail_all(batch.into_iter().map(|(_, _, reply)| reply), &error),
    };
    let mut answers = Vec::with_capacity(batch.len());
    let mut batch = batch.into_iter();
    while let Some((job, undo, reply)) = batch.next() {
        match run_job(&mut tx, job, undo).await {
            Ok(outcome) => answers.push((reply, outcome)),
            Err(error) => {
                drop(tx);
                let replies = answers.into_iter().map(|(reply, _)| reply);
                let replies = replies.chain([reply]).chain(batch.map(|(_, _, reply)| reply));
                return fail_all(replies, &error);
            }
        }
    }
    let ran = started.elapsed();
    let committed = events::commit(tx, log_commits).await;
    tracing::debug!(jobs, ?ran, took = ?started.elapsed(), "group commit");
    match committed {
        Ok(appended) => {
            if let Some(appended) = appended {
                log_commits.note_own(&appended);
            }
            for (reply, outcome) in answers {
                let _ = reply.send(outcome);
            }
        }
        Err(error) => fail_all(answers.into_iter().map(|(reply, _)| reply), &error),
    }
}

/// Runs one job so that its failure (or panic) undoes only its own writes and events; an
/// error here means it could not be undone alone, and the whole group must be.
/// The savepoints of a batch are never released one by one: they nest, `ROLLBACK TO job`
/// undoes back to the newest, this job's, and the commit ends them all.
async fn run_job(tx: &mut Tx, job: Job, undo: Undo) -> Result<Outcome, Error> {
    let mark = tx.events.len();
    // Without a savepoint: how many rows the connection had changed before the job.
    let changed_before = match undo {
        Undo::Savepoint => tx.execute(sql("SAVEPOINT job")).await.map(|_| None)?,
        Undo::Statement => Some(tx.total_changes()),
    };
    let outcome = match AssertUnwindSafe(job(tx)).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(_) => Err(Error::Unavailable("a write failed unexpectedly".into())),
    };
    if outcome.is_err() {
        tx.events.truncate(mark);
        match changed_before {
            None => tx.execute(sql("ROLLBACK TO job")).await.map(drop)?,
            Some(before) if tx.total_changes() != before => {
                return Err(Error::Unavailable("a write failed after changing rows".into()));
            }
            Some(_) => {}
        }
    }
    Ok(outcome)
}

fn fail_all(replies: impl Iterator<Item = oneshot::Sender<Outcome>>, error: &Error) {
    tracing::error!(%error, "a group commit failed");
    for reply in replies {
        let _ = reply.send(Err(Error::Unavailable(format!("the write was not saved: {error}"))));
    }
}

/// Wraps a typed job for the queue.
pub(crate) fn erase<T, F>(job: F) -> Job
where
    T: Send + 'static,
    F: for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<T, Error>> + Send + 'static,
{
    Box::new(move |tx| Box::pin(job(tx).map(|outcome| outcome.map(|value| Box::new(value) as Box<dyn Any + Send>))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Scratch;

    async fn database() -> (Db, Scratch) {
        let scratch = Scratch::new();
        let db = Db::connect(&format!("sqlite://{}", scratch.0.display()), Some(2))
            .await
            .unwrap();
        let mut tx = db.begin().await.unwrap();
        tx.execute_script("CREATE TABLE t (id TEXT PRIMARY KEY)".into())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        (db, scratch)
    }

    fn insert(id: &'static str) -> Job {
        erase(move |tx: &mut Tx| {
            Box::pin(async move { tx.execute(sql("INSERT INTO t (id) VALUES ($1)").bind(id)).await })
        })
    }

    fn insert_then_fail(id: &'static str) -> Job {
        erase(move |tx: &mut Tx| {
            Box::pin(async move {
                tx.execute(sql("INSERT INTO t (id) VALUES ($1)").bind(id)).await?;
                Err::<u64, _>(Error::Conflict("refused after writing".into()))
            })
        })
    }

    /// Runs `jobs` as one group commit; answers each job's outcome and the rows then stored.
    async fn group(db: &Db, jobs: Vec<(Job, Undo)>) -> (Vec<Outcome>, Vec<String>) {
        let mut answers = Vec::new();
        let batch = jobs
            .into_iter()
            .map(|(job, undo)| {
                let (reply, answer) = oneshot::channel();
                answers.push(answer);
                (job, undo, reply)
            })
            .collect();
        run_batch(db, &LogCommits::new(Vec::new()), batch).await;
        let mut outcomes = Vec::new();
        for answer in answers {
            outcomes.push(answer.await.unwrap());
        }
        let rows = db.fetch_all(sql("SELECT id FROM t ORDER BY id")).await.unwrap();
        (outcomes, rows.iter().map(|r| r.text("id").unwrap()).collect())
    }

    #[tokio::test]
    async fn a_failing_job_undoes_only_itself_whichever_way_it_is_undone() {
        let (db, _scratch) = database().await;
        let (outcomes, rows) = group(
            &db,
            vec![
                (insert("a"), Undo::Savepoint),
                (insert_then_fail("b"), Undo::Savepoint),
                // Refused by the table: SQLite undoes the statement itself.
                (insert("a"), Undo::Statement),
                (insert("c"), Undo::Statement),
            ],
        )
        .await;
        let failed: Vec<bool> = outcomes.iter().map(Result::is_err).collect();
        assert_eq!(failed, [false, true, true, false]);
        assert_eq!(rows, ["a", "c"]);
    }

    #[tokio::test]
    async fn a_job_without_savepoint_failing_after_its_change_fails_its_whole_group() {
        let (db, _scratch) = database().await;
        let (outcomes, rows) = group(
            &db,
            vec![
                (insert("a"), Undo::Savepoint),
                (insert_then_fail("b"), Undo::Statement),
                (insert("c"), Undo::Statement),
            ],
        )
        .await;
        assert!(
            outcomes
                .iter()
                .all(|outcome| matches!(outcome, Err(Error::Unavailable(_)))),
            "{outcomes:?}"
        );
        assert!(rows.is_empty(), "nothing of the group is kept: {rows:?}");
    }
}
