//! Returns at any location: the goods back on a shelf, the refund and the points reckoned.

use omnihub_domain::Invalid;
use omnihub_domain::customers::{LoyaltyProgram, LoyaltyReason};
use omnihub_domain::events::{EventType, NewEvent};
use omnihub_domain::id::{self, Kind};
use omnihub_domain::inventory::MovementReason;
use omnihub_domain::orders::{ItemLine, Order, check_item_lines};

use super::fulfilment::refresh_status;
use super::points::{give_back_points, take_back};
use super::reading::read_order;
use crate::db::events::append;
use crate::db::sql;
use crate::inventory::{ensure_level, move_stock};
use crate::{Error, Store};

impl Store {
    /// Takes goods back at any location, for an order of any channel: restocked there or not,
    /// the refund worked out from what was paid.
    pub async fn return_items(
        &self,
        order_id: &str,
        location_id: &str,
        lines: &[ItemLine],
        restock: bool,
        reason: &str,
    ) -> Result<Order, Error> {
        check_item_lines(lines)?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let order = read_order(&mut tx, order_id).await?;
        if !order.status.can_return() {
            return Err(Error::Conflict(format!(
                "an order that is {} has nothing to return",
                order.status.as_str()
            )));
        }
        if tx
            .fetch_optional(sql("SELECT id FROM locations WHERE id = $1").bind(location_id))
            .await?
            .is_none()
        {
            return Err(Invalid::one("location_id", "not_found", "there is no such location").into());
        }
        let return_id = id::new(Kind::Return);
        let split = order.refund_of(lines, &LoyaltyProgram::default())?;
        let total_refund = split.cash_total();
        let priced: Vec<(&ItemLine, i64)> = lines.iter().zip(split.cash.iter().copied()).collect();
        tx.execute(
            sql("INSERT INTO returns (id, order_id, location_id, restock, reason, refund_amount, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                .bind(&return_id)
                .bind(order_id)
                .bind(location_id)
                .bind(restock)
                .bind(reason)
                .bind(total_refund)
                .bind(now.millis()),
        )
        .await?;
        for (line_no, (line, amount)) in priced.iter().enumerate() {
            tx.execute(
                sql("INSERT INTO return_lines (return_id, line_no, sku, quantity, refund_amount) VALUES ($1, $2, $3, $4, $5)")
                    .bind(&return_id)
                    .bind(line_no as i64)
                    .bind(&line.sku)
                    .bind(line.quantity)
                    .bind(*amount),
            )
            .await?;
            if restock {
                ensure_level(&mut tx, &line.sku, location_id, now).await?;
                let watch = crate::inventory::AvailabilityWatch::start(&mut tx, [line.sku.clone()]).await?;
                move_stock(
                    &mut tx,
                    &line.sku,
                    location_id,
                    line.quantity,
                    MovementReason::Return,
                    Some(&order.number),
                    now,
                )
                .await?;
                watch.finish(&mut tx, now).await?;
            }
        }
        give_back_points(&mut tx, &order, split.points, LoyaltyReason::RedemptionReturned, now).await?;
        take_back(&mut tx, &order, total_refund, now).await?;
        let updated = refresh_status(&mut tx, order_id, now).await?;
        let record = updated.returns.iter().find(|r| r.id == return_id).cloned();
        append(
            &mut tx,
            now,
            NewEvent::new(
                EventType::ReturnReceived,
                serde_json::json!({"order_id": order_id, "order_number": updated.number, "customer_id": updated.customer_id, "return": record}),
            ),
        );
        self.commit(tx).await?;
        Ok(updated)
    }
}
