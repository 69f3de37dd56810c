//! Inventory: levels, the movement ledger, per-channel availability, reservations.
//!
//! Every change of stock is one atomic conditional write (`… WHERE on_hand - reserved >= n`),
//! never a read-then-write, so nothing is oversold with any number of server processes. The
//! database's own CHECK constraint refuses the rest.

mod stock_view;

pub(crate) use stock_view::{KnownStock, StockView};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use omnihub_domain::catalog::{Channel, Location, StockBuffer};
use omnihub_domain::events::{EventType, NewEvent};
use omnihub_domain::id::{self, Kind};
use omnihub_domain::inventory::{
    AdjustmentDraft, Allocation, ChannelStock, FewestSplits, Level, Movement, MovementReason, ReorderRow, Reservation,
    ReservationDraft, ReservationLineDraft, ReservationStatus, Sourced, SourcingStrategy, StockMap, TransferDraft,
    availability_changes, candidates, suggest_reorder,
};
use omnihub_domain::{FieldError, Invalid, Timestamp};
use serde::Serialize;

use crate::db::Page;
use crate::db::events::append;
use crate::db::writer::BoxFuture;
use crate::db::{Row, Sql, Tx, placeholders, row_inserts, sql, sql_built};
use crate::{Error, Store};

#[derive(Debug, Clone, Default)]
pub struct LevelFilter {
    pub sku: Option<String>,
    pub location_id: Option<String>,
}

/// A level whose `on_hand` is not the sum of its movements, or whose `reserved` is not what
/// its active reservations hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Discrepancy {
    pub sku: String,
    pub location_id: String,
    pub on_hand: i64,
    pub ledger_sum: i64,
    pub reserved: i64,
    pub held_by_reservations: i64,
}

fn level(row: &Row) -> Result<Level, Error> {
    Ok(Level {
        sku: row.text("sku")?,
        location_id: row.text("location_id")?,
        on_hand: row.int("on_hand")?,
        reserved: row.int("reserved")?,
        version: row.int("version")?,
    })
}

fn movement(row: &Row) -> Result<Movement, Error> {
    let reason = row.text("reason")?;
    Ok(Movement {
        id: row.text("id")?,
        sku: row.text("sku")?,
        location_id: row.text("location_id")?,
        delta: row.int("delta")?,
        reason: MovementReason::parse(&reason).ok_or_else(|| Error::Corrupt(format!("movement reason {reason}")))?,
        reference: row.opt_text("reference")?,
        on_hand_after: row.int("on_hand_after")?,
        at: Timestamp(row.int("at")?),
    })
}

// ---- the atomic writes every inventory change is made of ----

pub(crate) async fn ensure_level(tx: &mut Tx, sku: &str, location_id: &str, now: Timestamp) -> Result<(), Error> {
    tx.execute(
        sql(
            "INSERT INTO inventory_levels (sku, location_id, on_hand, reserved, version, updated_at) \
             VALUES ($1, $2, 0, 0, 0, $3) ON CONFLICT (sku, location_id) DO NOTHING",
        )
        .bind(sku)
        .bind(location_id)
        .bind(now.millis()),
    )
    .await?;
    Ok(())
}

async fn read_level(tx: &mut Tx, sku: &str, location_id: &str) -> Result<Option<Level>, Error> {
    let row = tx
        .fetch_optional(
            sql("SELECT * FROM inventory_levels WHERE sku = $1 AND location_id = $2")
                .bind(sku)
                .bind(location_id),
        )
        .await?;
    row.as_ref().map(level).transpose()
}

/// Moves `on_hand` by `delta` unless that would leave less than is reserved; records the
/// movement. Answers the new level, or `None` when refused.
pub(crate) async fn move_stock(
    tx: &mut Tx,
    sku: &str,
    location_id: &str,
    delta: i64,
    reason: MovementReason,
    reference: Option<&str>,
    now: Timestamp,
) -> Result<Option<Level>, Error> {
    let row = tx
        .fetch_optional(
            sql(
                "UPDATE inventory_levels SET on_hand = on_hand + $3, version = version + 1, updated_at = $4 \
                 WHERE sku = $1 AND location_id = $2 AND on_hand + $3 >= reserved RETURNING *",
            )
            .bind(sku)
            .bind(location_id)
            .bind(delta)
            .bind(now.millis()),
        )
        .await?;
    let Some(changed) = row.as_ref().map(level).transpose()? else {
        return Ok(None);
    };
    record_movement(tx, &changed, delta, reason, reference, now).await?;
    level_changed(tx, &changed, reason.as_str(), reference, now);
    Ok(Some(changed))
}

