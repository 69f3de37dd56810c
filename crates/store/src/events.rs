//! The event log: append inside a write transaction, read in `seq` order.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};

use omnihub_domain::Timestamp;
use omnihub_domain::events::{Event, NewEvent};
use omnihub_domain::id::{self, Kind};

use crate::db::{Row, Sql, Tx, placeholders, row_inserts, sql, sql_built};
use crate::stock_view::{Horizon, StockView, VIEWED};
use crate::{Error, Store};

/// Appends an event to the transaction; it is written, and becomes visible, when it commits.
pub(crate) fn append(tx: &mut Tx, at: Timestamp, event: NewEvent) {
    tx.events.push((at, event));
}

/// What a transaction wrote to the log: the `seq` of its last event, the kinds of its events,
/// and those of its events the stock view applies.
pub(crate) struct Appended {
    pub(crate) last_seq: i64,
    pub(crate) kinds: BTreeSet<&'static str>,
    pub(crate) viewed: Vec<Logged>,
}

/// An event this process logged, as it wrote it.
pub(crate) struct Logged {
    pub(crate) seq: i64,
    pub(crate) kind: &'static str,
    pub(crate) data: String,
}

/// How far the log has grown by the commits this process made (answered only once on disk) or
/// heard of from others: overall, to wake the live readers, and in the events each in-memory
/// view applies, so that a view need not look at the log after commits that cannot change it.
/// This process's own commits are applied to the stock view as they commit.
#[derive(Default)]
pub(crate) struct LogCommits {
    pub(crate) any: tokio::sync::watch::Sender<u64>,
    /// The newest commit of this process with an event the stock view applies.
    stock: AtomicI64,
    /// The newest such commit another process told of.
    stock_heard: AtomicI64,
    /// The newest commit with an event that makes remembered catalog entries wrong.
    pub(crate) catalog: AtomicI64,
    pub(crate) stock_view: StockView,
}

impl LogCommits {
    /// This process committed `appended`: the stock view applies it, then everyone is told.
    pub(crate) fn note_own(&self, appended: &Appended) {
        self.stock_view.apply_own(&appended.viewed, appended.last_seq);
        self.advance(appended.last_seq, appended.kinds.iter().copied(), &self.stock);
    }

    /// Another process committed the event `seq` of `kind`, and every one before it.
    pub(crate) fn note_heard(&self, seq: i64, kind: &str) {
        self.advance(seq, [kind], &self.stock_heard);
    }

    fn advance<'k>(&self, last_seq: i64, kinds: impl IntoIterator<Item = &'k str>, stock: &AtomicI64) {
        for kind in kinds {
            if crate::stock_view::VIEWED.contains(&kind) {
                stock.fetch_max(last_seq, Ordering::AcqRel);
            }
            if crate::catalog_cache::FORGETTING.contains(&kind) {
                self.catalog.fetch_max(last_seq, Ordering::AcqRel);
            }
        }
        self.any
            .send_modify(|latest| *latest = (*latest).max(last_seq.unsigned_abs()));
    }

    pub(crate) fn stock_horizon(&self) -> Horizon {
        Horizon {
            own: self.stock.load(Ordering::Acquire),
            heard: self.stock_heard.load(Ordering::Acquire),
        }
    }

    /// The newest `seq` committed (or heard of).
    pub(crate) fn committed(&self) -> i64 {
        *self.any.borrow() as i64
    }
}

