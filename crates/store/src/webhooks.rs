//! Webhook endpoints, the delivery of each matching event to each of them, and the log of
//! every attempt.
//!
//! Deliveries are made from the event log, never from memory: fan-out reads the log after
//! each endpoint's stored cursor and writes the deliveries and the new cursor in one
//! transaction, so a crash at any point loses none and repeats none. Sending is claimed with a
//! lease per delivery, so two server processes never send the same one at the same time.

use omnihub_domain::Invalid;
use omnihub_domain::Timestamp;
use omnihub_domain::events::{EventType, NewEvent};
use omnihub_domain::id::{self, Kind};
use omnihub_domain::webhooks::{
    Attempt, Delivery, DeliveryStatus, Endpoint, EndpointDraft, EndpointStatus, NewEndpoint, Outcome, Outgoing,
    accepted, next_attempt_at, wants,
};
use rand::distr::{Alphanumeric, SampleString};

use crate::db::Page;
use crate::db::events::append;
use crate::db::{Backend, Row, placeholders, sql, sql_built};
use crate::{Error, Store};

/// How many events one fan-out pass reads per endpoint.
const FAN_OUT_BATCH: i64 = 500;

/// How long a process may take to send a claimed delivery before another may: well over the
/// longest timeout of a request.
const CLAIM_SECONDS: i64 = 120;

fn endpoint(row: &Row) -> Result<Endpoint, Error> {
    let status = row.text("status")?;
    Ok(Endpoint {
        id: row.text("id")?,
        draft: EndpointDraft {
            url: row.text("url")?,
            events: row.json("events")?,
            status: EndpointStatus::parse(&status)
                .ok_or_else(|| Error::Corrupt(format!("endpoint status {status}")))?,
        },
        secret: None,
        last_event_seq: row.int("last_event_seq")?,
        version: row.int("version")?,
        created_at: Timestamp(row.int("created_at")?),
        updated_at: Timestamp(row.int("updated_at")?),
    })
}

/// A fresh signing key for an endpoint registered without one.
fn generate_secret() -> String {
    format!("whsec_{}", Alphanumeric.sample_string(&mut rand::rng(), 32))
}

fn events_text(events: &[String]) -> String {
    serde_json::to_string(events).unwrap_or_else(|_| "[]".to_owned())
}

