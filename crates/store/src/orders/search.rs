//! The order lists of the admin app: by channel, status, method, location and date, the
//! pick-up queue of a store, an order found by its number and the events that name it.

use omnihub_domain::events::Event;
use omnihub_domain::orders::{FulfillmentKind, FulfillmentStatus, Method, Order, Status};
use omnihub_domain::{Money, Timestamp};

use crate::db::events::event;
use crate::db::{Page, Row, Sql, placeholders, sql, sql_built};
use crate::{Error, Store};

/// Which orders an order list shows; empty fields do not narrow it.
#[derive(Debug, Clone, Default)]
pub struct OrderSearch {
    pub channel_id: Option<String>,
    pub status: Option<Status>,
    /// Only orders still to be fulfilled (placed, allocated, partly fulfilled, waiting for
    /// pick-up).
    pub open_only: bool,
    pub method: Option<Method>,
    /// Orders to be served at, or holding stock at, this location.
    pub location_id: Option<String>,
    pub placed_from: Option<Timestamp>,
    pub placed_before: Option<Timestamp>,
}

/// An order as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSummary {
    pub id: String,
    pub number: String,
    pub channel_id: String,
    pub customer_id: Option<String>,
    pub status: Status,
    pub method: Method,
    pub location_id: Option<String>,
    pub total: Money,
    pub created_at: Timestamp,
}

fn summary(row: &Row) -> Result<OrderSummary, Error> {
    let (status, method) = (row.text("status")?, row.text("method")?);
    Ok(OrderSummary {
        id: row.text("id")?,
        number: omnihub_domain::orders::order_number(row.int("number")?),
        channel_id: row.text("channel_id")?,
        customer_id: row.opt_text("customer_id")?,
        status: Status::parse(&status).ok_or_else(|| Error::Corrupt(format!("order status {status}")))?,
        method: Method::parse(&method).ok_or_else(|| Error::Corrupt(format!("fulfilment method {method}")))?,
        location_id: row.opt_text("location_id")?,
        total: Money::new(row.int("total")?, &row.text("currency")?),
        created_at: Timestamp(row.int("created_at")?),
    })
}

/// `#1001`, `1001` or ` # 1001 ` are all order 1001.
fn parse_order_number(text: &str) -> Option<i64> {
    text.trim().trim_start_matches('#').trim().parse().ok()
}

impl Store {
    /// How many orders still need someone to do something.
    pub async fn open_order_count(&self) -> Result<i64, Error> {
        let open: Vec<&str> = Status::all_that(Status::is_open).map(Status::as_str).collect();
        let text = format!(
            "SELECT COUNT(*) AS n FROM orders WHERE status IN ({})",
            placeholders(1, open.len())
        );
        let row = self
            .db
            .fetch_optional(open.into_iter().fold(sql_built(text), Sql::bind))
            .await?;
        row.map_or(Ok(0), |r| r.int("n"))
    }

    /// Orders, newest first, narrowed by `search`.
    pub async fn search_orders(
        &self,
        search: &OrderSearch,
        page: &Page,
    ) -> Result<(Vec<OrderSummary>, Option<String>), Error> {
        let open: Vec<&str> = match search.open_only {
            true => Status::all_that(Status::is_open).map(Status::as_str).collect(),
            false => Vec::new(),
        };
        let open_only = match open.is_empty() {
            true => "1 = 1".to_owned(),
            false => format!("status IN ({})", placeholders(9, open.len())),
        };
        let text = format!(
            "SELECT id, number, channel_id, customer_id, status, method, location_id, total, currency, created_at \
             FROM orders o WHERE {open_only} AND ($1 = '' OR channel_id = $1) AND ($2 = '' OR status = $2) \
             AND ($3 = '' OR method = $3) AND ($4 = '' OR location_id = $4 OR EXISTS (SELECT 1 FROM reservation_allocations a \
             WHERE a.reservation_id = o.reservation_id AND a.location_id = $4)) AND created_at >= $5 AND created_at < $6 \
             AND ($7 = '' OR id < $7) ORDER BY id DESC LIMIT $8"
        );
        let rows = self
            .db
            .fetch_all(
                open.into_iter().fold(
                    sql_built(text)
                        .bind(search.channel_id.as_deref().unwrap_or(""))
                        .bind(search.status.map_or("", Status::as_str))
                        .bind(search.method.map_or("", Method::as_str))
                        .bind(search.location_id.as_deref().unwrap_or(""))
                        .bind(search.placed_from.map_or(i64::MIN, Timestamp::millis))
                        .bind(search.placed_before.map_or(i64::MAX, Timestamp::millis))
                        .bind(page.after.as_deref().unwrap_or(""))
                        .bind(page.limit + 1),
                    Sql::bind,
                ),
            )
            .await?;
        let items = rows.iter().map(summary).collect::<Result<Vec<_>, _>>()?;
        Ok(page.finish(items, |o| &o.id))
    }