async fn record_movement(
    tx: &mut Tx,
    level: &Level,
    delta: i64,
    reason: MovementReason,
    reference: Option<&str>,
    now: Timestamp,
) -> Result<(), Error> {
    tx.execute(
        sql(
            "INSERT INTO inventory_movements (id, sku, location_id, delta, reason, reference, on_hand_after, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id::new(Kind::Movement))
        .bind(&level.sku)
        .bind(&level.location_id)
        .bind(delta)
        .bind(reason.as_str())
        .bind(reference)
        .bind(level.on_hand)
        .bind(now.millis()),
    )
    .await?;
    Ok(())
}

fn level_changed(tx: &mut Tx, level: &Level, cause: &str, reference: Option<&str>, now: Timestamp) {
    append(
        tx,
        now,
        NewEvent::new(
            EventType::InventoryLevelChanged,
            serde_json::json!({
                "sku": level.sku, "location_id": level.location_id, "on_hand": level.on_hand,
                "reserved": level.reserved, "available": level.available(), "cause": cause, "reference": reference,
            }),
        ),
    );
}

/// Promises `quantity` units of a level: the one conditional write that keeps stock from being
/// oversold. Answers false when they are not there (any more).
/// Promises units of a level; answers the level as changed, `None` when it has too few.
async fn hold(
    tx: &mut Tx,
    sku: &str,
    location_id: &str,
    quantity: i64,
    now: Timestamp,
) -> Result<Option<Level>, Error> {
    let row = tx
        .fetch_optional(
            sql(
                "UPDATE inventory_levels SET reserved = reserved + $3, version = version + 1, updated_at = $4 \
                 WHERE sku = $1 AND location_id = $2 AND on_hand - reserved >= $3 RETURNING *",
            )
            .bind(sku)
            .bind(location_id)
            .bind(quantity)
            .bind(now.millis()),
        )
        .await?;
    let changed = row.as_ref().map(level).transpose()?;
    if let Some(changed) = &changed {
        level_changed(tx, changed, "reserved", None, now);
    }
    Ok(changed)
}

/// Gives promised units back.
async fn unhold(
    tx: &mut Tx,
    sku: &str,
    location_id: &str,
    quantity: i64,
    cause: &str,
    now: Timestamp,
) -> Result<(), Error> {
    let row = tx
        .fetch_optional(
            sql(
                "UPDATE inventory_levels SET reserved = reserved - $3, version = version + 1, updated_at = $4 \
                 WHERE sku = $1 AND location_id = $2 AND reserved >= $3 RETURNING *",
            )
            .bind(sku)
            .bind(location_id)
            .bind(quantity)
            .bind(now.millis()),
        )
        .await?;
    let changed = row
        .as_ref()
        .map(level)
        .transpose()?
        .ok_or_else(|| Error::Corrupt(format!("level {sku} at {location_id} holds less than its reservations")))?;
    level_changed(tx, &changed, cause, None, now);
    Ok(())
}

// ---- per-channel availability ----

pub(crate) async fn channel_stock(tx: &mut Tx) -> Result<Vec<ChannelStock>, Error> {
    let rows = tx
        .fetch_all(sql(
            "SELECT c.id, c.buffer_units, c.buffer_percent, cl.location_id FROM channels c \
             LEFT JOIN channel_locations cl ON cl.channel_id = c.id ORDER BY c.id, cl.position",
        ))
        .await?;
    let mut channels: Vec<ChannelStock> = Vec::new();
    for row in &rows {
        let id = row.text("id")?;
        let location = row.opt_text("location_id")?;
        if channels.last().is_none_or(|last| last.id != id) {
            channels.push(ChannelStock {
                id,
                buffer: StockBuffer {
                    units: row.opt_int("buffer_units")?,
                    percent: row.opt_int("buffer_percent")?,
                },
                locations: Vec::new(),
            });
        }
        if let (Some(location), Some(last)) = (location, channels.last_mut()) {
            last.locations.push(location);
        }
    }
    Ok(channels)
}

/// What is available of the given SKUs, at every location.
pub(crate) async fn stock_of(tx: &mut Tx, skus: &BTreeSet<String>) -> Result<StockMap, Error> {
    let mut stock = StockMap::new();
    if skus.is_empty() {
        return Ok(stock);
    }
    let text = format!(
        "SELECT sku, location_id, on_hand, reserved FROM inventory_levels WHERE sku IN ({})",
        placeholders(1, skus.len())
    );
    let rows = tx
        .fetch_all(skus.iter().fold(sql_built(text), |q, s| q.bind(s)))
        .await?;
    for row in &rows {
        let available = (row.int("on_hand")? - row.int("reserved")?).max(0);
        stock
            .entry(row.text("sku")?)
            .or_default()
            .insert(row.text("location_id")?, available);
    }
    Ok(stock)
}

/// Remembers what each channel may sell of some SKUs, to announce what a change altered.
pub(crate) struct AvailabilityWatch {
    skus: BTreeSet<String>,
    before: StockMap,
}

impl AvailabilityWatch {
    pub(crate) async fn start(tx: &mut Tx, skus: impl IntoIterator<Item = String>) -> Result<Self, Error> {
        let skus: BTreeSet<String> = skus.into_iter().collect();
        let before = stock_of(tx, &skus).await?;
        Ok(AvailabilityWatch { skus, before })
    }

    /// Appends `availability.changed` for every channel whose sellable quantity changed.
    pub(crate) async fn finish(self, tx: &mut Tx, now: Timestamp) -> Result<(), Error> {
        let after = stock_of(tx, &self.skus).await?;
        announce_availability(tx, &self.skus, &self.before, &after, now).await
    }
}

/// Appends `availability.changed` for every channel that may sell a different quantity of one
/// of `skus` after than before.
async fn announce_availability(
    tx: &mut Tx,
    skus: &BTreeSet<String>,
    before: &StockMap,
    after: &StockMap,
    now: Timestamp,
) -> Result<(), Error> {
    let channels = channel_stock(tx).await?;
    announce_to(tx, &channels, skus, before, after, now);
    Ok(())
}

/// The same for the given channels.
fn announce_to(
    tx: &mut Tx,
    channels: &[ChannelStock],
    skus: &BTreeSet<String>,
    before: &StockMap,
    after: &StockMap,
    now: Timestamp,
) {
    for change in availability_changes(channels, skus, before, after) {
        append(tx, now, NewEvent::new(EventType::AvailabilityChanged, &change));
    }
}

// ---- checks shared by the operations ----

async fn check_sku_exists(tx: &mut Tx, field: &str, sku: &str) -> Result<(), Error> {
    let found = tx.fetch_optional(variant_of(sku)).await?;
    found.map(drop).ok_or_else(|| unknown_sku(field, sku))
}

fn variant_of(sku: &str) -> Sql {
    sql("SELECT id FROM variants WHERE sku = $1").bind(sku)
}

fn unknown_sku(field: &str, sku: &str) -> Error {
    Invalid::one(field, "not_found", format!("no variant has the SKU {sku}")).into()
}

async fn check_location_exists(tx: &mut Tx, field: &str, location_id: &str) -> Result<(), Error> {
    match tx
        .fetch_optional(sql("SELECT id FROM locations WHERE id = $1").bind(location_id))
        .await?
    {
        Some(_) => Ok(()),
        None => Err(Invalid::one(field, "not_found", format!("there is no location {location_id}")).into()),
    }
}

impl Store {
    pub async fn levels(&self, filter: &LevelFilter, page: &Page) -> Result<(Vec<Level>, Option<String>), Error> {
        // The cursor is "sku\tlocation_id" of the last level of the previous page.
        let after = page.after.clone().unwrap_or_default();
        let (after_sku, after_location) = after.split_once('\t').unwrap_or((after.as_str(), ""));
        let rows = self
            .db
            .fetch_all(
                sql(
                    "SELECT * FROM inventory_levels WHERE ($1 = '' OR sku = $1) AND ($2 = '' OR location_id = $2) \
                     AND (sku > $3 OR (sku = $3 AND location_id > $4)) ORDER BY sku, location_id LIMIT $5",
                )
                .bind(filter.sku.as_deref().unwrap_or(""))
                .bind(filter.location_id.as_deref().unwrap_or(""))
                .bind(after_sku)
                .bind(after_location)
                .bind(page.limit + 1),
            )
            .await?;
        let levels = rows.iter().map(level).collect::<Result<Vec<_>, _>>()?;
        let (levels, next) = page.finish(levels, |l| &l.sku);
        let next = next.and(levels.last().map(|l| format!("{}\t{}", l.sku, l.location_id)));
        Ok((levels, next))
    }

    /// Changes what is on hand at a location, with its reason, in the ledger.
    pub async fn adjust_stock(&self, draft: AdjustmentDraft) -> Result<Level, Error> {
        draft.validate()?;
        let clock = self.clock.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let now = clock.now();
                check_sku_exists(tx, "sku", &draft.sku).await?;
                check_location_exists(tx, "location_id", &draft.location_id).await?;
                ensure_level(tx, &draft.sku, &draft.location_id, now).await?;
                let watch = AvailabilityWatch::start(tx, [draft.sku.clone()]).await?;
                let current = read_level(tx, &draft.sku, &draft.location_id)
                    .await?
                    .ok_or(Error::NotFound("inventory level"))?;
                let delta = draft.resolve_delta(&current)?;
                // `set_on_hand` was worked out from `current`: the write only goes through if that is
                // still what is on hand.
                let expected = current.on_hand;
                let changed = if delta == 0 {
                    current
                } else {
                    let updated = move_stock(
                        tx,
                        &draft.sku,
                        &draft.location_id,
                        delta,
                        draft.reason,
                        draft.reference.as_deref(),
                        now,
                    )
                    .await?
                    .ok_or_else(|| {
                        Invalid::one("delta", "below_reserved", "would leave less on hand than is reserved")
                    })?;
                    if draft.set_on_hand.is_some() && updated.on_hand - delta != expected {
                        return Err(Error::Conflict("the stock changed while it was counted; retry".into()));
                    }
                    updated
                };
                watch.finish(tx, now).await?;
                Ok(changed)
            })
        })
        .await
    }

    /// Moves stock from one location to another: out of one, into the other, atomically.
    pub async fn transfer_stock(&self, draft: TransferDraft) -> Result<(Level, Level), Error> {
        draft.validate()?;
        let clock = self.clock.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let now = clock.now();
                check_sku_exists(tx, "sku", &draft.sku).await?;
                check_location_exists(tx, "from_location_id", &draft.from_location_id).await?;
                check_location_exists(tx, "to_location_id", &draft.to_location_id).await?;
                ensure_level(tx, &draft.sku, &draft.from_location_id, now).await?;
                ensure_level(tx, &draft.sku, &draft.to_location_id, now).await?;
                let watch = AvailabilityWatch::start(tx, [draft.sku.clone()]).await?;
                let reference = draft.reference.as_deref();
                let from = move_stock(
                    tx,
                    &draft.sku,
                    &draft.from_location_id,
                    -draft.quantity,
                    MovementReason::TransferOut,
                    reference,
                    now,
                )
                .await?
                .ok_or_else(|| {
                    Error::InsufficientStock(vec![FieldError {
                        field: "quantity".into(),
                        code: "insufficient_stock".into(),
                        message: format!(
                            "{} units of {} are not free to move at the source",
                            draft.quantity, draft.sku
                        ),
                    }])
                })?;
                let to = move_stock(
                    tx,
                    &draft.sku,
                    &draft.to_location_id,
                    draft.quantity,
                    MovementReason::TransferIn,
                    reference,
                    now,
                )
                .await?
                .ok_or(Error::Conflict("the destination refused the stock".into()))?;
                watch.finish(tx, now).await?;
                Ok((from, to))
            })
        })
        .await
    }

    pub async fn movements(&self, filter: &LevelFilter, page: &Page) -> Result<(Vec<Movement>, Option<String>), Error> {
        let rows = self
            .db
            .fetch_all(
                sql(
                    "SELECT * FROM inventory_movements WHERE ($1 = '' OR sku = $1) AND ($2 = '' OR location_id = $2) \
                     AND id > $3 ORDER BY id LIMIT $4",
                )
                .bind(filter.sku.as_deref().unwrap_or(""))
                .bind(filter.location_id.as_deref().unwrap_or(""))
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.limit + 1),
            )
            .await?;
        let items = rows.iter().map(movement).collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(items, |m| &m.id))
    }
}

