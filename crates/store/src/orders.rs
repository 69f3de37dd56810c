//! Orders from every channel: placing them (from a cart or from elsewhere), fulfilment from
//! any location, cancellation and returns at any location.

use std::collections::BTreeMap;
use std::sync::Arc;

use omnihub_domain::catalog::Channel;
use omnihub_domain::customers::{Identity, LoyaltyProgram, LoyaltyReason, Region};
use omnihub_domain::events::{EventType, NewEvent};
use omnihub_domain::id::{self, Kind};
use omnihub_domain::inventory::{Allocation, MovementReason, ReservationLineDraft, ReservationStatus};
use omnihub_domain::orders::{
    Fulfillment, FulfillmentKind, FulfillmentRecord, FulfillmentStatus, ItemLine, Method, Order, OrderLine,
    PaymentStatus, Progress, ReturnRecord, ShippingAddress, Status, Step, buyer_of, check_handover, check_item_lines,
    check_mark_paid, derive_status, hold_once_paid, order_number, return_split, totals,
};
use omnihub_domain::{Invalid, Money, Timestamp};

use crate::carts::{self, PricedCart};
use crate::catalog::Page;
use crate::customers::timeline;
use crate::db::{Backend, Row, Sent, Sql, Tx, row_inserts, sql};
use crate::events::append;
use crate::inventory::{
    Sourcing, end_reservation, ensure_level, move_stock, plan_reservation, take_reserved, take_stock,
};
use crate::stock_view::KnownStock;
use crate::writer::BoxFuture;
use crate::{Error, Store};
use crate::{add_loyalty_points_in, record_spend_in, resolve_customer_in};

/// A priced line of an order about to be placed.
#[derive(Debug, Clone)]
pub struct PricedLine {
    pub sku: String,
    pub quantity: i64,
    pub unit_amount: i64,
}

impl PricedLine {
    fn item(&self) -> ItemLine {
        ItemLine {
            sku: self.sku.clone(),
            quantity: self.quantity,
        }
    }
}

/// Everything needed to place an order, from a cart or from another system.
pub struct NewOrder {
    pub channel: Channel,
    pub external_id: Option<String>,
    pub customer_id: Option<String>,
    /// Who bought, when no customer id is known: found by any identity, or created.
    pub identities: Vec<Identity>,
    pub customer_name: Option<String>,
    pub phone_region: Region,
    pub email: Option<String>,
    pub lines: Vec<PricedLine>,
    pub fulfillment: Fulfillment,
    pub shipping_address: Option<ShippingAddress>,
    /// Loyalty points the customer redeems as a discount.
    pub loyalty_points: i64,
    /// Where each line is taken from, and how to choose.
    pub sourcing: Sourcing<'static>,
    /// Lines are held at this one location (pick-up, same day, reserve in store, a POS sale).
    pub at_location: Option<String>,
    /// The order is cancelled then unless collected or paid (see `orders::on_checkout`);
    /// otherwise it holds its stock until fulfilled.
    pub hold_until: Option<Timestamp>,
    /// Whether the order waits for its payment (a storefront's checkout).
    pub payment_status: Option<PaymentStatus>,
    /// How many unpaid orders one e-mail may have at once.
    pub max_unpaid_per_email: i64,
}

#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub channel_id: Option<String>,
    pub status: Option<String>,
    pub customer_id: Option<String>,
}

// ---- placing ----

impl Store {
    /// Holds the stock and places the order in one transaction. From a cart, the cart is marked
    /// checked out in the same transaction, so one cart becomes one order at most.
    pub(crate) async fn place_order(&self, new: NewOrder, from_cart: Option<PricedCart>) -> Result<Order, Error> {
        let new = Arc::new(new);
        let skus = new.lines.iter().map(|l| l.sku.clone()).collect();
        self.write_taking_stock("place the order", &skus, |known| {
            let (new, from_cart, clock) = (new.clone(), from_cart.clone(), self.clock.clone());
            move |tx: &mut Tx| -> BoxFuture<'_, Result<Order, Error>> {
                Box::pin(async move {
                    let now = clock.now();
                    let order = place_in(tx, &new, from_cart.as_ref(), now, known).await?;
                    append(tx, now, NewEvent::new(EventType::OrderPlaced, &order));
                    Ok(order)
                })
            }
        })
        .await
    }
}

