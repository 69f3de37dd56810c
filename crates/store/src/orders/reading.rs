//! Orders as stored: one order with its lines, fulfilments and returns, and lists of them.

use std::collections::BTreeMap;

use omnihub_domain::inventory::Allocation;
use omnihub_domain::orders::{
    Fulfillment, FulfillmentKind, FulfillmentRecord, FulfillmentStatus, ItemLine, Method, Order, OrderLine,
    PaymentStatus, ReturnRecord, Status, order_number,
};
use omnihub_domain::{Money, Timestamp};

use crate::db::Page;
use crate::db::{Row, Tx, sql};
use crate::{Error, Store};

#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub channel_id: Option<String>,
    pub status: Option<String>,
    pub customer_id: Option<String>,
}

pub(super) fn parse<T>(text: String, parse: fn(&str) -> Option<T>, what: &str) -> Result<T, Error> {
    parse(&text).ok_or_else(|| Error::Corrupt(format!("{what} {text}")))
}

pub(crate) async fn read_order(tx: &mut Tx, id: &str) -> Result<Order, Error> {
    let row = tx
        .fetch_optional(sql("SELECT * FROM orders WHERE id = $1").bind(id))
        .await?
        .ok_or(Error::NotFound("order"))?;
    let currency = row.text("currency")?;
    let reservation_id = row.opt_text("reservation_id")?;
    let allocations = tx
        .fetch_all(
            sql("SELECT line_no, location_id, quantity FROM reservation_allocations WHERE reservation_id = $1 ORDER BY line_no, location_id")
                .bind(reservation_id.as_deref().unwrap_or("")),
        )
        .await?;
    let mut by_line: BTreeMap<i64, Vec<Allocation>> = BTreeMap::new();
    for a in &allocations {
        by_line.entry(a.int("line_no")?).or_default().push(Allocation {
            location_id: a.text("location_id")?,
            quantity: a.int("quantity")?,
        });
    }
    let line_rows = tx
        .fetch_all(sql("SELECT * FROM order_lines WHERE order_id = $1 ORDER BY line_no").bind(id))
        .await?;
    let mut lines = Vec::with_capacity(line_rows.len());
    for l in &line_rows {
        lines.push(OrderLine {
            sku: l.text("sku")?,
            quantity: l.int("quantity")?,
            unit_price: Money::new(l.int("unit_amount")?, &currency),
            allocations: by_line.remove(&l.int("line_no")?).unwrap_or_default(),
        });
    }
    let method = parse(row.text("method")?, Method::parse, "fulfilment method")?;
    let payment_status = match row.opt_text("payment_status")? {
        Some(text) => Some(parse(text, PaymentStatus::parse, "payment status")?),
        None => None,
    };
    let holds = method == Method::ReserveInStore || payment_status == Some(PaymentStatus::Pending);
    let hold = match reservation_id.as_deref().filter(|_| holds) {
        Some(reservation) => tx
            .fetch_optional(sql("SELECT expires_at FROM reservations WHERE id = $1").bind(reservation))
            .await?
            .map(|r| r.opt_int("expires_at"))
            .transpose()?
            .flatten()
            .map(Timestamp),
        None => None,
    };
    Ok(Order {
        id: row.text("id")?,
        number: order_number(row.int("number")?),
        channel_id: row.text("channel_id")?,
        external_id: row.opt_text("external_id")?,
        customer_id: row.opt_text("customer_id")?,
        email: row.opt_text("email")?,
        status: parse(row.text("status")?, Status::parse, "order status")?,
        lines,
        totals: omnihub_domain::orders::Totals {
            subtotal: Money::new(row.int("subtotal")?, &currency),
            discount: Money::new(row.int("discount")?, &currency),
            total: Money::new(row.int("total")?, &currency),
        },
        loyalty_points_redeemed: row.int("loyalty_points_redeemed")?,
        fulfillment: Fulfillment {
            method,
            location_id: row.opt_text("location_id")?,
        },
        shipping_address: row
            .opt_text("shipping_address")?
            .and_then(|a| serde_json::from_str(&a).ok()),
        fulfillments: read_fulfillments(tx, id).await?,
        returns: read_returns(tx, id, &currency).await?,
        payment_status,
        hold_expires_at: hold,
        version: row.int("version")?,
        created_at: Timestamp(row.int("created_at")?),
        updated_at: Timestamp(row.int("updated_at")?),
    })
}

pub(super) fn item_lines(rows: &[Row], owner: &str, column: &str) -> Result<Vec<ItemLine>, Error> {
    let mut lines = Vec::new();
    for r in rows {
        if r.text(column)? == owner {
            lines.push(ItemLine {
                sku: r.text("sku")?,
                quantity: r.int("quantity")?,
            });
        }
    }
    Ok(lines)
}