impl Store {
    /// Registers an endpoint. It receives the events committed from now on; the answer is the
    /// only one that shows its secret.
    pub async fn create_webhook_endpoint(&self, mut new: NewEndpoint) -> Result<Endpoint, Error> {
        new.tidy();
        new.validate(self.destinations)?;
        let now = self.now();
        let secret = new.secret.clone().unwrap_or_else(generate_secret);
        let id = id::new(Kind::WebhookEndpoint);
        let sealed = self.secret_key.seal(secret.as_bytes(), &id)?;
        let mut tx = self.db.begin().await?;
        let log_end = tx
            .fetch_optional(sql("SELECT COALESCE(MAX(seq), 0) AS seq FROM events"))
            .await?
            .map_or(Ok(0), |row| row.int("seq"))?;
        let created = Endpoint {
            id,
            draft: new.draft(),
            secret: None,
            last_event_seq: log_end,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        tx.execute(
            sql("INSERT INTO webhook_endpoints (id, url, events, secret, secret_sealed, status, last_event_seq, replay, version, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, TRUE, $5, $6, 0, $7, $8, $8)")
            .bind(&created.id)
            .bind(&created.draft.url)
            .bind(events_text(&created.draft.events))
            .bind(&sealed)
            .bind(created.draft.status.as_str())
            .bind(created.last_event_seq)
            .bind(created.version)
            .bind(now.millis()),
        )
        .await?;
        append(&mut tx, now, NewEvent::new(EventType::WebhookEndpointCreated, &created));
        self.commit(tx).await?;
        Ok(Endpoint {
            secret: Some(secret),
            ..created
        })
    }

    pub async fn webhook_endpoint(&self, id: &str) -> Result<Endpoint, Error> {
        let row = self
            .db
            .fetch_optional(sql("SELECT * FROM webhook_endpoints WHERE id = $1").bind(id))
            .await?
            .ok_or(Error::NotFound("webhook endpoint"))?;
        endpoint(&row)
    }

    pub async fn webhook_endpoints(&self, page: &Page) -> Result<(Vec<Endpoint>, Option<String>), Error> {
        let rows = self
            .db
            .fetch_all(
                sql("SELECT * FROM webhook_endpoints WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(page.after.as_deref().unwrap_or(""))
                    .bind(page.limit + 1),
            )
            .await?;
        let items = rows.iter().map(endpoint).collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(items, |e| &e.id))
    }

    /// Changes where an endpoint is, what it wants, or pauses and resumes it. A paused endpoint
    /// keeps its place in the log: once resumed, it receives what happened meanwhile.
    pub async fn update_webhook_endpoint(
        &self,
        id: &str,
        mut draft: EndpointDraft,
        version: i64,
    ) -> Result<Endpoint, Error> {
        draft.tidy();
        draft.validate(self.destinations)?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let changed = tx
            .execute(
                sql("UPDATE webhook_endpoints SET url = $3, events = $4, status = $5, version = version + 1, updated_at = $6 \
                     WHERE id = $1 AND version = $2")
                .bind(id)
                .bind(version)
                .bind(&draft.url)
                .bind(events_text(&draft.events))
                .bind(draft.status.as_str())
                .bind(now.millis()),
            )
            .await?;
        let updated = self.changed_endpoint(&mut tx, changed, id).await?;
        append(&mut tx, now, NewEvent::new(EventType::WebhookEndpointUpdated, &updated));
        self.commit(tx).await?;
        Ok(updated)
    }

    /// Delivers again every matching event from `from_seq` on, as new deliveries (receivers
    /// tell them apart from the first ones by `Omnihub-Event-Id`). Never skips ahead: a
    /// `from_seq` past the endpoint's place in the log changes nothing but the replay count.
    pub async fn replay_webhook_endpoint(&self, id: &str, from_seq: i64) -> Result<Endpoint, Error> {
        if from_seq < 1 {
            return Err(Invalid::one("from_seq", "out_of_range", "must be at least 1").into());
        }
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let changed = tx
            .execute(
                sql(
                    "UPDATE webhook_endpoints SET replay = replay + 1, version = version + 1, updated_at = $3, \
                     last_event_seq = CASE WHEN last_event_seq < $2 THEN last_event_seq ELSE $2 END WHERE id = $1",
                )
                .bind(id)
                .bind(from_seq - 1)
                .bind(now.millis()),
            )
            .await?;
        let replayed = self.changed_endpoint(&mut tx, changed, id).await?;
        let data = serde_json::json!({"endpoint": &replayed, "from_seq": from_seq});
        append(&mut tx, now, NewEvent::new(EventType::WebhookEndpointReplayed, data));
        self.commit(tx).await?;
        Ok(replayed)
    }

    /// Removes an endpoint with its delivery log: nothing more is sent to it, and a delivery
    /// being sent right now is recorded nowhere.
    pub async fn delete_webhook_endpoint(&self, id: &str) -> Result<(), Error> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        if self.db.backend() == Backend::Postgres {
            // The worker writes under the same locks, in the same order: fan-out holds the
            // endpoint's row while it adds deliveries, an attempt holds its delivery's row while
            // it adds itself. Taking the endpoint's row, then its deliveries', waits for those in
            // flight and holds off the next, so no new row refers to what goes below. SQLite
            // writes one transaction at a time and needs none of this.
            tx.fetch_all(sql("SELECT id FROM webhook_endpoints WHERE id = $1 FOR UPDATE").bind(id))
                .await?;
            tx.fetch_all(sql("SELECT id FROM webhook_deliveries WHERE endpoint_id = $1 FOR UPDATE").bind(id))
                .await?;
        }
        tx.execute(
            sql("DELETE FROM webhook_attempts WHERE delivery_id IN \
                 (SELECT id FROM webhook_deliveries WHERE endpoint_id = $1)")
            .bind(id),
        )
        .await?;
        tx.execute(sql("DELETE FROM webhook_deliveries WHERE endpoint_id = $1").bind(id))
            .await?;
        let deleted = tx
            .execute(sql("DELETE FROM webhook_endpoints WHERE id = $1").bind(id))
            .await?;
        if deleted == 0 {
            return Err(Error::NotFound("webhook endpoint"));
        }
        let data = serde_json::json!({"endpoint_id": id});
        append(&mut tx, now, NewEvent::new(EventType::WebhookEndpointDeleted, data));
        self.commit(tx).await?;
        Ok(())
    }