// ---- reservations ----

/// Where a reservation may take stock from, and how to choose.
pub struct Sourcing<'a> {
    /// The locations allowed (for a plain reservation: all the channel's).
    pub locations: Vec<Location>,
    /// Distance of each location to the customer, when known.
    pub distances: BTreeMap<String, f64>,
    pub strategy: &'a dyn SourcingStrategy,
}

impl Store {
    pub async fn reserve(&self, draft: ReservationDraft) -> Result<Reservation, Error> {
        draft.validate()?;
        let channel = self.channel(&draft.channel_id).await.map_err(|e| match e {
            Error::NotFound(_) => Invalid::one("channel_id", "not_found", "there is no such sales channel").into(),
            other => other,
        })?;
        for (i, line) in draft.lines.iter().enumerate() {
            if let Some(location) = &line.location_id
                && !channel.draft.location_ids.contains(location)
            {
                return Err(Invalid::one(
                    format!("lines[{i}].location_id"),
                    "not_in_channel",
                    "this channel does not sell from that location",
                )
                .into());
            }
        }
        let skus: Vec<&str> = draft.lines.iter().map(|l| l.sku.as_str()).collect();
        self.check_skus_exist(&skus).await?;
        let locations = Arc::new(self.channel_locations(&channel).await?);
        let (channel, draft) = (Arc::new(channel), Arc::new(draft));
        let wanted = draft.lines.iter().map(|l| l.sku.clone()).collect();
        self.write_taking_stock("reserve", &wanted, |known| {
            let (channel, draft, clock) = (channel.clone(), draft.clone(), self.clock.clone());
            let locations = locations.clone();
            move |tx: &mut Tx| -> BoxFuture<'_, Result<Reservation, Error>> {
                Box::pin(async move {
                    let now = clock.now();
                    let sourcing = Sourcing {
                        locations: locations.to_vec(),
                        distances: BTreeMap::new(),
                        strategy: &FewestSplits,
                    };
                    let expires_at = Some(draft.expires_at(now));
                    let planned = plan_reservation(
                        tx,
                        &channel,
                        &draft.lines,
                        &sourcing,
                        draft.reference.as_deref(),
                        expires_at,
                        now,
                        known,
                    )
                    .await?;
                    let reservation = take_stock(tx, planned, now).await?;
                    append(tx, now, NewEvent::new(EventType::ReservationCreated, &reservation));
                    Ok(reservation)
                })
            }
        })
        .await
    }

    /// Refuses lines naming a SKU that no variant has (field `lines[i].sku`).
    pub(crate) async fn check_skus_exist(&self, skus: &[&str]) -> Result<(), Error> {
        for (i, sku) in skus.iter().enumerate() {
            if self.db.fetch_by_key(variant_of(sku)).await?.is_empty() {
                return Err(unknown_sku(&format!("lines[{i}].sku"), sku));
            }
        }
        Ok(())
    }

    pub async fn reservation(&self, id: &str) -> Result<Reservation, Error> {
        let mut tx = self.db.begin_read().await?;
        read_reservation(&mut tx, id).await
    }

    /// Gives a reservation's stock back (status `released`).
    pub async fn release_reservation(&self, id: &str) -> Result<Reservation, Error> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let released = end_reservation(&mut tx, id, ReservationStatus::Released, now).await?;
        let Some(reservation) = released else {
            let current = read_reservation(&mut tx, id).await?;
            return Err(Error::Conflict(format!(
                "the reservation is already {}",
                current.status.as_str()
            )));
        };
        self.commit(tx).await?;
        Ok(reservation)
    }

    /// Up to 100 active reservations past their time, the oldest first.
    pub(crate) async fn due_reservations(&self, now: Timestamp) -> Result<Vec<String>, Error> {
        let due = self
            .db
            .fetch_all(
                sql("SELECT id FROM reservations WHERE status = 'active' AND expires_at IS NOT NULL AND expires_at <= $1 \
                     ORDER BY expires_at LIMIT 100")
                .bind(now.millis()),
            )
            .await?;
        due.iter().map(|row| row.text("id")).collect()
    }
}

