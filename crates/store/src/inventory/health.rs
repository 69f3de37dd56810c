//! Whether the stock adds up and what needs doing: the ledger checked against the levels,
//! what to reorder, what nobody can sell, the newest movements.

use omnihub_domain::inventory::{Movement, ReorderRow, suggest_reorder};
use serde::Serialize;

use super::levels::{LevelFilter, movement};
use crate::db::sql;
use crate::{Error, Store};

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
