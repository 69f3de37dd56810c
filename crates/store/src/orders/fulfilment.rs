//! Fulfilments: from any location, shipped, picked up or delivered, step by step; the order's
//! status follows them.

use omnihub_domain::events::{EventType, NewEvent};
use omnihub_domain::id::{self, Kind};
use omnihub_domain::orders::{
    FulfillmentKind, FulfillmentStatus, ItemLine, Order, Progress, Status, Step, check_handover, check_item_lines,
    derive_status,
};
use omnihub_domain::{Invalid, Timestamp};

use super::points::reward;
use super::reading::{order_reservation, read_order};
use crate::customers::timeline;
use crate::db::events::append;
use crate::db::{Sql, Tx, row_inserts, sql};
use crate::inventory::take_reserved;
use crate::{Error, Store};

/// What a client sends to create a fulfilment.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct FulfillmentDraft {
    pub location_id: String,
    pub lines: Vec<ItemLine>,
    pub kind: FulfillmentKind,
}

pub(super) async fn insert_fulfillment(
    tx: &mut Tx,
    order_id: &str,
    location_id: &str,
    kind: FulfillmentKind,
    lines: &[ItemLine],
    now: Timestamp,
) -> Result<String, Error> {
    let (id, inserts) = new_fulfillment(tx, order_id, location_id, kind, lines, now);
    for insert in inserts {
        tx.execute(insert).await?;
    }
    Ok(id)
}

/// A new fulfilment's inserts, for the caller to run at once or to defer, with its event
/// appended; answers its id too.
pub(super) fn new_fulfillment(
    tx: &mut Tx,
    order_id: &str,
    location_id: &str,
    kind: FulfillmentKind,
    lines: &[ItemLine],
    now: Timestamp,
) -> (String, Vec<Sql>) {
    let id = id::new(Kind::Fulfillment);
    let head = sql(
        "INSERT INTO fulfillments (id, order_id, location_id, kind, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'pending', $5, $5)",
    )
    .bind(&id)
    .bind(order_id)
    .bind(location_id)
    .bind(kind.as_str())
    .bind(now.millis());
    let line_head = "INSERT INTO fulfillment_lines (fulfillment_id, line_no, sku, quantity)";
    let line_inserts = row_inserts(line_head, 4, "", lines.iter().enumerate(), |insert, (line_no, line)| {
        insert
            .bind(&id)
            .bind(line_no as i64)
            .bind(&line.sku)
            .bind(line.quantity)
    });
    append(
        tx,
        now,
        NewEvent::new(
            EventType::FulfillmentCreated,
            serde_json::json!({"order_id": order_id, "fulfillment_id": id, "location_id": location_id, "kind": kind, "lines": lines}),
        ),
    );
    let inserts = std::iter::once(head).chain(line_inserts).collect();
    (id, inserts)
}

/// Re-derives the order's status from its fulfilments and returns; announces a change.
pub(super) async fn refresh_status(tx: &mut Tx, order_id: &str, now: Timestamp) -> Result<Order, Error> {
    let order = read_order(tx, order_id).await?;
    if order.status == Status::Cancelled {
        return Ok(order);
    }
    let mut progress = Progress {
        ordered: order.lines.iter().map(|l| l.quantity).sum(),
        ..Progress::default()
    };
    for f in &order.fulfillments {
        let units: i64 = f.lines.iter().map(|l| l.quantity).sum();
        if f.status.has_left() {
            progress.left += units;
        }
        if f.status.is_done() {
            progress.done += units;
        }
        if f.status == FulfillmentStatus::Ready {
            progress.ready += units;
        }
    }
    progress.returned = order.returns.iter().flat_map(|r| &r.lines).map(|l| l.quantity).sum();
    let status = derive_status(progress);
    tx.execute(
        sql("UPDATE orders SET status = $2, version = version + 1, updated_at = $3 WHERE id = $1")
            .bind(order_id)
            .bind(status.as_str())
            .bind(now.millis()),
    )
    .await?;
    let updated = read_order(tx, order_id).await?;
    if status == Status::Completed && order.status != Status::Completed {
        reward(tx, &updated, now).await?;
    }
    if status != order.status {
        append(
            tx,
            now,
            NewEvent::new(
                EventType::OrderStatusChanged,
                serde_json::json!({"order_id": order_id, "status": status, "previous": order.status}),
            ),
        );
    }
    Ok(updated)
}