    /// The endpoint after an update of `changed` rows: 412 semantics when the version was stale.
    async fn changed_endpoint(&self, tx: &mut crate::db::Tx, changed: u64, id: &str) -> Result<Endpoint, Error> {
        let row = tx
            .fetch_optional(sql("SELECT * FROM webhook_endpoints WHERE id = $1").bind(id))
            .await?
            .ok_or(Error::NotFound("webhook endpoint"))?;
        let current = endpoint(&row)?;
        if changed == 1 {
            Ok(current)
        } else {
            Err(Error::VersionMismatch {
                current: current.version,
            })
        }
    }
}

// ---- the delivery log ----

fn delivery(row: &Row, attempts: Vec<Attempt>) -> Result<Delivery, Error> {
    let status = row.text("status")?;
    Ok(Delivery {
        id: row.text("id")?,
        endpoint_id: row.text("endpoint_id")?,
        event_id: row.text("event_id")?,
        event_seq: row.int("event_seq")?,
        event_type: row.text("event_type")?,
        replay: row.int("replay")?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| Error::Corrupt(format!("delivery status {status}")))?,
        attempt_count: row.int("attempt_count")?,
        next_attempt_at: row.opt_int("next_attempt_at")?.map(Timestamp),
        last_status_code: row.opt_int("last_status_code")?,
        last_error: row.opt_text("last_error")?,
        response_time_ms: row.opt_int("response_time_ms")?,
        attempts,
        created_at: Timestamp(row.int("created_at")?),
        updated_at: Timestamp(row.int("updated_at")?),
    })
}

fn attempt(row: &Row) -> Result<Attempt, Error> {
    Ok(Attempt {
        number: row.int("number")?,
        at: Timestamp(row.int("at")?),
        status_code: row.opt_int("status_code")?,
        error: row.opt_text("error")?,
        response_time_ms: row.int("response_time_ms")?,
    })
}

impl Store {
    /// An endpoint's deliveries, newest first, each with its attempts.
    pub async fn webhook_deliveries(
        &self,
        endpoint_id: &str,
        page: &Page,
    ) -> Result<(Vec<Delivery>, Option<String>), Error> {
        self.webhook_endpoint(endpoint_id).await?;
        let rows = self
            .db
            .fetch_all(
                sql("SELECT * FROM webhook_deliveries WHERE endpoint_id = $1 AND ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3")
                    .bind(endpoint_id)
                    .bind(page.after.as_deref().unwrap_or(""))
                    .bind(page.limit + 1),
            )
            .await?;
        let ids = rows.iter().map(|row| row.text("id")).collect::<Result<Vec<_>, _>>()?;
        let mut attempts = self.attempts_of(&ids).await?;
        let items = rows
            .iter()
            .zip(&ids)
            .map(|(row, id)| delivery(row, attempts.remove(id).unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(items, |d| &d.id))
    }

    /// The attempts of these deliveries, by delivery, oldest first.
    async fn attempts_of(&self, ids: &[String]) -> Result<std::collections::HashMap<String, Vec<Attempt>>, Error> {
        let mut found = std::collections::HashMap::<String, Vec<Attempt>>::new();
        if ids.is_empty() {
            return Ok(found);
        }
        let text = format!(
            "SELECT * FROM webhook_attempts WHERE delivery_id IN ({}) ORDER BY delivery_id, number",
            placeholders(1, ids.len())
        );
        let rows = self
            .db
            .fetch_all(ids.iter().fold(sql_built(text), |q, id| q.bind(id)))
            .await?;
        for row in &rows {
            found.entry(row.text("delivery_id")?).or_default().push(attempt(row)?);
        }
        Ok(found)
    }
}

// ---- fan-out: from the log to deliveries ----

/// An active endpoint behind the log.
struct Behind {
    id: String,
    events: Vec<String>,
    last_event_seq: i64,
    replay: i64,
}

impl Store {
    /// Turns the events each active endpoint has not looked at yet into pending deliveries of
    /// the matching ones. Answers how many events were looked at (0: every endpoint is caught
    /// up).
    pub async fn fan_out_webhooks(&self) -> Result<usize, Error> {
        let rows = self
            .db
            .fetch_all(sql("SELECT id, events, last_event_seq, replay FROM webhook_endpoints \
                 WHERE status = 'active' AND last_event_seq < (SELECT COALESCE(MAX(seq), 0) FROM events)"))
            .await?;
        let mut looked_at = 0;
        for row in &rows {
            let behind = Behind {
                id: row.text("id")?,
                events: row.json("events")?,
                last_event_seq: row.int("last_event_seq")?,
                replay: row.int("replay")?,
            };
            looked_at += self.fan_out_to(&behind).await?;
        }
        Ok(looked_at)
    }

