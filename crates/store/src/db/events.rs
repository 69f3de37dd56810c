//! The event log: append inside a write transaction, read in `seq` order.

use std::sync::Arc;

use omnihub_domain::Timestamp;
use omnihub_domain::events::{Event, EventType, NewEvent};
use omnihub_domain::id::{self, Kind};

use crate::db::{Row, Sql, Tx, placeholders, row_inserts, sql, sql_built};
use crate::{Error, Store};

/// Appends an event to the transaction; it is written, and becomes visible, when it commits.
pub(crate) fn append(tx: &mut Tx, at: Timestamp, event: NewEvent) {
    tx.events.push((at, event));
}

/// What a transaction wrote to the log: the `seq` of its last event, and those of its events
/// some follower follows.
pub(crate) struct Appended {
    pub(crate) last_seq: i64,
    pub(crate) followed: Vec<Logged>,
}

/// An event this process logged, as it wrote it.
pub(crate) struct Logged {
    pub(crate) seq: i64,
    pub(crate) kind: EventType,
    pub(crate) data: String,
}

/// An in-memory view of some of the state, kept current from the log (the stock view, the
/// catalog cache). The log tells each follower of the commits with events it follows, as this
/// process makes them or hears of other processes' (over NATS); a follower reads the log
/// itself for what it was not told, so it needs no import of anything here but this trait.
pub(crate) trait Follower: Send + Sync {
    /// Whether events of `kind` change what the follower holds.
    fn follows(&self, kind: EventType) -> bool;
    /// This process committed `events` (those some follower follows, as written; among them
    /// one this follower follows at least), the newest at `last_seq`; told before anyone else
    /// learns of the commit.
    fn committed_here(&self, events: &[Logged], last_seq: i64);
    /// Another process committed an event the follower follows at `seq`, and all before it.
    fn committed_elsewhere(&self, seq: i64);
}

/// How far the log has grown by the commits this process made (told only once on disk) or
/// heard of from others: overall, to wake the live readers, and to each follower, the commits
/// with events it follows.
pub(crate) struct LogCommits {
    pub(crate) any: tokio::sync::watch::Sender<u64>,
    followers: Vec<Arc<dyn Follower>>,
}

impl LogCommits {
    pub(crate) fn new(followers: Vec<Arc<dyn Follower>>) -> Self {
        LogCommits {
            any: tokio::sync::watch::Sender::default(),
            followers,
        }
    }

    /// Whether some follower follows events of `kind` (their data is kept for it).
    pub(crate) fn is_followed(&self, kind: EventType) -> bool {
        self.followers.iter().any(|f| f.follows(kind))
    }

    /// This process committed `appended`: the followers are told first, then everyone.
    pub(crate) fn note_own(&self, appended: &Appended) {
        for follower in &self.followers {
            if appended.followed.iter().any(|e| follower.follows(e.kind)) {
                follower.committed_here(&appended.followed, appended.last_seq);
            }
        }
        self.advance(appended.last_seq);
    }

    /// Another process committed the event `seq` of `kind`, and every one before it.
    pub(crate) fn note_heard(&self, seq: i64, kind: &str) {
        let kind = EventType::parse(kind);
        for follower in self
            .followers
            .iter()
            .filter(|f| kind.is_some_and(|kind| f.follows(kind)))
        {
            follower.committed_elsewhere(seq);
        }
        self.advance(seq);
    }

    fn advance(&self, last_seq: i64) {
        self.any
            .send_modify(|latest| *latest = (*latest).max(last_seq.unsigned_abs()));
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
pub(crate) async fn commit(mut tx: Tx, log: &LogCommits) -> Result<Option<Appended>, Error> {
    if tx.events.is_empty() {
        tx.commit().await?;
        return Ok(None);
    }
    // Which of the events a follower follows, and their documents, before the inserts take
    // the events.
    let followed: Vec<(usize, EventType, String)> = tx
        .events
        .iter()
        .enumerate()
        .filter(|(_, (_, event))| log.is_followed(event.kind))
        .map(|(at, (_, event))| (at, event.kind, event.data.clone()))
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
    let followed = followed
        .into_iter()
        .map(|(at, kind, data)| Logged {
            seq: seqs[at],
            kind,
            data,
        })
        .collect();
    Ok(Some(Appended { last_seq, followed }))
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

pub(crate) fn event(row: &Row) -> Result<Event, Error> {
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

    /// Follows level changes, noting what it is told.
    #[derive(Default)]
    struct Levels {
        here: std::sync::Mutex<Vec<(Vec<i64>, i64)>>,
        elsewhere: std::sync::Mutex<Vec<i64>>,
    }

    impl Follower for Levels {
        fn follows(&self, kind: EventType) -> bool {
            kind == EventType::InventoryLevelChanged
        }
        fn committed_here(&self, events: &[Logged], last_seq: i64) {
            let seqs = events.iter().filter(|e| self.follows(e.kind)).map(|e| e.seq).collect();
            self.here.lock().unwrap().push((seqs, last_seq));
        }
        fn committed_elsewhere(&self, seq: i64) {
            self.elsewhere.lock().unwrap().push(seq);
        }
    }

    fn logged(seq: i64, kind: EventType) -> Logged {
        Logged {
            seq,
            kind,
            data: "{}".into(),
        }
    }

    #[test]
    fn a_follower_is_told_only_of_commits_with_events_it_follows() {
        let levels = Arc::new(Levels::default());
        let commits = LogCommits::new(vec![levels.clone()]);
        assert!(commits.is_followed(EventType::InventoryLevelChanged));
        assert!(!commits.is_followed(EventType::CartCreated));
        commits.note_own(&Appended {
            last_seq: 5,
            followed: Vec::new(),
        });
        assert_eq!(commits.committed(), 5);
        commits.note_own(&Appended {
            last_seq: 7,
            followed: vec![
                logged(6, EventType::InventoryLevelChanged),
                logged(7, EventType::OrderPlaced),
            ],
        });
        commits.note_heard(11, "channel.updated");
        commits.note_heard(8, "inventory.level_changed");
        // Heard late from another node: the overall horizon never moves back.
        assert_eq!(commits.committed(), 11);
        assert_eq!(*levels.here.lock().unwrap(), [(vec![6], 7)]);
        assert_eq!(*levels.elsewhere.lock().unwrap(), [8]);
    }
}
