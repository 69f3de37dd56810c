//! What lets several server processes share one-at-a-time work: leases, and how far the event
//! log has been published to NATS.

use crate::db::sql;
use crate::{Error, Store};

impl Store {
    /// Takes the lease `name` for `holder`, or renews it, for `seconds` from now. `false`
    /// while another holder's lease has not run out.
    pub async fn claim_lease(&self, name: &str, holder: &str, seconds: i64) -> Result<bool, Error> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let taken = tx
            .execute(
                sql("INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET holder = $2, expires_at = $3 \
                     WHERE leases.holder = $2 OR leases.expires_at < $4")
                .bind(name)
                .bind(holder)
                .bind(now.plus_seconds(seconds).millis())
                .bind(now.millis()),
            )
            .await?;
        tx.commit().await?;
        Ok(taken == 1)
    }

    /// The `seq` of the last event published to NATS.
    pub async fn nats_published(&self) -> Result<i64, Error> {
        let row = self
            .db
            .fetch_optional(sql("SELECT value FROM counters WHERE name = 'nats_published'"))
            .await?
            .ok_or(Error::NotFound("counter nats_published"))?;
        row.int("value")
    }

    /// Records that every event up to `seq` is published; never moves back.
    pub async fn record_nats_published(&self, seq: i64) -> Result<(), Error> {
        let mut tx = self.db.begin().await?;
        tx.execute(sql("UPDATE counters SET value = $1 WHERE name = 'nats_published' AND value < $1").bind(seq))
            .await?;
        tx.commit().await
    }
}