    async fn fan_out_to(&self, endpoint: &Behind) -> Result<usize, Error> {
        let events = self.events_after(endpoint.last_event_seq, &[], FAN_OUT_BATCH).await?;
        let Some(last) = events.last() else {
            return Ok(0);
        };
        let now = self.now();
        let mut tx = self.db.begin().await?;
        // Moving the cursor first takes this stretch of the log for this process: another that
        // read the same cursor (or a replay meanwhile) makes this change nothing, and the
        // transaction is dropped unwritten.
        let moved = tx
            .execute(
                sql("UPDATE webhook_endpoints SET last_event_seq = $4 \
                     WHERE id = $1 AND last_event_seq = $2 AND replay = $3 AND status = 'active'")
                .bind(&endpoint.id)
                .bind(endpoint.last_event_seq)
                .bind(endpoint.replay)
                .bind(last.seq),
            )
            .await?;
        if moved == 0 {
            return Ok(0);
        }
        for event in events.iter().filter(|e| wants(&endpoint.events, &e.kind)) {
            tx.execute(
                sql("INSERT INTO webhook_deliveries (id, endpoint_id, event_seq, event_id, event_type, replay, status, attempt_count, \
                     next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7) \
                     ON CONFLICT (endpoint_id, event_id, replay) DO NOTHING")
                .bind(id::new(Kind::WebhookDelivery))
                .bind(&endpoint.id)
                .bind(event.seq)
                .bind(&event.id)
                .bind(&event.kind)
                .bind(endpoint.replay)
                .bind(now.millis()),
            )
            .await?;
        }
        self.commit(tx).await?;
        Ok(events.len())
    }
}

// ---- sending: claims and attempts ----

/// Claims due deliveries of active endpoints. PostgreSQL skips rows another process is
/// claiming right now; SQLite has one writer at a time, so the plain statement is enough.
const CLAIM_POSTGRES: &str = "UPDATE webhook_deliveries SET claimed_until = $2 WHERE id IN (\
     SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
     AND (claimed_until IS NULL OR claimed_until < $1) \
     AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE status = 'active') \
     ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING id";
const CLAIM_SQLITE: &str = "UPDATE webhook_deliveries SET claimed_until = $2 WHERE id IN (\
     SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
     AND (claimed_until IS NULL OR claimed_until < $1) \
     AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE status = 'active') \
     ORDER BY next_attempt_at LIMIT $3) RETURNING id";