    /// The orders waiting at a store for their customer: pick-ups being prepared or ready,
    /// oldest first.
    pub async fn pickup_queue(&self, location_id: &str) -> Result<Vec<Order>, Error> {
        let open: Vec<&str> = FulfillmentStatus::open().map(FulfillmentStatus::as_str).collect();
        let text = format!(
            "SELECT DISTINCT f.order_id FROM fulfillments f JOIN orders o ON o.id = f.order_id \
             WHERE f.location_id = $1 AND f.kind = $2 AND o.status <> $3 AND f.status IN ({}) \
             ORDER BY f.order_id LIMIT 200",
            placeholders(4, open.len())
        );
        let rows = self
            .db
            .fetch_all(
                open.into_iter().fold(
                    sql_built(text)
                        .bind(location_id)
                        .bind(FulfillmentKind::Pickup.as_str())
                        .bind(Status::Cancelled.as_str()),
                    Sql::bind,
                ),
            )
            .await?;
        let mut orders = Vec::with_capacity(rows.len());
        for row in &rows {
            orders.push(self.order(&row.text("order_id")?).await?);
        }
        Ok(orders)
    }

    /// The order with this number (`#1001` or `1001`).
    pub async fn order_by_number(&self, number: &str) -> Result<Order, Error> {
        let number = parse_order_number(number).ok_or(Error::NotFound("order"))?;
        let row = self
            .db
            .fetch_optional(sql("SELECT id FROM orders WHERE number = $1").bind(number))
            .await?
            .ok_or(Error::NotFound("order"))?;
        self.order(&row.text("id")?).await
    }

    /// The events that name the order, oldest first. Event ids are time-ordered like the
    /// order's own, so only the log from the order's making on is read.
    pub async fn order_events(&self, order_id: &str) -> Result<Vec<Event>, Error> {
        let Some(made) = order_id
            .strip_prefix("ord_")
            .and_then(|ulid| ulid::Ulid::from_string(&ulid.to_uppercase()).ok())
        else {
            return Ok(Vec::new());
        };
        // A minute of slack for the clocks of other server processes.
        let from = ulid::Ulid::from_parts(made.timestamp_ms().saturating_sub(60_000), 0);
        let rows = self
            .db
            .fetch_all(
                sql("SELECT seq, id, type, occurred_at, data FROM events WHERE id >= $1 AND data LIKE $2 ORDER BY seq LIMIT 500")
                    .bind(format!("evt_{}", from.to_string().to_lowercase()))
                    .bind(format!("%\"{order_id}\"%")),
            )
            .await?;
        rows.iter().map(event).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_numbers_are_read_however_they_are_typed() {
        assert_eq!(parse_order_number("#1001"), Some(1001));
        assert_eq!(parse_order_number(" # 1002 "), Some(1002));
        assert_eq!(parse_order_number("1003"), Some(1003));
        assert_eq!(parse_order_number("ord_x"), None);
    }
}
