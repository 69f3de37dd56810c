//! Group commit for SQLite.
//!
//! SQLite has one writer, and every commit waits for an fsync (about 1.5 ms here), so one
//! commit per request caps writes near 650 a second. Instead, write jobs queue for one writer
//! task, which runs as many as are waiting inside one transaction, each in its own savepoint
//! (a failing job rolls back alone), commits once, and only then answers each of them. Every
//! answered write is on disk: durability is shared, not traded.
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

use crate::db::{Db, Tx, sql};
use crate::events::LogCommits;
use crate::{Error, events};

pub(crate) type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;
type Outcome = Result<Box<dyn Any + Send>, Error>;
type Job = Box<dyn for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Outcome> + Send>;
type Queued = (Job, oneshot::Sender<Outcome>);

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

    pub(crate) async fn submit(&self, job: Job) -> Outcome {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((job, reply))
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
        Err(error) => return fail_all(batch.into_iter().map(|(_, reply)| reply), &error),
    };
    let mut answers = Vec::with_capacity(batch.len());
    for (job, reply) in batch {
        let outcome = run_job(&mut tx, job).await;
        answers.push((reply, outcome));
    }
    let ran = started.elapsed();
    let flushed = events::flush(&mut tx).await;
    let wrote = started.elapsed();
    let committed = match flushed {
        Ok(appended) => tx.commit().await.map(|()| appended),
        Err(error) => Err(error),
    };
    tracing::debug!(jobs, ?ran, ?wrote, took = ?started.elapsed(), "group commit");
    match committed {
        Ok(appended) => {
            if let Some(appended) = appended {
                log_commits.note(appended.last_seq, appended.kinds);
            }
            for (reply, outcome) in answers {
                let _ = reply.send(outcome);
            }
        }
        Err(error) => fail_all(answers.into_iter().map(|(reply, _)| reply), &error),
    }
}

/// Runs one job in a savepoint: its failure (or panic) undoes only its own writes and events.
/// The savepoints of a batch are never released one by one (a round trip each): they nest,
/// `ROLLBACK TO job` undoes back to the newest, this job's, and the commit ends them all.
async fn run_job(tx: &mut Tx, job: Job) -> Outcome {
    let mark = tx.events.len();
    tx.execute(sql("SAVEPOINT job")).await?;
    let outcome = match AssertUnwindSafe(job(tx)).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(_) => Err(Error::Unavailable("a write failed unexpectedly".into())),
    };
    if outcome.is_err() {
        tx.events.truncate(mark);
        tx.execute(sql("ROLLBACK TO job")).await?;
    }
    outcome
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