impl Store {
    /// Takes up to `limit` deliveries that are due, for this process alone, for a while.
    pub async fn claim_webhook_deliveries(&self, limit: i64) -> Result<Vec<Outgoing>, Error> {
        let now = self.now();
        if !self.any_delivery_due(now).await? {
            return Ok(Vec::new());
        }
        let claim = match self.db.backend() {
            Backend::Postgres => CLAIM_POSTGRES,
            Backend::Sqlite => CLAIM_SQLITE,
        };
        let mut tx = self.db.begin().await?;
        let rows = tx
            .fetch_all(
                sql(claim)
                    .bind(now.millis())
                    .bind(now.plus_seconds(CLAIM_SECONDS).millis())
                    .bind(limit),
            )
            .await?;
        tx.commit().await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = row.text("id")?;
            match self.outgoing(&id).await {
                Ok(outgoing) => claimed.push(outgoing),
                // Its endpoint was deleted since the claim: nothing to send.
                Err(Error::NotFound(_)) => {}
                // One that cannot be read (a secret sealed with another key) holds up no other;
                // its claim runs out and it is tried again.
                Err(error) => tracing::warn!(%error, delivery = %id, "a claimed webhook delivery cannot be read"),
            }
        }
        Ok(claimed)
    }

    /// Read first, so that an idle server does not take the write lock every poll.
    async fn any_delivery_due(&self, now: Timestamp) -> Result<bool, Error> {
        let due = self
            .db
            .fetch_optional(
                sql(
                    "SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
                     AND (claimed_until IS NULL OR claimed_until < $1) \
                     AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE status = 'active') LIMIT 1",
                )
                .bind(now.millis()),
            )
            .await?;
        Ok(due.is_some())
    }

    async fn outgoing(&self, delivery_id: &str) -> Result<Outgoing, Error> {
        let row = self
            .db
            .fetch_optional(
                sql(
                    "SELECT d.event_seq, d.attempt_count, d.first_attempt_at, d.endpoint_id, e.url, e.secret, e.secret_sealed \
                     FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE d.id = $1",
                )
                .bind(delivery_id),
            )
            .await?
            .ok_or(Error::NotFound("webhook delivery"))?;
        let seq = row.int("event_seq")?;
        let event = self
            .events_after(seq - 1, &[], 1)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Corrupt(format!("delivery {delivery_id} names a missing event {seq}")))?;
        Ok(Outgoing {
            delivery_id: delivery_id.to_owned(),
            url: row.text("url")?,
            secret: self.endpoint_secret(&row)?,
            event,
            attempt: row.int("attempt_count")? + 1,
            first_attempt_at: row.opt_int("first_attempt_at")?.map(Timestamp),
        })
    }

    /// The endpoint's signing secret: opened when sealed; as it is when it was written before
    /// secrets were sealed.
    fn endpoint_secret(&self, row: &Row) -> Result<String, Error> {
        let stored = row.text("secret")?;
        if !row.bool("secret_sealed")? {
            return Ok(stored);
        }
        let opened = self.secret_key.open(&stored, &row.text("endpoint_id")?)?;
        String::from_utf8(opened).map_err(|_| Error::Corrupt("a webhook secret is not text".into()))
    }

    /// Logs an attempt and settles the delivery: succeeded on 2xx; otherwise pending until the
    /// next attempt, or failed once a day of retries has passed. Releases the claim.
    pub async fn record_webhook_attempt(&self, sent: &Outgoing, outcome: &Outcome) -> Result<DeliveryStatus, Error> {
        let first = sent.first_attempt_at.unwrap_or(outcome.at);
        let jitter = rand::random::<f64>() * 2.0 - 1.0;
        let next = next_attempt_at(first, sent.attempt, self.now(), jitter);
        let status = match (outcome.status_code.is_some_and(accepted), next) {
            (true, _) => DeliveryStatus::Succeeded,
            (false, Some(_)) => DeliveryStatus::Pending,
            (false, None) => DeliveryStatus::Failed,
        };
        let next = next.filter(|_| status == DeliveryStatus::Pending);
        let code = outcome.status_code.map(i64::from);
        let mut tx = self.db.begin().await?;
        // The count is raised in the row itself, so the attempt's number is right even if the
        // claim ran out and another process made an attempt meanwhile.
        let row = tx
            .fetch_optional(
                sql("UPDATE webhook_deliveries SET attempt_count = attempt_count + 1, status = $2, next_attempt_at = $3, \
                     first_attempt_at = COALESCE(first_attempt_at, $4), claimed_until = NULL, last_status_code = $5, \
                     last_error = $6, response_time_ms = $7, updated_at = $8 \
                     WHERE id = $1 AND status = 'pending' RETURNING attempt_count")
                .bind(&sent.delivery_id)
                .bind(status.as_str())
                .bind(next.map(Timestamp::millis))
                .bind(first.millis())
                .bind(code)
                .bind(outcome.error.as_deref())
                .bind(outcome.response_time_ms)
                .bind(self.now().millis()),
            )
            .await?;
        let Some(row) = row else {
            // Settled by another process meanwhile: its outcome stands.
            return Ok(status);
        };
        tx.execute(
            sql(
                "INSERT INTO webhook_attempts (delivery_id, number, at, status_code, error, response_time_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&sent.delivery_id)
            .bind(row.int("attempt_count")?)
            .bind(outcome.at.millis())
            .bind(code)
            .bind(outcome.error.as_deref())
            .bind(outcome.response_time_ms),
        )
        .await?;
        self.commit(tx).await?;
        Ok(status)
    }
}