/// The values of the order's row (`$1` to `$16` as `place_in` binds them), numbered as it is
/// written: on PostgreSQL from a sequence (a checkout refused after taking its number leaves a
/// gap), on SQLite from the counter the statement before it moved on (which rolls back with a
/// refused checkout). A buyer known only by an e-mail is the customer who holds it, if any.
macro_rules! order_values {
    ($number:literal) => {
        concat!(
            "$1, ",
            $number,
            ", $2, $3, COALESCE($4, (SELECT customer_id FROM customer_identities WHERE kind = 'email' AND value = $5)), \
             $5, 'allocated', $6, $7, $8, $9, $10, $11, $12, $13, $14, 1, $15, $15, $16"
        )
    };
}

/// Inserts the order, its values (`order_values!`) between `$before` and `$after`: `VALUES (`
/// and `)`, or `SELECT ` and ` FROM closed`.
macro_rules! insert_order {
    ($before:literal, $number:literal, $after:literal) => {
        concat!(
            "INSERT INTO orders (id, number, channel_id, external_id, customer_id, email, status, method, location_id, \
             shipping_address, reservation_id, currency, subtotal, discount, total, loyalty_points_redeemed, version, created_at, updated_at, \
             payment_status) ",
            $before,
            order_values!($number),
            $after,
            " RETURNING number, customer_id"
        )
    };
}

/// Sends the order's row (an `insert_order!` statement, bound); from a cart, closes the cart
/// first, which refuses if the cart changed since it was priced. On PostgreSQL both are one
/// statement, which writes the order only if the cart closed, and the placement's next
/// statements go out right behind it; read its outcome with [`order_written`].
async fn send_order(
    tx: &mut Tx,
    order: impl FnOnce(Sql) -> Sql,
    from_cart: Option<&PricedCart>,
    order_id: &str,
    now: Timestamp,
) -> Result<Sent, Error> {
    let insert = match (tx.backend(), from_cart) {
        (Backend::Postgres, Some(cart)) => carts::closing(cart, order_id, now)
            .within("WITH closed AS (", ") ")
            .then(
                "",
                order(sql(insert_order!(
                    "SELECT ",
                    "nextval('order_numbers')",
                    " FROM closed"
                ))),
            ),
        (Backend::Postgres, None) => order(sql(insert_order!("VALUES (", "nextval('order_numbers')", ")"))),
        (Backend::Sqlite, _) => {
            if let Some(cart) = from_cart
                && tx.fetch_optional(carts::closing(cart, order_id, now)).await?.is_none()
            {
                return Err(carts::refusal_to_close(tx, &cart.id).await);
            }
            tx.execute(sql("UPDATE counters SET value = value + 1 WHERE name = 'order_number'"))
                .await?;
            order(sql(insert_order!(
                "VALUES (",
                "(SELECT value FROM counters WHERE name = 'order_number')",
                ")"
            )))
        }
    };
    tx.send(insert).await.map_err(taken_in_already)
}

/// The number and customer of the order [`send_order`] sent; why it was not written, if not.
async fn order_written(
    tx: &mut Tx,
    sent: Sent,
    from_cart: Option<&PricedCart>,
) -> Result<(i64, Option<String>), Error> {
    let written = sent.rows().await.map_err(taken_in_already)?.into_iter().next();
    match (written, from_cart) {
        (Some(row), _) => Ok((row.int("number")?, row.opt_text("customer_id")?)),
        (None, Some(cart)) => Err(carts::refusal_to_close(tx, &cart.id).await),
        (None, None) => Err(Error::Corrupt("the order was not written".into())),
    }
}

/// An order's row refused as a duplicate: its channel and external id were taken in before.
fn taken_in_already(error: Error) -> Error {
    if error.is_unique_violation() {
        Error::Conflict("this external order was taken in already".into())
    } else {
        error
    }
}

