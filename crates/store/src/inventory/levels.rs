//! Stock levels per SKU and location, and the ledger of every movement: adjustments,
//! transfers, and the holds and takes that reservations and sales make.

use omnihub_domain::events::{EventType, NewEvent};
use omnihub_domain::id::{self, Kind};
use omnihub_domain::inventory::{AdjustmentDraft, Level, Movement, MovementReason, TransferDraft};
use omnihub_domain::{FieldError, Invalid, Timestamp};

use super::availability::AvailabilityWatch;
use crate::db::Page;
use crate::db::events::append;
use crate::db::{Row, Sql, Tx, sql};
use crate::{Error, Store};

#[derive(Debug, Clone, Default)]
pub struct LevelFilter {
    pub sku: Option<String>,
    pub location_id: Option<String>,
}

pub(super) fn level(row: &Row) -> Result<Level, Error> {
    Ok(Level {
        sku: row.text("sku")?,
        location_id: row.text("location_id")?,
        on_hand: row.int("on_hand")?,
        reserved: row.int("reserved")?,
        version: row.int("version")?,
    })
}

pub(super) fn movement(row: &Row) -> Result<Movement, Error> {
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

pub(super) async fn read_level(tx: &mut Tx, sku: &str, location_id: &str) -> Result<Option<Level>, Error> {
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

pub(super) async fn record_movement(
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

pub(super) fn level_changed(tx: &mut Tx, level: &Level, cause: &str, reference: Option<&str>, now: Timestamp) {
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
pub(super) async fn hold(
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
pub(super) async fn unhold(
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

pub(super) async fn check_sku_exists(tx: &mut Tx, field: &str, sku: &str) -> Result<(), Error> {
    let found = tx.fetch_optional(variant_of(sku)).await?;
    found.map(drop).ok_or_else(|| unknown_sku(field, sku))
}

pub(super) fn variant_of(sku: &str) -> Sql {
    sql("SELECT id FROM variants WHERE sku = $1").bind(sku)
}

pub(super) fn unknown_sku(field: &str, sku: &str) -> Error {
    Invalid::one(field, "not_found", format!("no variant has the SKU {sku}")).into()
}

pub(super) async fn check_location_exists(tx: &mut Tx, field: &str, location_id: &str) -> Result<(), Error> {
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
