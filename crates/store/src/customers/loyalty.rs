//! Loyalty points: a ledger per customer whose sum is the balance (like the stock ledger),
//! and the spend over twelve months that sets the tier. Orders earn, return and redeem
//! points from their own transactions through [`add_loyalty_points_in`] and feed the
//! spend through [`record_spend_in`].

use std::collections::BTreeMap;

use omnihub_domain::Timestamp;
use omnihub_domain::customers::{
    LoyaltyAdjustment, LoyaltyMovement, LoyaltyProgram, LoyaltyReason, LoyaltyStanding, insufficient_points,
};
use omnihub_domain::events::{EventType, NewEvent};
use omnihub_domain::id::{self, Kind};
use serde_json::json;

use super::{closed, count, finish_newest_first, from_text, newest_first_cursor, read_customer, timeline, to_text};
use crate::db::Page;
use crate::db::events::append;
use crate::db::{Db, Row, Tx, sql};
use crate::{Error, Store};

/// Twelve months, as the tier counts them.
const YEAR_SECONDS: i64 = 365 * 24 * 60 * 60;

/// One change of a balance.
struct Change<'a> {
    points: i64,
    reason: LoyaltyReason,
    reference: Option<&'a str>,
    order_id: Option<&'a str>,
}

/// Adds (or, negative, takes) points inside another domain's transaction: an order earns
/// them, a return takes them back, a checkout redeems them. Nothing is recorded for 0 points.
/// Taking more than the balance is refused (422 `insufficient_points`), as is changing a
/// merged or erased customer (409).
pub async fn add_loyalty_points_in(
    tx: &mut Tx,
    customer_id: &str,
    points: i64,
    reason: LoyaltyReason,
    order_id: Option<&str>,
    now: Timestamp,
) -> Result<Option<LoyaltyMovement>, Error> {
    if points == 0 {
        return Ok(None);
    }
    let change = Change {
        points,
        reason,
        reference: None,
        order_id,
    };
    let (movement, _) = change_points(tx, customer_id, &change, now).await?;
    Ok(Some(movement))
}