/// Places the order inside `tx`, answering it as written. The stock's levels are taken as late
/// as can be: once taken, a level stays locked until the commit, and every other checkout of
/// the SKU waits.
async fn place_in(
    tx: &mut Tx,
    new: &NewOrder,
    from_cart: Option<&PricedCart>,
    now: Timestamp,
    known: Option<KnownStock>,
) -> Result<Order, Error> {
    let order_id = id::new(Kind::Order);
    if new.payment_status == Some(PaymentStatus::Pending)
        && let Some(email) = &new.email
    {
        count_unpaid(tx, email, new.max_unpaid_per_email).await?;
    }
    let wanted: Vec<ReservationLineDraft> = new
        .lines
        .iter()
        .map(|l| ReservationLineDraft {
            sku: l.sku.clone(),
            quantity: l.quantity,
            location_id: new.at_location.clone(),
        })
        .collect();
    let planned = plan_reservation(
        tx,
        &new.channel,
        &wanted,
        &new.sourcing,
        Some(&order_id),
        new.hold_until,
        now,
        known,
    )
    .await?;
    // A cart's buyer known only by an e-mail is found by the order's insert, unless points
    // are redeemed: those need the customer first.
    let found_by_insert = from_cart.is_some() && new.loyalty_points == 0;
    let customer_id = match &new.customer_id {
        Some(id) => Some(id.clone()),
        None if new.identities.is_empty() || found_by_insert => None,
        None => {
            Some(resolve_customer_in(tx, &new.identities, new.customer_name.as_deref(), now, new.phone_region).await?)
        }
    };
    let sums: Vec<(i64, i64)> = new.lines.iter().map(|l| (l.quantity, l.unit_amount)).collect();
    let currency = &new.channel.draft.currency;
    // A cart spends the points of the customer it names, never of one found by an e-mail,
    // which whoever holds the storefront's public key may type.
    let redeemer = match from_cart {
        Some(_) => new.customer_id.as_deref(),
        None => customer_id.as_deref(),
    };
    let discount = redeem(tx, redeemer, new.loyalty_points, &sums, &order_id, now).await?;
    let totals = totals(&sums, discount, currency)?;
    let order = |insert: Sql| {
        insert
            .bind(&order_id)
            .bind(&new.channel.id)
            .bind(new.external_id.as_deref())
            .bind(customer_id.as_deref())
            .bind(new.email.as_deref())
            .bind(new.fulfillment.method.as_str())
            .bind(new.fulfillment.location_id.as_deref())
            .bind(
                new.shipping_address
                    .as_ref()
                    .map(|a| serde_json::to_string(a).unwrap_or_default()),
            )
            .bind(&planned.reservation.id)
            .bind(currency)
            .bind(totals.subtotal.amount)
            .bind(totals.discount.amount)
            .bind(totals.total.amount)
            .bind(new.loyalty_points)
            .bind(now.millis())
            .bind(new.payment_status.map(PaymentStatus::as_str))
    };
    let sent = send_order(tx, order, from_cart, &order_id, now).await?;
    // The stock's hold goes out behind the order's row. If the order's statement failed, so
    // does the hold: its own failure is the one to tell. What hangs off the order's row waits
    // for it (it rides with the log's insert).
    let taken = take_stock(tx, planned, now).await;
    let (number, found) = order_written(tx, sent, from_cart).await?;
    let reservation = taken?;
    let fulfillments = hand_to_store(tx, new, &order_id, now).await?;
    let head = "INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_amount)";
    let inserts = row_inserts(head, 5, "", new.lines.iter().enumerate(), |insert, (line_no, line)| {
        insert
            .bind(&order_id)
            .bind(line_no as i64)
            .bind(&line.sku)
            .bind(line.quantity)
            .bind(line.unit_amount)
    });
    for insert in inserts {
        tx.defer(insert).await?;
    }
    let customer_id = match found {
        // Nobody holds the e-mail yet: the buyer becomes a customer.
        None if !new.identities.is_empty() => {
            let id =
                resolve_customer_in(tx, &new.identities, new.customer_name.as_deref(), now, new.phone_region).await?;
            tx.defer(
                sql("UPDATE orders SET customer_id = $2 WHERE id = $1")
                    .bind(&order_id)
                    .bind(&id),
            )
            .await?;
            Some(id)
        }
        found => found,
    };
    if let Some(customer) = &customer_id {
        let summary =
            serde_json::json!({"number": order_number(number), "channel_id": new.channel.id, "total": totals.total});
        tx.defer(timeline::insert(
            customer,
            now,
            "order.placed",
            Some(&order_id),
            &summary,
        ))
        .await?;
    }
    // The order as `read_order` would read it back, without reading it.
    let lines = new
        .lines
        .iter()
        .zip(reservation.lines)
        .map(|(line, sourced)| {
            let mut allocations = sourced.allocations;
            allocations.sort_by(|a, b| a.location_id.cmp(&b.location_id));
            OrderLine {
                sku: line.sku.clone(),
                quantity: line.quantity,
                unit_price: Money::new(line.unit_amount, currency),
                allocations,
            }
        })
        .collect();
    Ok(Order {
        id: order_id,
        number: order_number(number),
        channel_id: new.channel.id.clone(),
        external_id: new.external_id.clone(),
        customer_id,
        email: new.email.clone(),
        status: Status::Allocated,
        lines,
        totals,
        loyalty_points_redeemed: new.loyalty_points,
        fulfillment: new.fulfillment.clone(),
        shipping_address: new.shipping_address.clone(),
        fulfillments,
        returns: Vec::new(),
        payment_status: new.payment_status,
        hold_expires_at: new.hold_until,
        version: 1,
        created_at: now,
        updated_at: now,
    })
}