/// A reservation written and waiting for its stock to be taken.
pub(crate) struct PlannedReservation {
    pub(crate) reservation: Reservation,
    skus: BTreeSet<String>,
    stock: StockMap,
    channels: Vec<ChannelStock>,
}

/// Plans where the lines come from and writes the reservation, without taking the stock yet:
/// a level taken stays locked until the commit, so callers take stock ([`take_stock`]) as the
/// last thing they write. The SKUs must exist (a SKU without a level plans as out of stock).
///
/// The plan is made with what the stock view `known` if given, else with the database. Only
/// the database refuses: a plan the view cannot make answers [`Error::StockMoved`], so that
/// the write is planned again from the database.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn plan_reservation(
    tx: &mut Tx,
    channel: &Channel,
    lines: &[ReservationLineDraft],
    sourcing: &Sourcing<'_>,
    reference: Option<&str>,
    expires_at: Option<Timestamp>,
    now: Timestamp,
    known: Option<KnownStock>,
) -> Result<PlannedReservation, Error> {
    let skus: BTreeSet<String> = lines.iter().map(|l| l.sku.clone()).collect();
    let (stock, channels) = match known {
        Some(known) => (known.stock, Some(known.channels)),
        None => (stock_of(tx, &skus).await?, None),
    };
    let sourced = match plan_lines(channel, lines, sourcing, &stock) {
        Err(Error::InsufficientStock(_)) if channels.is_some() => return Err(Error::StockMoved),
        planned => planned?,
    };
    let reservation = Reservation {
        id: id::new(Kind::Reservation),
        channel_id: channel.id.clone(),
        status: ReservationStatus::Active,
        reference: reference.map(str::to_owned),
        lines: sourced,
        expires_at: expires_at.unwrap_or(Timestamp(i64::MAX)),
        created_at: now,
    };
    write_reservation(tx, &reservation, expires_at, now).await?;
    let channels = match channels {
        Some(channels) => channels,
        None => channel_stock(tx).await?,
    };
    Ok(PlannedReservation {
        reservation,
        skus,
        stock,
        channels,
    })
}