impl Store {
    /// A fulfilment of some lines from one location that holds them for this order.
    pub async fn create_fulfillment(&self, order_id: &str, draft: FulfillmentDraft) -> Result<Order, Error> {
        check_item_lines(&draft.lines)?;
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let order = read_order(&mut tx, order_id).await?;
        if !matches!(
            order.status,
            Status::Allocated | Status::PartiallyFulfilled | Status::Placed
        ) {
            return Err(Error::Conflict(format!(
                "an order that is {} takes no new fulfilment",
                order.status.as_str()
            )));
        }
        if draft.kind != order.fulfillment.method.fulfillment_kind() {
            return Err(Invalid::one(
                "kind",
                "invalid",
                format!(
                    "a {} order is fulfilled by a {}",
                    order.fulfillment.method.as_str(),
                    order.fulfillment.method.fulfillment_kind().as_str()
                ),
            )
            .into());
        }
        for (i, line) in draft.lines.iter().enumerate() {
            let open = order.unfulfilled(&line.sku, &draft.location_id);
            if line.quantity > open {
                return Err(Invalid::one(
                    format!("lines[{i}].quantity"),
                    "exceeds_allocation",
                    format!(
                        "{open} units of {} at this location are not yet in a fulfilment",
                        line.sku
                    ),
                )
                .into());
            }
        }
        insert_fulfillment(&mut tx, order_id, &draft.location_id, draft.kind, &draft.lines, now).await?;
        let updated = refresh_status(&mut tx, order_id, now).await?;
        self.commit(tx).await?;
        Ok(updated)
    }

    /// Moves a fulfilment one step (`ship`, `ready`, `collect`, `deliver`). Shipping and
    /// collecting take the stock away at the fulfilment's location.
    pub async fn advance_fulfillment(
        &self,
        order_id: &str,
        fulfillment_id: &str,
        step: Step,
        carrier: Option<(String, String)>,
    ) -> Result<Order, Error> {
        let now = self.now();
        let mut tx = self.db.begin().await?;
        let order = read_order(&mut tx, order_id).await?;
        let fulfillment = order
            .fulfillments
            .iter()
            .find(|f| f.id == fulfillment_id)
            .ok_or(Error::NotFound("fulfillment"))?;
        let next = fulfillment
            .status
            .after(fulfillment.kind, step)
            .map_err(Error::Conflict)?;
        check_handover(order.payment_status, next).map_err(Error::Conflict)?;
        if next.has_left() && !fulfillment.status.has_left() {
            let reservation = order_reservation(&mut tx, order_id)
                .await?
                .ok_or_else(|| Error::Corrupt("order without its stock".into()))?;
            for line in &fulfillment.lines {
                take_reserved(
                    &mut tx,
                    &reservation,
                    &line.sku,
                    &fulfillment.location_id,
                    line.quantity,
                    &order.number,
                    now,
                )
                .await?;
            }
        }
        let (carrier, tracking) = carrier.unzip();
        tx.execute(
            sql("UPDATE fulfillments SET status = $2, carrier = COALESCE($3, carrier), tracking_number = COALESCE($4, tracking_number), updated_at = $5 WHERE id = $1")
                .bind(fulfillment_id)
                .bind(next.as_str())
                .bind(carrier)
                .bind(tracking)
                .bind(now.millis()),
        )
        .await?;
        let kind = match next {
            FulfillmentStatus::Ready => EventType::FulfillmentReadyForPickup,
            FulfillmentStatus::Shipped => EventType::FulfillmentShipped,
            FulfillmentStatus::Delivered => EventType::FulfillmentDelivered,
            _ => EventType::FulfillmentCollected,
        };
        let updated = refresh_status(&mut tx, order_id, now).await?;
        let record = updated.fulfillments.iter().find(|f| f.id == fulfillment_id).cloned();
        if let Some(customer) = &updated.customer_id {
            let summary =
                serde_json::json!({"number": updated.number, "status": next, "location_id": fulfillment.location_id});
            timeline::record(&mut tx, customer, now, kind.as_str(), Some(order_id), &summary).await?;
        }
        append(
            &mut tx,
            now,
            NewEvent::new(
                kind,
                serde_json::json!({"order_id": order_id, "order_number": updated.number, "customer_id": updated.customer_id, "fulfillment": record}),
            ),
        );
        self.commit(tx).await?;
        Ok(updated)
    }
}
