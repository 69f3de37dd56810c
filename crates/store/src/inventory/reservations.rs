//! Reservations: stock held for a channel, planned from the channel's locations within its
//! buffer, taken as the last thing a write does, released, expired or consumed by a sale.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use omnihub_domain::catalog::{Channel, Location};
use omnihub_domain::events::{EventType, NewEvent};
use omnihub_domain::id::{self, Kind};
use omnihub_domain::inventory::{
    Allocation, ChannelStock, FewestSplits, MovementReason, Reservation, ReservationDraft, ReservationLineDraft,
    ReservationStatus, Sourced, SourcingStrategy, StockMap, candidates,
};
use omnihub_domain::{Invalid, Timestamp};

use super::availability::{AvailabilityWatch, announce_to, channel_stock, stock_of};
use super::levels::{hold, level, level_changed, record_movement, unhold, unknown_sku, variant_of};
use super::stock_view::KnownStock;
use crate::db::events::append;
use crate::db::writer::BoxFuture;
use crate::db::{Tx, row_inserts, sql};
use crate::{Error, Store};

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
pub(super) fn plan_lines(
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

pub(super) async fn write_reservation(
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