pub(super) async fn read_fulfillments(tx: &mut Tx, order_id: &str) -> Result<Vec<FulfillmentRecord>, Error> {
    let rows = tx
        .fetch_all(sql("SELECT * FROM fulfillments WHERE order_id = $1 ORDER BY id").bind(order_id))
        .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let line_rows = tx
        .fetch_all(
            sql("SELECT fl.* FROM fulfillment_lines fl JOIN fulfillments f ON f.id = fl.fulfillment_id WHERE f.order_id = $1 ORDER BY fl.fulfillment_id, fl.line_no")
                .bind(order_id),
        )
        .await?;
    rows.iter()
        .map(|r| {
            let id = r.text("id")?;
            Ok(FulfillmentRecord {
                lines: item_lines(&line_rows, &id, "fulfillment_id")?,
                id,
                location_id: r.text("location_id")?,
                kind: parse(r.text("kind")?, FulfillmentKind::parse, "fulfilment kind")?,
                status: parse(r.text("status")?, FulfillmentStatus::parse, "fulfilment status")?,
                carrier: r.opt_text("carrier")?,
                tracking_number: r.opt_text("tracking_number")?,
                created_at: Timestamp(r.int("created_at")?),
                updated_at: Timestamp(r.int("updated_at")?),
            })
        })
        .collect()
}

pub(super) async fn read_returns(tx: &mut Tx, order_id: &str, currency: &str) -> Result<Vec<ReturnRecord>, Error> {
    let rows = tx
        .fetch_all(sql("SELECT * FROM returns WHERE order_id = $1 ORDER BY id").bind(order_id))
        .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let line_rows = tx
        .fetch_all(
            sql("SELECT rl.* FROM return_lines rl JOIN returns r ON r.id = rl.return_id WHERE r.order_id = $1 ORDER BY rl.return_id, rl.line_no")
                .bind(order_id),
        )
        .await?;
    rows.iter()
        .map(|r| {
            let id = r.text("id")?;
            Ok(ReturnRecord {
                lines: item_lines(&line_rows, &id, "return_id")?,
                id,
                location_id: r.text("location_id")?,
                restock: r.bool("restock")?,
                reason: r.text("reason")?,
                refund: Money::new(r.int("refund_amount")?, currency),
                created_at: Timestamp(r.int("created_at")?),
            })
        })
        .collect()
}

impl Store {
    pub async fn order(&self, id: &str) -> Result<Order, Error> {
        let mut tx = self.db.begin_read().await?;
        read_order(&mut tx, id).await
    }

    /// An order taken in from another system, by its channel and external id.
    pub async fn external_order(&self, channel_id: &str, external_id: &str) -> Result<Option<Order>, Error> {
        let mut tx = self.db.begin_read().await?;
        let row = tx
            .fetch_optional(
                sql("SELECT id FROM orders WHERE channel_id = $1 AND external_id = $2")
                    .bind(channel_id)
                    .bind(external_id),
            )
            .await?;
        match row {
            Some(row) => Ok(Some(read_order(&mut tx, &row.text("id")?).await?)),
            None => Ok(None),
        }
    }

    /// Orders, newest first.
    pub async fn orders(&self, filter: &OrderFilter, page: &Page) -> Result<(Vec<Order>, Option<String>), Error> {
        let mut tx = self.db.begin_read().await?;
        let rows = tx
            .fetch_all(
                sql(
                    "SELECT id FROM orders WHERE ($1 = '' OR channel_id = $1) AND ($2 = '' OR status = $2) \
                     AND ($3 = '' OR customer_id = $3) AND ($4 = '' OR id < $4) ORDER BY id DESC LIMIT $5",
                )
                .bind(filter.channel_id.as_deref().unwrap_or(""))
                .bind(filter.status.as_deref().unwrap_or(""))
                .bind(filter.customer_id.as_deref().unwrap_or(""))
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.limit + 1),
            )
            .await?;
        let mut orders = Vec::with_capacity(rows.len());
        for row in &rows {
            orders.push(read_order(&mut tx, &row.text("id")?).await?);
        }
        Ok(page.finish(orders, |o| &o.id))
    }
}

pub(super) fn check_version(order: &Order, version: Option<i64>) -> Result<(), Error> {
    match version {
        Some(v) if v != order.version => Err(Error::VersionMismatch { current: order.version }),
        _ => Ok(()),
    }
}

pub(super) async fn order_reservation(tx: &mut Tx, order_id: &str) -> Result<Option<String>, Error> {
    let row = tx
        .fetch_optional(sql("SELECT reservation_id FROM orders WHERE id = $1").bind(order_id))
        .await?;
    Ok(row.map(|r| r.opt_text("reservation_id")).transpose()?.flatten())
}