/// Where each line comes from, within the channel's buffer.
fn plan_lines(
    channel: &Channel,
    lines: &[ReservationLineDraft],
    sourcing: &Sourcing<'_>,
    stock: &StockMap,
) -> Result<Vec<Sourced>, Error> {
    let candidates = candidates(&sourcing.locations, &sourcing.distances, stock);
    let sourced = sourcing
        .strategy
        .source(lines, &candidates)
        .map_err(|short| Error::InsufficientStock(short.field_errors(lines)))?;
    let beyond = ChannelStock::of(channel).beyond_sellable(lines, stock);
    if !beyond.is_empty() {
        return Err(Error::InsufficientStock(beyond));
    }
    Ok(sourced)
}

/// Takes the planned stock. Stock that moved since it was planned answers
/// [`Error::StockMoved`], which undoes the whole write, so a caller may plan again.
pub(crate) async fn take_stock(tx: &mut Tx, planned: PlannedReservation, now: Timestamp) -> Result<Reservation, Error> {
    // Take levels in one order (SKU, location) so two reservations never wait on each other.
    let mut takes: Vec<(&str, &str, i64)> = planned
        .reservation
        .lines
        .iter()
        .flat_map(|line| {
            line.allocations
                .iter()
                .map(move |a| (line.sku.as_str(), a.location_id.as_str(), a.quantity))
        })
        .collect();
    takes.sort();
    // What the channels could sell before and after, from the held levels as changed (another
    // writer may have moved them since the plan read them).
    let (mut before, mut after) = (planned.stock.clone(), planned.stock);
    for (sku, location, quantity) in takes {
        let held = hold(tx, sku, location, quantity, now).await?.ok_or(Error::StockMoved)?;
        let available = held.on_hand - held.reserved;
        let at = |map: &mut StockMap, n: i64| {
            map.entry(sku.to_owned())
                .or_default()
                .insert(location.to_owned(), n.max(0));
        };
        at(&mut before, available + quantity);
        at(&mut after, available);
    }
    announce_to(tx, &planned.channels, &planned.skus, &before, &after, now);
    Ok(planned.reservation)
}

