//! Idempotency keys: a retried POST with the same key and body gets the first answer again.

use crate::db::sql;
use crate::{Error, Store};

/// Keys are remembered this long.
const RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
/// A request that has not finished after this long is taken to have died with its process.
const ABANDONED_MS: i64 = 60 * 1000;

/// What to do with a request that carries an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First time: run it, then [`Store::finish_idempotent`].
    Run,
    /// Seen before with the same body: answer this again.
    Replay { status: u16, body: String },
    /// The same key came with another body.
    Mismatch,
    /// The first request with this key is still running.
    InFlight,
}

impl Store {
    pub async fn claim_idempotency_key(&self, principal: &str, key: &str, request_hash: &str) -> Result<Claim, Error> {
        let (principal, key, request_hash) = (principal.to_owned(), key.to_owned(), request_hash.to_owned());
        let clock = self.clock.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let now = clock.now().millis();
                // A key past its retention or abandoned mid-flight is free again.
                tx.execute(
                    sql(
                        "DELETE FROM idempotency_keys WHERE principal = $1 AND idempotency_key = $2 \
                         AND (created_at < $3 OR (status IS NULL AND created_at < $4))",
                    )
                    .bind(&principal)
                    .bind(&key)
                    .bind(now - RETENTION_MS)
                    .bind(now - ABANDONED_MS),
                )
                .await?;
                let inserted = tx
                    .execute(
                        sql(
                            "INSERT INTO idempotency_keys (principal, idempotency_key, request_hash, created_at) \
                             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        )
                        .bind(&principal)
                        .bind(&key)
                        .bind(&request_hash)
                        .bind(now),
                    )
                    .await?;
                let claim = if inserted == 1 {
                    Claim::Run
                } else {
                    let row = tx
                        .fetch_optional(
                            sql("SELECT request_hash, status, response_body FROM idempotency_keys \
                                 WHERE principal = $1 AND idempotency_key = $2")
                            .bind(&principal)
                            .bind(&key),
                        )
                        .await?
                        .ok_or(Error::NotFound("idempotency key"))?;
                    match row.opt_int("status")? {
                        _ if row.text("request_hash")? != request_hash => Claim::Mismatch,
                        None => Claim::InFlight,
                        Some(status) => Claim::Replay {
                            status: u16::try_from(status).unwrap_or(500),
                            body: row.opt_text("response_body")?.unwrap_or_default(),
                        },
                    }
                };
                Ok(claim)
            })
        })
        .await
    }

    /// Stores the answer to replay for this key.
    pub async fn finish_idempotent(&self, principal: &str, key: &str, status: u16, body: &str) -> Result<(), Error> {
        let (principal, key, body) = (principal.to_owned(), key.to_owned(), body.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    sql("UPDATE idempotency_keys SET status = $3, response_body = $4 \
                         WHERE principal = $1 AND idempotency_key = $2")
                    .bind(&principal)
                    .bind(&key)
                    .bind(i64::from(status))
                    .bind(&body),
                )
                .await
                .map(drop)
            })
        })
        .await
    }

    /// Forgets a key whose request failed on our side, so the client may retry it.
    pub async fn release_idempotency_key(&self, principal: &str, key: &str) -> Result<(), Error> {
        let (principal, key) = (principal.to_owned(), key.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    sql(
                        "DELETE FROM idempotency_keys WHERE principal = $1 AND idempotency_key = $2 AND status IS NULL",
                    )
                    .bind(&principal)
                    .bind(&key),
                )
                .await
                .map(drop)
            })
        })
        .await
    }
}
