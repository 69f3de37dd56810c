//! The loyalty points an order moves: given back when it is cancelled or returned, earned
//! when it is completed.

use omnihub_domain::Timestamp;
use omnihub_domain::customers::{LoyaltyProgram, LoyaltyReason};
use omnihub_domain::orders::{Order, Status};

use crate::Error;
use crate::customers::timeline;
use crate::customers::{add_loyalty_points_in, record_spend_in};
use crate::db::{Tx, sql};

/// Gives the customer back `points` they redeemed on `order` (all of them when it is
/// cancelled, their share of a return). A customer merged away or erased since keeps nothing:
/// the order still goes on.
pub(super) async fn give_back_points(
    tx: &mut Tx,
    order: &Order,
    points: i64,
    reason: LoyaltyReason,
    now: Timestamp,
) -> Result<(), Error> {
    let Some(customer) = &order.customer_id else {
        return Ok(());
    };
    match add_loyalty_points_in(tx, customer, points, reason, Some(&order.id), now).await {
        Ok(_) | Err(Error::Conflict(_)) => Ok(()),
        Err(error) => Err(error),
    }
}

pub(super) async fn erased(tx: &mut Tx, customer: &str) -> Result<bool, Error> {
    let row = tx
        .fetch_optional(sql("SELECT erased_at FROM customers WHERE id = $1").bind(customer))
        .await?;
    Ok(match row {
        Some(row) => row.opt_int("erased_at")?.is_some(),
        None => true,
    })
}

pub(super) async fn customer_balance(tx: &mut Tx, customer: &str) -> Result<i64, Error> {
    Ok(tx
        .fetch_optional(sql("SELECT loyalty_balance FROM customers WHERE id = $1").bind(customer))
        .await?
        .map(|r| r.int("loyalty_balance"))
        .transpose()?
        .unwrap_or(0))
}

/// A completed order earns its customer points and counts towards the tier.
pub(super) async fn reward(tx: &mut Tx, order: &Order, now: Timestamp) -> Result<(), Error> {
    let Some(customer) = &order.customer_id else {
        return Ok(());
    };
    let paid = order.totals.total.amount;
    let points = LoyaltyProgram::default().points_earned(paid);
    add_loyalty_points_in(
        tx,
        customer,
        points,
        LoyaltyReason::OrderCompleted,
        Some(&order.id),
        now,
    )
    .await?;
    record_spend_in(tx, customer, paid, Some(&order.id), now).await?;
    let summary = serde_json::json!({"number": order.number, "points": points});
    timeline::record(tx, customer, now, "order.completed", Some(&order.id), &summary).await
}

/// A return takes back the points its refund had earned (never more than are left) and the
/// spend.
pub(super) async fn take_back(tx: &mut Tx, order: &Order, refunded: i64, now: Timestamp) -> Result<(), Error> {
    let Some(customer) = &order.customer_id else {
        return Ok(());
    };
    if order.status == Status::Completed || order.status == Status::Returned {
        let balance = customer_balance(tx, customer).await?;
        let points = LoyaltyProgram::default().points_for_return(refunded).min(balance);
        add_loyalty_points_in(
            tx,
            customer,
            -points,
            LoyaltyReason::OrderReturned,
            Some(&order.id),
            now,
        )
        .await?;
        record_spend_in(tx, customer, -refunded, Some(&order.id), now).await?;
    }
    let summary = serde_json::json!({"number": order.number, "refund": refunded});
    timeline::record(tx, customer, now, "return.received", Some(&order.id), &summary).await
}