/// Writes the transaction's events to the log and commits; answers what it wrote once the
/// commit is on disk. A write's few events go in one statement, which the commit goes out with
/// (the log's lock, taken by the insert, is held up by no round trip); a group commit's
/// hundreds go 64 at a time.
pub(crate) async fn commit(mut tx: Tx) -> Result<Option<Appended>, Error> {
    if tx.events.is_empty() {
        tx.commit().await?;
        return Ok(None);
    }
    let kinds = tx.events.iter().map(|(_, event)| event.kind.as_str()).collect();
    // Which of the events the stock view applies, and their documents, before the inserts
    // take the events.
    let viewed: Vec<(usize, &'static str, String)> = tx
        .events
        .iter()
        .enumerate()
        .filter(|(_, (_, event))| VIEWED.contains(&event.kind.as_str()))
        .map(|(at, (_, event))| (at, event.kind.as_str(), event.data.clone()))
        .collect();
    let mut inserts = row_inserts(
        "INSERT INTO events (id, type, occurred_at, data)",
        4,
        "RETURNING seq",
        std::mem::take(&mut tx.events).into_iter(),
        |insert, (at, event)| {
            insert
                .bind(id::new(Kind::Event))
                .bind(event.kind.as_str())
                .bind(at.millis())
                .bind(event.data)
        },
    );
    let last = inserts.pop();
    let mut seqs = Vec::new();
    for insert in inserts {
        seqs.extend(logged_seqs(&tx.fetch_all(insert).await?)?);
    }
    seqs.extend(logged_seqs(&tx.commit_with(last).await?)?);
    let last_seq = *seqs
        .last()
        .ok_or_else(|| Error::Corrupt("the log answered no seq".into()))?;
    let viewed = viewed
        .into_iter()
        .map(|(at, kind, data)| Logged {
            seq: seqs[at],
            kind,
            data,
        })
        .collect();
    Ok(Some(Appended {
        last_seq,
        kinds,
        viewed,
    }))
}

/// The `seq`s an insert into the log answered, in the VALUES' order: RETURNING answers in no
/// promised order, and seq grows with the VALUES'.
fn logged_seqs(rows: &[Row]) -> Result<Vec<i64>, Error> {
    let mut seqs = rows.iter().map(|row| row.int("seq")).collect::<Result<Vec<_>, _>>()?;
    seqs.sort_unstable();
    Ok(seqs)
}

/// On PostgreSQL: `statement` (a write ending in `RETURNING`), `then` (a write that takes the
/// written rows `FROM written`, its placeholders numbered from 1) and the log's insert of
/// `event` for the row written, as one statement that answers the written row and the event's
/// `seq` as `logged_seq`.
pub(crate) fn with_logged_event(statement: Sql, then: Option<Sql>, at: Timestamp, event: NewEvent) -> Sql {
    let statement = match then {
        Some(then) => statement.then("), then_written AS (", then),
        None => statement,
    };
    let log = format!(
        "), logged AS (INSERT INTO events (id, type, occurred_at, data) SELECT {} FROM written RETURNING seq) \
         SELECT written.*, logged.seq AS logged_seq FROM written, logged",
        placeholders(statement.arg_count() + 1, 4)
    );
    statement
        .within("WITH written AS (", &log)
        .bind(id::new(Kind::Event))
        .bind(event.kind.as_str())
        .bind(at.millis())
        .bind(event.data)
}

const CATCH_UP_BATCH: i64 = 1000;

fn event(row: &Row) -> Result<Event, Error> {
    Ok(Event {
        seq: row.int("seq")?,
        id: row.text("id")?,
        kind: row.text("type")?,
        occurred_at: Timestamp(row.int("occurred_at")?),
        data: row.json("data")?,
    })
}

impl Store {
    /// Events after `after` in log order, optionally only those of the given types; only
    /// events on disk, as what is read here leaves the process (webhooks, NATS, live streams).
    pub async fn events_after(&self, after: i64, types: &[String], limit: i64) -> Result<Vec<Event>, Error> {
        let query = if types.is_empty() {
            sql("SELECT seq, id, type, occurred_at, data FROM events WHERE seq > $1 ORDER BY seq LIMIT $2")
                .bind(after)
                .bind(limit)
        } else {
            let text = format!(
                "SELECT seq, id, type, occurred_at, data FROM events \
                 WHERE seq > $1 AND type IN ({}) ORDER BY seq LIMIT $2",
                placeholders(3, types.len())
            );
            types
                .iter()
                .fold(sql_built(text).bind(after).bind(limit), |q, t| q.bind(t))
        };
        let events = self
            .db
            .fetch_all(query)
            .await?
            .iter()
            .map(event)
            .collect::<Result<Vec<_>, _>>()?;
        // A commit is visible a moment before it is durable (`db::flush`); a flush begun now
        // covers everything read. This process's commits up to `log_commits` are durable already.
        let durable = self.log_commits.committed();
        if events.last().is_some_and(|last| last.seq > durable) {
            self.db.flushed().await?;
        }
        Ok(events)
    }

    /// What an in-memory view needs to catch up from `after`: the events of the `types` it
    /// applies, and the log position it is then current with. The busy types (carts, orders)
    /// are never read or parsed for it, nor is the log's end asked for: the view is current
    /// with every event read, and with everything this process had committed before the read.
    pub(crate) async fn catch_up(&self, after: i64, types: &[&str]) -> Result<(Vec<Event>, i64), Error> {
        let committed = self.log_commits.committed();
        let text = format!(
            "SELECT seq, id, type, occurred_at, data FROM events \
             WHERE seq > $1 AND type IN ({}) ORDER BY seq LIMIT $2",
            placeholders(3, types.len())
        );
        let mut events: Vec<Event> = Vec::new();
        loop {
            let from = events.last().map_or(after, |e| e.seq);
            let query = sql_built(text.clone()).bind(from).bind(CATCH_UP_BATCH);
            let query = types.iter().fold(query, |q, t| q.bind(*t));
            let batch = self.db.fetch_all(query).await?;
            let full = batch.len() as i64 == CATCH_UP_BATCH;
            for row in &batch {
                events.push(event(row)?);
            }
            if !full {
                let upto = events.last().map_or(after, |e| e.seq).max(committed);
                return Ok((events, upto));
            }
        }
    }

    /// The `seq` of the newest event, 0 when the log is empty.
    pub async fn last_event_seq(&self) -> Result<i64, Error> {
        let row = self
            .db
            .fetch_optional(sql("SELECT MAX(seq) AS seq FROM events"))
            .await?;
        Ok(match row {
            Some(row) => row.opt_int("seq")?.unwrap_or(0),
            None => 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_follows_only_commits_that_can_change_it() {
        let commits = LogCommits::default();
        let own = |last_seq, kinds: &[&'static str]| Appended {
            last_seq,
            kinds: kinds.iter().copied().collect(),
            viewed: Vec::new(),
        };
        commits.note_own(&own(5, &["cart.created", "cart.updated"]));
        assert_eq!(commits.committed(), 5);
        assert_eq!((commits.stock_horizon().own, commits.stock_horizon().heard), (0, 0));
        assert_eq!(commits.catalog.load(Ordering::Acquire), 0);
        commits.note_own(&own(7, &["order.placed", "inventory.level_changed"]));
        commits.note_own(&own(9, &["listing.updated"]));
        commits.note_heard(11, "channel.updated");
        // Heard late from another node: never moves a horizon back.
        commits.note_heard(8, "inventory.level_changed");
        assert_eq!(commits.committed(), 11);
        let horizon = commits.stock_horizon();
        assert_eq!(
            (horizon.own, horizon.heard),
            (7, 11),
            "a channel change changes availability"
        );
        assert_eq!(commits.catalog.load(Ordering::Acquire), 11);
    }
}