async fn write_reservation(
    tx: &mut Tx,
    reservation: &Reservation,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<(), Error> {
    tx.defer(
        sql(
            "INSERT INTO reservations (id, channel_id, status, reference, expires_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&reservation.id)
        .bind(&reservation.channel_id)
        .bind(reservation.status.as_str())
        .bind(reservation.reference.as_deref())
        .bind(expires_at.map(Timestamp::millis))
        .bind(now.millis()),
    )
    .await?;
    let allocations: Vec<(i64, &str, &Allocation)> = reservation
        .lines
        .iter()
        .enumerate()
        .flat_map(|(line_no, line)| {
            line.allocations
                .iter()
                .map(move |a| (line_no as i64, line.sku.as_str(), a))
        })
        .collect();
    let head = "INSERT INTO reservation_allocations (reservation_id, line_no, sku, location_id, quantity, taken)";
    let inserts = row_inserts(
        head,
        6,
        "",
        allocations.into_iter(),
        |insert, (line_no, sku, allocation)| {
            insert
                .bind(&reservation.id)
                .bind(line_no)
                .bind(sku)
                .bind(&allocation.location_id)
                .bind(allocation.quantity)
                .bind(0_i64)
        },
    );
    for insert in inserts {
        tx.defer(insert).await?;
    }
    Ok(())
}

pub(crate) async fn read_reservation(tx: &mut Tx, id: &str) -> Result<Reservation, Error> {
    let row = tx
        .fetch_optional(sql("SELECT * FROM reservations WHERE id = $1").bind(id))
        .await?
        .ok_or(Error::NotFound("reservation"))?;
    let status = row.text("status")?;
    let allocations = tx
        .fetch_all(
            sql("SELECT * FROM reservation_allocations WHERE reservation_id = $1 ORDER BY line_no, location_id")
                .bind(id),
        )
        .await?;
    let mut lines: Vec<Sourced> = Vec::new();
    let mut last_line = -1;
    for a in &allocations {
        let line_no = a.int("line_no")?;
        let allocation = Allocation {
            location_id: a.text("location_id")?,
            quantity: a.int("quantity")?,
        };
        match lines.last_mut() {
            Some(line) if line_no == last_line => {
                line.quantity += allocation.quantity;
                line.allocations.push(allocation);
            }
            _ => lines.push(Sourced {
                sku: a.text("sku")?,
                quantity: allocation.quantity,
                allocations: vec![allocation],
            }),
        }
        last_line = line_no;
    }
    Ok(Reservation {
        id: row.text("id")?,
        channel_id: row.text("channel_id")?,
        status: ReservationStatus::parse(&status)
            .ok_or_else(|| Error::Corrupt(format!("reservation status {status}")))?,
        reference: row.opt_text("reference")?,
        lines,
        expires_at: Timestamp(row.opt_int("expires_at")?.unwrap_or(i64::MAX)),
        created_at: Timestamp(row.int("created_at")?),
    })
}

/// Ends an active reservation and gives back what it still holds. `None` when it was not
/// active (someone else ended it first).
pub(crate) async fn end_reservation(
    tx: &mut Tx,
    id: &str,
    status: ReservationStatus,
    now: Timestamp,
) -> Result<Option<Reservation>, Error> {
    // An expiry flips only a reservation still due: one given more time since (its order was
    // paid) stays.
    let flip = match status {
        ReservationStatus::Expired => sql(
            "UPDATE reservations SET status = $2, updated_at = $3 WHERE id = $1 AND status = 'active' \
             AND expires_at IS NOT NULL AND expires_at <= $3",
        ),
        _ => sql("UPDATE reservations SET status = $2, updated_at = $3 WHERE id = $1 AND status = 'active'"),
    };
    let flipped = tx
        .execute(flip.bind(id).bind(status.as_str()).bind(now.millis()))
        .await?;
    if flipped == 0 {
        read_reservation(tx, id).await?;
        return Ok(None);
    }
    let held = tx
        .fetch_all(sql("SELECT sku, location_id, quantity - taken AS held FROM reservation_allocations WHERE reservation_id = $1 ORDER BY sku, location_id").bind(id))
        .await?;
    let skus = held.iter().map(|r| r.text("sku")).collect::<Result<Vec<_>, _>>()?;
    let watch = AvailabilityWatch::start(tx, skus).await?;
    for row in &held {
        let quantity = row.int("held")?;
        if quantity > 0 {
            unhold(
                tx,
                &row.text("sku")?,
                &row.text("location_id")?,
                quantity,
                status.as_str(),
                now,
            )
            .await?;
        }
    }
    watch.finish(tx, now).await?;
    let reservation = read_reservation(tx, id).await?;
    let kind = if status == ReservationStatus::Expired {
        EventType::ReservationExpired
    } else {
        EventType::ReservationReleased
    };
    append(tx, now, NewEvent::new(kind, &reservation));
    Ok(Some(reservation))
}

/// Takes away `quantity` held units of a reservation at a location: they leave the shelf as a
/// sale. When everything held is taken, the reservation is `consumed`.
pub(crate) async fn take_reserved(
    tx: &mut Tx,
    reservation_id: &str,
    sku: &str,
    location_id: &str,
    quantity: i64,
    reference: &str,
    now: Timestamp,
) -> Result<(), Error> {
    let taken = tx
        .execute(
            sql("UPDATE reservation_allocations SET taken = taken + $4 \
                 WHERE reservation_id = $1 AND sku = $2 AND location_id = $3 AND quantity - taken >= $4")
            .bind(reservation_id)
            .bind(sku)
            .bind(location_id)
            .bind(quantity),
        )
        .await?;
    if taken != 1 {
        return Err(Error::Conflict(format!(
            "{quantity} units of {sku} are not held at {location_id} for this order"
        )));
    }
    let row = tx
        .fetch_optional(
            sql("UPDATE inventory_levels SET on_hand = on_hand - $3, reserved = reserved - $3, version = version + 1, updated_at = $4 \
                 WHERE sku = $1 AND location_id = $2 AND reserved >= $3 RETURNING *")
            .bind(sku)
            .bind(location_id)
            .bind(quantity)
            .bind(now.millis()),
        )
        .await?;
    let level = row
        .as_ref()
        .map(level)
        .transpose()?
        .ok_or_else(|| Error::Corrupt(format!("level {sku} at {location_id} holds less than its reservations")))?;
    record_movement(tx, &level, -quantity, MovementReason::Sale, Some(reference), now).await?;
    level_changed(tx, &level, MovementReason::Sale.as_str(), Some(reference), now);
    tx.execute(
        sql(
            "UPDATE reservations SET status = 'consumed', updated_at = $2 WHERE id = $1 AND status = 'active' \
             AND NOT EXISTS (SELECT 1 FROM reservation_allocations WHERE reservation_id = $1 AND taken < quantity)",
        )
        .bind(reservation_id)
        .bind(now.millis()),
    )
    .await?;
    Ok(())
}

// ---- checks and suggestions ----

impl Store {
    /// Every level whose on-hand is not the sum of its movements or whose reserved units are
    /// not what its active reservations hold. Empty when all is well.
    pub async fn check_inventory(&self) -> Result<Vec<Discrepancy>, Error> {
        let rows = self
            .db
            .fetch_all(sql(
                "SELECT l.sku, l.location_id, l.on_hand, l.reserved, \
                   CAST(COALESCE((SELECT SUM(m.delta) FROM inventory_movements m WHERE m.sku = l.sku AND m.location_id = l.location_id), 0) AS BIGINT) AS ledger, \
                   CAST(COALESCE((SELECT SUM(a.quantity - a.taken) FROM reservation_allocations a JOIN reservations r ON r.id = a.reservation_id \
                                  WHERE r.status = 'active' AND a.sku = l.sku AND a.location_id = l.location_id), 0) AS BIGINT) AS held \
                 FROM inventory_levels l ORDER BY l.sku, l.location_id",
            ))
            .await?;
        let mut found = Vec::new();
        for row in &rows {
            let (on_hand, ledger, reserved, held) = (
                row.int("on_hand")?,
                row.int("ledger")?,
                row.int("reserved")?,
                row.int("held")?,
            );
            if on_hand != ledger || reserved != held {
                found.push(Discrepancy {
                    sku: row.text("sku")?,
                    location_id: row.text("location_id")?,
                    on_hand,
                    ledger_sum: ledger,
                    reserved,
                    held_by_reservations: held,
                });
            }
        }
        Ok(found)
    }

    /// Reorder suggestions for a location from its sales over the last `window_days`.
    pub async fn replenishment(
        &self,
        location_id: &str,
        window_days: i64,
        lead_time_days: i64,
        safety_stock: i64,
        review_days: i64,
    ) -> Result<Vec<ReorderRow>, Error> {
        self.location(location_id).await?;
        let since = self.now().plus_seconds(-window_days * 86_400);
        let rows = self
            .db
            .fetch_all(
                sql("SELECT l.sku, l.location_id, l.on_hand, l.reserved, \
                       CAST(COALESCE((SELECT -SUM(m.delta) FROM inventory_movements m WHERE m.sku = l.sku AND m.location_id = l.location_id \
                                      AND m.reason = 'sale' AND m.at >= $2), 0) AS BIGINT) AS sold \
                     FROM inventory_levels l WHERE l.location_id = $1 ORDER BY l.sku")
                .bind(location_id)
                .bind(since.millis()),
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let available = (row.int("on_hand")? - row.int("reserved")?).max(0);
            let sold = row.int("sold")?;
            out.push(ReorderRow {
                sku: row.text("sku")?,
                location_id: row.text("location_id")?,
                available,
                units_sold: sold,
                reorder: suggest_reorder(sold, window_days, lead_time_days, safety_stock, review_days, available),
            });
        }
        // Fast movers first.
        out.sort_by(|a, b| {
            b.reorder
                .velocity_per_day_milli
                .cmp(&a.reorder.velocity_per_day_milli)
                .then(a.sku.cmp(&b.sku))
        });
        Ok(out)
    }
}

impl Store {
    /// How many SKUs nobody can sell now: nothing free at any location.
    pub async fn stock_out_count(&self) -> Result<i64, Error> {
        let row = self
            .db
            .fetch_optional(sql(
                "SELECT COUNT(*) AS n FROM variants v WHERE COALESCE((SELECT SUM(l.on_hand - l.reserved) \
                 FROM inventory_levels l WHERE l.sku = v.sku), 0) <= 0",
            ))
            .await?;
        row.map_or(Ok(0), |r| r.int("n"))
    }

    /// The SKUs nobody can sell now, at most `limit`, in SKU order.
    pub async fn stock_outs(&self, limit: i64) -> Result<Vec<String>, Error> {
        let rows = self
            .db
            .fetch_all(
                sql(
                    "SELECT v.sku FROM variants v WHERE COALESCE((SELECT SUM(l.on_hand - l.reserved) \
                     FROM inventory_levels l WHERE l.sku = v.sku), 0) <= 0 ORDER BY v.sku LIMIT $1",
                )
                .bind(limit),
            )
            .await?;
        rows.iter().map(|row| row.text("sku")).collect()
    }

    /// The newest `limit` movements of the ledger, newest first.
    pub async fn latest_movements(&self, filter: &LevelFilter, limit: i64) -> Result<Vec<Movement>, Error> {
        let rows = self
            .db
            .fetch_all(
                sql(
                    "SELECT * FROM inventory_movements WHERE ($1 = '' OR sku = $1) AND ($2 = '' OR location_id = $2) \
                     ORDER BY id DESC LIMIT $3",
                )
                .bind(filter.sku.as_deref().unwrap_or(""))
                .bind(filter.location_id.as_deref().unwrap_or(""))
                .bind(limit),
            )
            .await?;
        rows.iter().map(movement).collect()
    }
}