/// Records what a customer spent (positive) or got back (negative), in minor units of the
/// programme's currency, for the tier.
pub async fn record_spend_in(
    tx: &mut Tx,
    customer_id: &str,
    amount_minor: i64,
    order_id: Option<&str>,
    at: Timestamp,
) -> Result<(), Error> {
    tx.execute(
        sql("INSERT INTO customer_spend (id, customer_id, amount_minor, order_id, at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id::new(Kind::Spend))
            .bind(customer_id)
            .bind(amount_minor)
            .bind(order_id)
            .bind(at.millis()),
    )
    .await?;
    Ok(())
}

/// The balance changes in one conditional write, so that two redemptions at once can never
/// take it below zero; the ledger row and the event go with it. Answers the new balance.
async fn change_points(
    tx: &mut Tx,
    customer_id: &str,
    change: &Change<'_>,
    now: Timestamp,
) -> Result<(LoyaltyMovement, i64), Error> {
    let changed = tx
        .fetch_optional(
            sql("UPDATE customers SET loyalty_balance = loyalty_balance + $2 \
                 WHERE id = $1 AND merged_into IS NULL AND erased_at IS NULL AND loyalty_balance + $2 >= 0 \
                 RETURNING loyalty_balance")
            .bind(customer_id)
            .bind(change.points),
        )
        .await?;
    let Some(row) = changed else {
        return Err(refusal(tx, customer_id, change.points).await?);
    };
    let balance = row.int("loyalty_balance")?;
    let movement = LoyaltyMovement {
        id: id::new(Kind::LoyaltyMovement),
        customer_id: customer_id.to_owned(),
        points: change.points,
        reason: change.reason,
        reference: change.reference.map(str::to_owned),
        order_id: change.order_id.map(str::to_owned),
        at: now,
    };
    insert_movement(tx, &movement).await?;
    let data = json!({"customer_id": customer_id, "movement_id": movement.id, "points": movement.points,
                      "reason": movement.reason, "order_id": movement.order_id, "balance": balance});
    timeline::record(
        tx,
        customer_id,
        now,
        "loyalty.points_changed",
        Some(&movement.id),
        &data,
    )
    .await?;
    append(tx, now, NewEvent::new(EventType::LoyaltyPointsChanged, data));
    Ok((movement, balance))
}

/// Why a balance did not change: the customer is missing, closed, or has too few points.
async fn refusal(tx: &mut Tx, customer_id: &str, points: i64) -> Result<Error, Error> {
    let row = tx
        .fetch_optional(
            sql("SELECT loyalty_balance, merged_into, erased_at FROM customers WHERE id = $1").bind(customer_id),
        )
        .await?
        .ok_or(Error::NotFound("customer"))?;
    Ok(match closed(&row)? {
        Some(conflict) => conflict,
        None => insufficient_points(row.int("loyalty_balance")?, points).into(),
    })
}

async fn insert_movement(tx: &mut Tx, movement: &LoyaltyMovement) -> Result<(), Error> {
    tx.execute(
        sql(
            "INSERT INTO loyalty_movements (id, customer_id, points, reason, reference, order_id, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&movement.id)
        .bind(&movement.customer_id)
        .bind(movement.points)
        .bind(to_text(&movement.reason))
        .bind(movement.reference.as_deref())
        .bind(movement.order_id.as_deref())
        .bind(movement.at.millis()),
    )
    .await?;
    Ok(())
}

fn movement(row: &Row) -> Result<LoyaltyMovement, Error> {
    Ok(LoyaltyMovement {
        id: row.text("id")?,
        customer_id: row.text("customer_id")?,
        points: row.int("points")?,
        reason: from_text(row.text("reason")?)?,
        reference: row.opt_text("reference")?,
        order_id: row.opt_text("order_id")?,
        at: Timestamp(row.int("at")?),
    })
}

/// The balance and the whole ledger, newest first, for an export.
pub(super) async fn everything(db: &Db, customer_id: &str) -> Result<(i64, Vec<LoyaltyMovement>), Error> {
    let rows = db
        .fetch_all(
            sql("SELECT * FROM loyalty_movements WHERE customer_id = $1 ORDER BY at DESC, id DESC").bind(customer_id),
        )
        .await?;
    let movements = rows.iter().map(movement).collect::<Result<Vec<_>, _>>()?;
    Ok((movements.iter().map(|m| m.points).sum(), movements))
}

/// Moves the absorbed customer's ledger and balance to the survivor.
pub(super) async fn move_points(tx: &mut Tx, from: &str, to: &str) -> Result<BTreeMap<String, i64>, Error> {
    let row = tx
        .fetch_optional(sql("SELECT loyalty_balance FROM customers WHERE id = $1").bind(from))
        .await?
        .ok_or(Error::NotFound("customer"))?;
    let points = row.int("loyalty_balance")?;
    let movements = tx
        .execute(
            sql("UPDATE loyalty_movements SET customer_id = $2 WHERE customer_id = $1")
                .bind(from)
                .bind(to),
        )
        .await?;
    tx.execute(
        sql("UPDATE customers SET loyalty_balance = loyalty_balance + $2 WHERE id = $1")
            .bind(to)
            .bind(points),
    )
    .await?;
    tx.execute(sql("UPDATE customers SET loyalty_balance = 0 WHERE id = $1").bind(from))
        .await?;
    Ok(BTreeMap::from([
        ("loyalty_movements".to_owned(), count(movements)),
        ("loyalty_points".to_owned(), points),
    ]))
}

impl Store {
    /// A manual change of points; answers the ledger row and the new balance.
    pub async fn adjust_loyalty(
        &self,
        customer_id: &str,
        adjustment: LoyaltyAdjustment,
    ) -> Result<(LoyaltyMovement, i64), Error> {
        adjustment.validate()?;
        let now = self.now();
        let change = Change {
            points: adjustment.points,
            reason: adjustment.reason,
            reference: adjustment.reference.as_deref().map(str::trim),
            order_id: None,
        };
        let mut tx = self.db.begin().await?;
        let changed = change_points(&mut tx, customer_id, &change, now).await?;
        self.commit(tx).await?;
        Ok(changed)
    }

    /// The balance, the spend of the last twelve months and the tier it reaches.
    pub async fn loyalty_standing(&self, customer_id: &str) -> Result<LoyaltyStanding, Error> {
        let row = self
            .db
            .fetch_optional(
                sql("SELECT c.loyalty_balance, \
                     (SELECT CAST(COALESCE(SUM(s.amount_minor), 0) AS BIGINT) FROM customer_spend s \
                      WHERE s.customer_id = c.id AND s.at > $2) AS spend \
                     FROM customers c WHERE c.id = $1")
                .bind(customer_id)
                .bind(self.now().plus_seconds(-YEAR_SECONDS).millis()),
            )
            .await?
            .ok_or(Error::NotFound("customer"))?;
        let spend_12m_minor = row.int("spend")?;
        Ok(LoyaltyStanding {
            balance: row.int("loyalty_balance")?,
            spend_12m_minor,
            tier: LoyaltyProgram::default().tier(spend_12m_minor).clone(),
        })
    }

    /// One page of the customer's points ledger, newest first.
    pub async fn loyalty_movements(
        &self,
        customer_id: &str,
        page: &Page,
    ) -> Result<(Vec<LoyaltyMovement>, Option<String>), Error> {
        read_customer(&mut &self.db, customer_id).await?;
        let (at, id) = newest_first_cursor(page)?;
        let rows = self
            .db
            .fetch_all(
                sql(
                    "SELECT * FROM loyalty_movements WHERE customer_id = $1 AND (at < $2 OR (at = $2 AND id < $3)) \
                     ORDER BY at DESC, id DESC LIMIT $4",
                )
                .bind(customer_id)
                .bind(at)
                .bind(id)
                .bind(page.limit + 1),
            )
            .await?;
        let items = rows.iter().map(movement).collect::<Result<Vec<_>, _>>()?;
        Ok(finish_newest_first(page, items, |m| (m.at, &m.id)))
    }
}