/// Methods served at one store get their fulfilment at once: the store sees it to prepare.
async fn hand_to_store(
    tx: &mut Tx,
    new: &NewOrder,
    order_id: &str,
    now: Timestamp,
) -> Result<Vec<FulfillmentRecord>, Error> {
    let Some(location) = &new.at_location else {
        return Ok(Vec::new());
    };
    if new.fulfillment.method == Method::Ship {
        return Ok(Vec::new());
    }
    let items: Vec<ItemLine> = new.lines.iter().map(PricedLine::item).collect();
    let kind = new.fulfillment.method.fulfillment_kind();
    // Written with the log's insert: nothing reads it before the commit.
    let (id, inserts) = new_fulfillment(tx, order_id, location, kind, &items, now);
    for insert in inserts {
        tx.defer(insert).await?;
    }
    Ok(vec![FulfillmentRecord {
        id,
        location_id: location.clone(),
        kind,
        status: FulfillmentStatus::Pending,
        lines: items,
        carrier: None,
        tracking_number: None,
        created_at: now,
        updated_at: now,
    }])
}

/// Takes the points the customer redeems; answers the discount they are worth.
async fn redeem(
    tx: &mut Tx,
    customer_id: Option<&str>,
    points: i64,
    lines: &[(i64, i64)],
    order_id: &str,
    now: Timestamp,
) -> Result<i64, Error> {
    if points == 0 {
        return Ok(0);
    }
    let customer = customer_id.ok_or_else(|| {
        Error::from(Invalid::one(
            "loyalty_points",
            "no_customer",
            "only a known customer can redeem points",
        ))
    })?;
    let program = LoyaltyProgram::default();
    let subtotal = omnihub_domain::orders::subtotal(lines).ok_or_else(|| omnihub_domain::money::too_large("lines"))?;
    let discount = program.redemption_value(points);
    if discount > subtotal {
        return Err(Invalid::one("loyalty_points", "out_of_range", "more points than the order is worth").into());
    }
    let redeemed = add_loyalty_points_in(tx, customer, -points, LoyaltyReason::Redeemed, Some(order_id), now).await;
    match redeemed {
        Ok(_) => Ok(discount),
        // Named after the field the client set, as a cart's PATCH names it.
        Err(Error::Invalid(invalid)) if invalid.0.iter().any(|e| e.code == "insufficient_points") => {
            let balance = customer_balance(tx, customer).await?;
            Err(carts::points_beyond_balance(points, balance).into())
        }
        Err(error) => Err(error),
    }
}

