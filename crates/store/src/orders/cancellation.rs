//! Orders that end before they are served: cancelled by staff or the buyer, cancelled when
//! their hold lapses, or kept by being paid.

use omnihub_domain::Timestamp;
use omnihub_domain::customers::LoyaltyReason;
use omnihub_domain::events::{EventType, NewEvent};
use omnihub_domain::inventory::ReservationStatus;
use omnihub_domain::orders::{
    FulfillmentStatus, Order, PaymentStatus, Status, check_mark_paid, hold_once_paid, lapse_reason,
};

use super::points::{erased, give_back_points};
use super::reading::{check_version, order_reservation, parse, read_order};
use super::unpaid::uncount_unpaid;
use crate::customers::timeline;
use crate::db::events::append;
use crate::db::{Sql, Tx, placeholders, sql, sql_built};
use crate::inventory::end_reservation;
use crate::{Error, Store};

impl Store {
    /// Ends every reservation past its time (status `expired`) and cancels the order it held
    /// stock for, if any. Safe on several nodes at once: each reservation's status flips in a
    /// conditional write only one of them wins.
    pub async fn expire_reservations(&self) -> Result<usize, Error> {
        let now = self.now();
        let mut expired = 0;
        for id in self.due_reservations(now).await? {
            let mut tx = self.db.begin().await?;
            if end_reservation(&mut tx, &id, ReservationStatus::Expired, now)
                .await?
                .is_some()
            {
                hold_lapsed(&mut tx, &id, now).await?;
                self.commit(tx).await?;
                expired += 1;
            }
        }
        Ok(expired)
    }
}

/// Cancels an order whose hold lapsed: a reserve-in-store order not collected, a storefront's
/// order not paid in time.
pub(super) async fn hold_lapsed(tx: &mut Tx, reservation_id: &str, now: Timestamp) -> Result<(), Error> {
    let rows = tx
        .fetch_all(sql("SELECT id, status, payment_status FROM orders WHERE reservation_id = $1").bind(reservation_id))
        .await?;
    for row in &rows {
        let status = parse(row.text("status")?, Status::parse, "order status")?;
        if !status.can_cancel() {
            continue;
        }
        let payment = row.opt_text("payment_status")?.and_then(|p| PaymentStatus::parse(&p));
        cancel_in(tx, &row.text("id")?, lapse_reason(payment), now).await?;
    }
    Ok(())
}

pub(super) async fn cancel_in(tx: &mut Tx, order_id: &str, reason: &str, now: Timestamp) -> Result<Order, Error> {
    let open: Vec<&str> = FulfillmentStatus::open().map(FulfillmentStatus::as_str).collect();
    let text = format!(
        "UPDATE fulfillments SET status = $2, updated_at = $3 WHERE order_id = $1 AND status IN ({})",
        placeholders(4, open.len())
    );
    let cancel = sql_built(text)
        .bind(order_id)
        .bind(FulfillmentStatus::Cancelled.as_str())
        .bind(now.millis());
    tx.execute(open.into_iter().fold(cancel, Sql::bind)).await?;
    tx.execute(
        sql("UPDATE orders SET status = $3, version = version + 1, updated_at = $2 WHERE id = $1")
            .bind(order_id)
            .bind(now.millis())
            .bind(Status::Cancelled.as_str()),
    )
    .await?;
    let order = read_order(tx, order_id).await?;
    if order.payment_status == Some(PaymentStatus::Pending)
        && let Some(email) = &order.email
    {
        uncount_unpaid(tx, email).await?;
    }
    give_back_points(
        tx,
        &order,
        order.loyalty_points_redeemed,
        LoyaltyReason::OrderCancelled,
        now,
    )
    .await?;
    // An erased customer's timeline takes nothing more: the reason is free text.
    if let Some(customer) = &order.customer_id
        && !erased(tx, customer).await?
    {
        let summary = serde_json::json!({"number": order.number, "reason": reason, "total": order.totals.total});
        timeline::record(tx, customer, now, "order.cancelled", Some(order_id), &summary).await?;
    }
    append(
        tx,
        now,
        NewEvent::new(
            EventType::OrderCancelled,
            serde_json::json!({"order": &order, "reason": reason}),
        ),
    );
    Ok(order)
}

impl Store {
    /// Cancels an order that has not left yet; every hold is released.
    pub async fn cancel_order(&self, id: &str, version: Option<i64>) -> Result<Order, Error> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let order = read_order(&mut tx, id).await?;
        check_version(&order, version)?;
        if !order.status.can_cancel() {
            return Err(Error::Conflict(format!(
                "an order that is {} cannot be cancelled",
                order.status.as_str()
            )));
        }
        if let Some(reservation) = order_reservation(&mut tx, id).await? {
            end_reservation(&mut tx, &reservation, ReservationStatus::Released, now).await?;
        }
        let cancelled = cancel_in(&mut tx, id, "cancelled by the merchant", now).await?;
        self.commit(tx).await?;
        Ok(cancelled)
    }

    /// Marks a storefront's order paid (until payments are taken by the hub, the shop's backend
    /// or staff say so): it no longer lapses for want of payment, and may be handed over.
    pub async fn mark_order_paid(&self, id: &str, version: Option<i64>) -> Result<Order, Error> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let order = read_order(&mut tx, id).await?;
        check_version(&order, version)?;
        check_mark_paid(order.payment_status, order.status).map_err(Error::Conflict)?;
        tx.execute(
            sql("UPDATE orders SET payment_status = 'paid', version = version + 1, updated_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now.millis()),
        )
        .await?;
        if let Some(reservation) = order_reservation(&mut tx, id).await? {
            let hold = hold_once_paid(order.fulfillment.method, order.created_at);
            tx.execute(
                sql("UPDATE reservations SET expires_at = $2 WHERE id = $1")
                    .bind(&reservation)
                    .bind(hold.map(Timestamp::millis)),
            )
            .await?;
        }
        if let Some(email) = &order.email {
            uncount_unpaid(&mut tx, email).await?;
        }
        let paid = read_order(&mut tx, id).await?;
        if let Some(customer) = &paid.customer_id {
            let summary = serde_json::json!({"number": paid.number, "total": paid.totals.total});
            timeline::record(&mut tx, customer, now, "order.paid", Some(id), &summary).await?;
        }
        append(&mut tx, now, NewEvent::new(EventType::OrderPaid, &paid));
        self.commit(tx).await?;
        Ok(paid)
    }
}
