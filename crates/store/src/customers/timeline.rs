//! The customer's timeline: what happened with them on every channel, newest first.
//!
//! Every domain that does something with a customer (an order placed, a message received, a
//! cart left behind) calls [`record`] in its own transaction, so the timeline never shows
//! what was rolled back and never misses what was committed.

use omnihub_domain::Timestamp;
use omnihub_domain::customers::TimelineEntry;
use omnihub_domain::id::{self, Kind};
use serde::Serialize;

use super::{finish_newest_first, newest_first_cursor, read_customer};
use crate::db::Page;
use crate::db::{Db, Row, Sql, Tx, sql};
use crate::{Error, Store};

/// Adds an entry to the customer's timeline. `kind` is named like the event
/// (`order.placed`); `reference` is the resource it is about; `summary` is what an agent
/// needs at a glance, and no more personal data than that.
pub async fn record(
    tx: &mut Tx,
    customer_id: &str,
    at: Timestamp,
    kind: &str,
    reference: Option<&str>,
    summary: &impl Serialize,
) -> Result<(), Error> {
    tx.execute(insert(customer_id, at, kind, reference, summary)).await?;
    Ok(())
}

/// The insert of one entry, for a write that runs it itself (or defers it).
pub(crate) fn insert(
    customer_id: &str,
    at: Timestamp,
    kind: &str,
    reference: Option<&str>,
    summary: &impl Serialize,
) -> Sql {
    let summary = serde_json::to_string(summary).unwrap_or_else(|_| "{}".into());
    sql("INSERT INTO customer_timeline (id, customer_id, at, kind, reference, summary) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(id::new(Kind::TimelineEntry))
        .bind(customer_id)
        .bind(at.millis())
        .bind(kind)
        .bind(reference)
        .bind(summary)
}

fn entry(row: &Row) -> Result<TimelineEntry, Error> {
    Ok(TimelineEntry {
        id: row.text("id")?,
        kind: row.text("kind")?,
        at: Timestamp(row.int("at")?),
        reference: row.opt_text("reference")?,
        summary: row.json("summary")?,
    })
}

/// The whole timeline, newest first, for an export.
pub(super) async fn everything(db: &Db, customer_id: &str) -> Result<Vec<TimelineEntry>, Error> {
    let rows = db
        .fetch_all(
            sql("SELECT * FROM customer_timeline WHERE customer_id = $1 ORDER BY at DESC, id DESC").bind(customer_id),
        )
        .await?;
    rows.iter().map(entry).collect()
}

impl Store {
    /// One page of the customer's timeline, newest first.
    pub async fn customer_timeline(
        &self,
        customer_id: &str,
        page: &Page,
    ) -> Result<(Vec<TimelineEntry>, Option<String>), Error> {
        read_customer(&mut &self.db, customer_id).await?;
        let (at, id) = newest_first_cursor(page)?;
        let rows = self
            .db
            .fetch_all(
                sql(
                    "SELECT * FROM customer_timeline WHERE customer_id = $1 AND (at < $2 OR (at = $2 AND id < $3)) \
                     ORDER BY at DESC, id DESC LIMIT $4",
                )
                .bind(customer_id)
                .bind(at)
                .bind(id)
                .bind(page.limit + 1),
            )
            .await?;
        let items = rows.iter().map(entry).collect::<Result<Vec<_>, _>>()?;
        Ok(finish_newest_first(page, items, |e| (e.at, &e.id)))
    }
}