/// Gives the customer back `points` they redeemed on `order` (all of them when it is
/// cancelled, their share of a return). A customer merged away or erased since keeps nothing:
/// the order still goes on.
async fn give_back_points(
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

async fn erased(tx: &mut Tx, customer: &str) -> Result<bool, Error> {
    let row = tx
        .fetch_optional(sql("SELECT erased_at FROM customers WHERE id = $1").bind(customer))
        .await?;
    Ok(match row {
        Some(row) => row.opt_int("erased_at")?.is_some(),
        None => true,
    })
}

async fn customer_balance(tx: &mut Tx, customer: &str) -> Result<i64, Error> {
    Ok(tx
        .fetch_optional(sql("SELECT loyalty_balance FROM customers WHERE id = $1").bind(customer))
        .await?
        .map(|r| r.int("loyalty_balance"))
        .transpose()?
        .unwrap_or(0))
}

/// A completed order earns its customer points and counts towards the tier.
async fn reward(tx: &mut Tx, order: &Order, now: Timestamp) -> Result<(), Error> {
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
async fn take_back(tx: &mut Tx, order: &Order, refunded: i64, now: Timestamp) -> Result<(), Error> {
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

async fn insert_fulfillment(
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
fn new_fulfillment(
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

// ---- reading ----

fn parse<T>(text: String, parse: fn(&str) -> Option<T>, what: &str) -> Result<T, Error> {
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

fn item_lines(rows: &[Row], owner: &str, column: &str) -> Result<Vec<ItemLine>, Error> {
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

async fn read_fulfillments(tx: &mut Tx, order_id: &str) -> Result<Vec<FulfillmentRecord>, Error> {
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

async fn read_returns(tx: &mut Tx, order_id: &str, currency: &str) -> Result<Vec<ReturnRecord>, Error> {
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

// ---- changing ----

/// Re-derives the order's status from its fulfilments and returns; announces a change.
async fn refresh_status(tx: &mut Tx, order_id: &str, now: Timestamp) -> Result<Order, Error> {
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

/// Cancels an order whose hold lapsed: a reserve-in-store order not collected, a storefront's
/// order not paid in time.
pub(crate) async fn hold_lapsed(tx: &mut Tx, reservation_id: &str, now: Timestamp) -> Result<(), Error> {
    let rows = tx
        .fetch_all(sql("SELECT id, payment_status FROM orders WHERE reservation_id = $1 AND status IN ('placed', 'allocated', 'ready_for_pickup')").bind(reservation_id))
        .await?;
    for row in &rows {
        let reason = match row.opt_text("payment_status")?.as_deref() {
            Some("pending") => "it was not paid in time",
            _ => "the hold lapsed before it was collected",
        };
        cancel_in(tx, &row.text("id")?, reason, now).await?;
    }
    Ok(())
}

/// Counts one more unpaid order of `email`, or refuses it when the e-mail has `max` already:
/// a storefront's public key is in every shopper's hands, and unpaid orders hold stock.
async fn count_unpaid(tx: &mut Tx, email: &str, max: i64) -> Result<(), Error> {
    let counted = tx
        .execute(
            sql(
                "INSERT INTO unpaid_orders (email, pending) VALUES ($1, 1) ON CONFLICT (email) \
                 DO UPDATE SET pending = unpaid_orders.pending + 1 WHERE unpaid_orders.pending < $2",
            )
            .bind(buyer_of(email))
            .bind(max),
        )
        .await?;
    if counted == 0 {
        return Err(Error::RateLimited(format!(
            "{max} orders of this e-mail wait for their payment already; pay or cancel one first"
        )));
    }
    Ok(())
}

/// An unpaid order of `email` was paid or cancelled.
async fn uncount_unpaid(tx: &mut Tx, email: &str) -> Result<(), Error> {
    tx.execute(
        sql("UPDATE unpaid_orders SET pending = pending - 1 WHERE email = $1 AND pending > 0").bind(buyer_of(email)),
    )
    .await?;
    Ok(())
}

async fn cancel_in(tx: &mut Tx, order_id: &str, reason: &str, now: Timestamp) -> Result<Order, Error> {
    tx.execute(
        sql("UPDATE fulfillments SET status = 'cancelled', updated_at = $2 WHERE order_id = $1 AND status IN ('pending', 'ready')")
            .bind(order_id)
            .bind(now.millis()),
    )
    .await?;
    tx.execute(
        sql("UPDATE orders SET status = 'cancelled', version = version + 1, updated_at = $2 WHERE id = $1")
            .bind(order_id)
            .bind(now.millis()),
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

/// What a client sends to create a fulfilment.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct FulfillmentDraft {
    pub location_id: String,
    pub lines: Vec<ItemLine>,
    pub kind: FulfillmentKind,
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
        let unit_of = |sku: &str| {
            order
                .lines
                .iter()
                .find(|l| l.sku == sku)
                .map_or(0, |l| l.unit_price.amount)
        };
        let too_large = |field: String| Error::from(omnihub_domain::money::too_large(&field));
        let mut gross = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            let returnable = order.returnable(&line.sku);
            if line.quantity > returnable {
                return Err(Invalid::one(
                    format!("lines[{i}].quantity"),
                    "exceeds_purchased",
                    format!("only {returnable} units of {} can be returned", line.sku),
                )
                .into());
            }
            let amount = line.quantity.checked_mul(unit_of(&line.sku));
            gross.push(amount.ok_or_else(|| too_large(format!("lines[{i}].quantity")))?);
        }
        let returned_before = (order.returns.iter().flat_map(|r| &r.lines))
            .try_fold(0i64, |sum, l| sum.checked_add(l.quantity.checked_mul(unit_of(&l.sku))?))
            .ok_or_else(|| too_large("lines".into()))?;
        let split = return_split(
            &gross,
            returned_before,
            order.totals.subtotal.amount,
            order.loyalty_points_redeemed,
            LoyaltyProgram::default().point_value_minor,
        )
        .ok_or_else(|| too_large("lines".into()))?;
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

fn check_version(order: &Order, version: Option<i64>) -> Result<(), Error> {
    match version {
        Some(v) if v != order.version => Err(Error::VersionMismatch { current: order.version }),
        _ => Ok(()),
    }
}

async fn order_reservation(tx: &mut Tx, order_id: &str) -> Result<Option<String>, Error> {
    let row = tx
        .fetch_optional(sql("SELECT reservation_id FROM orders WHERE id = $1").bind(order_id))
        .await?;
    Ok(row.map(|r| r.opt_text("reservation_id")).transpose()?.flatten())
}
