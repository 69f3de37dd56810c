//! Shared flushes of PostgreSQL's write-ahead log.
//!
//! Every acknowledged write must be on disk. With PostgreSQL's default, each commit waits for
//! its own flush while it still holds its locks; the event log's lock (taken by every write
//! that appends events) and the row of a best-selling SKU then make writers wait out each
//! other's flushes one by one. So writes commit without waiting (`synchronous_commit=off`,
//! which releases their locks at once) and then wait here: one flusher takes everyone who is
//! waiting, flushes once, and answers them all. Whatever committed before a flush began is on
//! disk when it ends, so nobody is answered before their write is durable.
//!
//! The price: a concurrent reader may see a commit up to one flush (a millisecond or two)
//! before it is durable. A crash of Omnihub loses nothing; a crash of PostgreSQL's machine in
//! that instant loses writes that nobody was told had succeeded. What leaves the process
//! (webhooks, NATS, live streams) waits for a flush first (`Store::events_after`).
//! SQLite needs none of this: its commits are durable before anyone sees them, and group
//! commit (`writer`) shares their flushes.

use tokio::sync::{mpsc, oneshot};

use super::postgres::Pool;
use super::sql;
use crate::Error;

type Waiter = oneshot::Sender<Result<(), String>>;

/// The queue of the flusher, and the connection it flushes through.
#[derive(Clone)]
pub struct Flusher {
    queue: mpsc::UnboundedSender<Waiter>,
    pool: Pool,
}

impl Flusher {
    /// Starts the flusher, which ends with the last `Flusher`. It flushes through `pool`, whose
    /// connections keep `synchronous_commit` on: a transactional message (a log record, no
    /// table, allowed to every role) makes its implicit transaction commit and wait for the
    /// log up to it, and so for every commit before it.
    pub(crate) fn start(pool: Pool) -> Flusher {
        let (queue, mut waiting) = mpsc::unbounded_channel::<Waiter>();
        let flushing = pool.clone();
        tokio::spawn(async move {
            while let Some(first) = waiting.recv().await {
                let mut waiters = vec![first];
                while let Ok(next) = waiting.try_recv() {
                    waiters.push(next);
                }
                let flushed = flush(&flushing).await.map_err(|error| error.to_string());
                if let Err(error) = &flushed {
                    tracing::error!(%error, "a flush of PostgreSQL's log failed");
                }
                for waiter in waiters {
                    let _ = waiter.send(flushed.clone());
                }
            }
        });
        Flusher { queue, pool }
    }

    pub(crate) fn close(&self) {
        self.pool.close();
    }

    /// Waits until everything committed so far is on disk.
    pub(crate) async fn flushed(&self) -> Result<(), Error> {
        let (waiter, answer) = oneshot::channel();
        let flushed = match self.queue.send(waiter) {
            Ok(()) => answer.await.unwrap_or_else(|_| Err("the flusher stopped".into())),
            Err(_) => Err("the flusher has stopped".into()),
        };
        flushed.map_err(|error| Error::Unavailable(format!("the write may not be on disk: {error}")))
    }
}

async fn flush(pool: &Pool) -> Result<(), Error> {
    let mut connection = pool.acquire().await?;
    connection
        .run(sql("SELECT pg_logical_emit_message(true, 'omnihub', 'flush')"))
        .await
        .map(drop)
}
