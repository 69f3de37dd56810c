//! Turning a cart, or an order made elsewhere, into an order: pricing, where the stock comes
//! from, then one transaction that holds the stock, takes the points and writes the order.
//! A checkout reads top to bottom here; the rules it applies are in `omnihub_domain`.

use std::sync::Arc;

use omnihub_domain::catalog::{Channel, ChannelKind};
use omnihub_domain::customers::{Identity, IdentityKind, LoyaltyProgram, LoyaltyReason, Region};
use omnihub_domain::events::{EventType, NewEvent};
use omnihub_domain::id::{self, Kind};
use omnihub_domain::inventory::{Reservation, ReservationLineDraft};
use omnihub_domain::orders::{
    Cart, CartStatus, CheckoutBy, Fulfillment, FulfillmentRecord, FulfillmentStatus, ItemLine, Method, Order,
    OrderLine, PaymentStatus, ShippingAddress, Status, Totals, check_buyer, check_intake, check_prices, on_checkout,
    order_number, redeemer, redemption, till_sale, totals,
};
use omnihub_domain::{Invalid, Money, Timestamp};

use super::carts::{self, PricedCart, checked_out};
use super::fulfilment::new_fulfillment;
use super::points::customer_balance;
use super::sourcing::Plan;
use super::unpaid::count_unpaid;
use crate::customers::timeline;
use crate::customers::{add_loyalty_points_in, resolve_customer_in};
use crate::db::events::append;
use crate::db::writer::BoxFuture;
use crate::db::{Backend, Sent, Sql, Tx, row_inserts, sql};
use crate::inventory::KnownStock;
use crate::inventory::{PlannedReservation, Sourcing, plan_reservation, take_stock};
use crate::{Error, Store};

/// An order made elsewhere (a marketplace, a POS, an external web shop), to take in.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ExternalOrder {
    pub channel_id: String,
    pub external_id: String,
    pub customer_id: Option<String>,
    /// The buyer's identities in that channel (e-mail, phone, loyalty card …).
    pub identities: Vec<Identity>,
    pub customer_name: Option<String>,
    /// Loyalty points redeemed at the till or in the marketplace, as a discount.
    pub loyalty_points: i64,
    pub lines: Vec<ExternalLine>,
    pub fulfillment: Fulfillment,
    pub shipping_address: Option<omnihub_domain::orders::ShippingAddress>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct ExternalLine {
    pub sku: String,
    pub quantity: i64,
    pub unit_price: Money,
}

impl ExternalLine {
    fn item(&self) -> ItemLine {
        ItemLine {
            sku: self.sku.clone(),
            quantity: self.quantity,
        }
    }
}

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

impl Store {
    /// Holds the stock and places the order of `cart` (as just read, or as last written here),
    /// atomically: all lines or nothing. A cart changed since is checked out as it is now,
    /// once; changed again meanwhile, it refuses with a conflict.
    pub async fn checkout(&self, cart: &Cart, by: CheckoutBy) -> Result<Order, Error> {
        let placed = self
            .change_latest(cart, |cart| async move { self.place_from_cart(&cart, by).await })
            .await;
        self.recent_carts.forget(&cart.id);
        placed.map_err(|error| match error {
            Error::VersionMismatch { .. } => {
                Error::Conflict("the cart changed during checkout; check out again".into())
            }
            error => error,
        })
    }

    async fn place_from_cart(&self, cart: &Cart, by: CheckoutBy) -> Result<Order, Error> {
        if cart.status != CartStatus::Active {
            return Err(checked_out());
        }
        if cart.lines.is_empty() {
            return Err(Invalid::one("lines", "required", "the cart is empty").into());
        }
        let channel = self.channel(&cart.channel_id).await?;
        let mut lines = Vec::with_capacity(cart.lines.len());
        for line in &cart.lines {
            let price = self.channel_price(&channel, &line.sku).await?.ok_or_else(|| {
                Error::from(Invalid::one(
                    "lines",
                    "not_sold_here",
                    format!("{} is no longer sold in this channel", line.sku),
                ))
            })?;
            lines.push(PricedLine {
                sku: line.sku.clone(),
                quantity: line.quantity,
                unit_amount: price,
            });
        }
        let details = &cart.details;
        check_buyer(by, details.email.as_deref())?;
        let wanted: Vec<(String, i64)> = lines.iter().map(|l| (l.sku.clone(), l.quantity)).collect();
        let plan = self
            .plan(
                &channel,
                &details.fulfillment,
                details.shipping_address.as_ref(),
                &wanted,
            )
            .await?;
        let (payment_status, hold_until) = on_checkout(details.fulfillment.method, by, self.payment_rules, self.now());
        let new = NewOrder {
            channel: channel.clone(),
            external_id: None,
            customer_id: details.customer_id.clone(),
            // An order with only an e-mail still lands on that person's profile.
            identities: details
                .email
                .iter()
                .map(|e| Identity::new(IdentityKind::Email, e.clone()))
                .collect(),
            customer_name: details.shipping_address.as_ref().and_then(|a| a.name.clone()),
            phone_region: self.phone_region(),
            email: details.email.clone(),
            lines,
            fulfillment: details.fulfillment.clone(),
            shipping_address: details.shipping_address.clone(),
            loyalty_points: details.loyalty_points,
            sourcing: plan.sourcing,
            at_location: plan.at_location,
            hold_until,
            payment_status,
            max_unpaid_per_email: self.payment_rules.max_unpaid_per_email,
        };
        let priced = PricedCart {
            id: cart.id.clone(),
            version: cart.version,
        };
        self.place_order(new, Some(priced)).await
    }

    /// Takes in an order made elsewhere; the same channel and external id again answers the
    /// first order (`false`: not created now). A POS sale is handed over on the spot.
    pub async fn take_order(&self, intake: ExternalOrder) -> Result<(Order, bool), Error> {
        let channel = self.intake_channel(&intake).await?;
        if let Some(order) = self.external_order(&channel.id, &intake.external_id).await? {
            return Ok((order, false));
        }
        let skus: Vec<&str> = intake.lines.iter().map(|l| l.sku.as_str()).collect();
        self.check_skus_exist(&skus).await?;
        let pos = channel.draft.kind == ChannelKind::Pos;
        let fulfillment = match pos {
            true => till_sale(&intake.fulfillment, &channel.draft.location_ids),
            false => intake.fulfillment.clone(),
        };
        let wanted: Vec<(String, i64)> = intake.lines.iter().map(|l| (l.sku.clone(), l.quantity)).collect();
        let plan = self
            .plan(&channel, &fulfillment, intake.shipping_address.as_ref(), &wanted)
            .await?;
        let new = self.intake_order(&intake, &channel, fulfillment, plan);
        let order = match self.place_order(new, None).await {
            Ok(order) => order,
            // Two deliveries of the same order raced: the other one placed it.
            Err(Error::Conflict(_))
                if let Some(first) = self.external_order(&channel.id, &intake.external_id).await? =>
            {
                return Ok((first, false));
            }
            Err(error) => return Err(error),
        };
        if !pos {
            return Ok((order, true));
        }
        let handed_over = match order.fulfillments.first() {
            Some(f) => {
                self.advance_fulfillment(&order.id, &f.id, omnihub_domain::orders::Step::Collect, None)
                    .await?
            }
            None => order,
        };
        Ok((handed_over, true))
    }

    /// The channel an intake names, once the intake is sound.
    async fn intake_channel(&self, intake: &ExternalOrder) -> Result<Channel, Error> {
        let items: Vec<ItemLine> = intake.lines.iter().map(ExternalLine::item).collect();
        check_intake(&intake.external_id, intake.loyalty_points, &items)?;
        let channel = self.channel(&intake.channel_id).await.map_err(|_| {
            Error::from(Invalid::one(
                "channel_id",
                "not_found",
                "there is no such sales channel",
            ))
        })?;
        let prices: Vec<&Money> = intake.lines.iter().map(|l| &l.unit_price).collect();
        check_prices(&prices, &channel.draft.currency)?;
        Ok(channel)
    }

    /// The order an intake asks for, at its own prices, sourced by `plan`.
    fn intake_order(
        &self,
        intake: &ExternalOrder,
        channel: &Channel,
        fulfillment: Fulfillment,
        plan: Plan,
    ) -> NewOrder {
        let (payment_status, hold_until) =
            on_checkout(fulfillment.method, CheckoutBy::Backend, self.payment_rules, self.now());
        NewOrder {
            channel: channel.clone(),
            external_id: Some(intake.external_id.clone()),
            customer_id: intake.customer_id.clone(),
            identities: intake.identities.clone(),
            customer_name: intake.customer_name.clone(),
            phone_region: self.phone_region(),
            email: intake
                .identities
                .iter()
                .find(|i| i.kind == IdentityKind::Email)
                .map(|i| i.value.trim().to_lowercase()),
            lines: intake
                .lines
                .iter()
                .map(|l| PricedLine {
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                    unit_amount: l.unit_price.amount,
                })
                .collect(),
            fulfillment,
            shipping_address: intake.shipping_address.clone(),
            loyalty_points: intake.loyalty_points,
            sourcing: plan.sourcing,
            at_location: plan.at_location,
            hold_until,
            payment_status,
            max_unpaid_per_email: self.payment_rules.max_unpaid_per_email,
        }
    }
}

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
pub(super) async fn send_order(
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
pub(super) async fn order_written(
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
pub(super) fn taken_in_already(error: Error) -> Error {
    if error.is_unique_violation() {
        Error::Conflict("this external order was taken in already".into())
    } else {
        error
    }
}

/// Places the order inside `tx`, answering it as written. The stock's levels are taken as late
/// as can be: once taken, a level stays locked until the commit, and every other checkout of
/// the SKU waits.
pub(super) async fn place_in(
    tx: &mut Tx,
    new: &NewOrder,
    from_cart: Option<&PricedCart>,
    now: Timestamp,
    known: Option<KnownStock>,
) -> Result<Order, Error> {
    let order_id = id::new(Kind::Order);
    let planned = plan_stock(tx, new, &order_id, now, known).await?;
    let (customer_id, totals) = price(tx, new, from_cart, &order_id, now).await?;
    let row = |insert: Sql| {
        bind_order(
            insert,
            new,
            &order_id,
            customer_id.as_deref(),
            &planned.reservation.id,
            &totals,
            now,
        )
    };
    let sent = send_order(tx, row, from_cart, &order_id, now).await?;
    // The stock's hold goes out behind the order's row. If the order's statement failed, so
    // does the hold: its own failure is the one to tell. What hangs off the order's row waits
    // for it (it rides with the log's insert).
    let taken = take_stock(tx, planned, now).await;
    let (number, found) = order_written(tx, sent, from_cart).await?;
    let reservation = taken?;
    let fulfillments = hand_to_store(tx, new, &order_id, now).await?;
    write_lines(tx, &order_id, &new.lines).await?;
    let customer_id = match found {
        // Nobody holds the e-mail yet: the buyer becomes a customer.
        None if !new.identities.is_empty() => Some(become_customer(tx, new, &order_id, now).await?),
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
    let placed = Placed {
        order_id,
        number,
        customer_id,
        totals,
        reservation,
        fulfillments,
    };
    Ok(placed.into_order(new, now))
}

/// Counts the buyer's unpaid order, if it waits for payment, and plans where its stock comes
/// from (see [`plan_reservation`]).
async fn plan_stock(
    tx: &mut Tx,
    new: &NewOrder,
    order_id: &str,
    now: Timestamp,
    known: Option<KnownStock>,
) -> Result<PlannedReservation, Error> {
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
    let reference = Some(order_id);
    plan_reservation(
        tx,
        &new.channel,
        &wanted,
        &new.sourcing,
        reference,
        new.hold_until,
        now,
        known,
    )
    .await
}

/// The customer known before the order is written, and the order's totals after the points
/// they redeem.
async fn price(
    tx: &mut Tx,
    new: &NewOrder,
    from_cart: Option<&PricedCart>,
    order_id: &str,
    now: Timestamp,
) -> Result<(Option<String>, Totals), Error> {
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
    let redeemer = redeemer(from_cart.is_some(), new.customer_id.as_deref(), customer_id.as_deref());
    let discount = redeem(tx, redeemer, new.loyalty_points, &sums, order_id, now).await?;
    let totals = totals(&sums, discount, &new.channel.draft.currency)?;
    Ok((customer_id, totals))
}

/// Binds the order's row (`$1` to `$16`, as `order_values!` numbers them) to `insert`.
fn bind_order(
    insert: Sql,
    new: &NewOrder,
    order_id: &str,
    customer_id: Option<&str>,
    reservation_id: &str,
    totals: &Totals,
    now: Timestamp,
) -> Sql {
    let shipping_address = new
        .shipping_address
        .as_ref()
        .map(|a| serde_json::to_string(a).unwrap_or_default());
    insert
        .bind(order_id)
        .bind(&new.channel.id)
        .bind(new.external_id.as_deref())
        .bind(customer_id)
        .bind(new.email.as_deref())
        .bind(new.fulfillment.method.as_str())
        .bind(new.fulfillment.location_id.as_deref())
        .bind(shipping_address)
        .bind(reservation_id)
        .bind(&new.channel.draft.currency)
        .bind(totals.subtotal.amount)
        .bind(totals.discount.amount)
        .bind(totals.total.amount)
        .bind(new.loyalty_points)
        .bind(now.millis())
        .bind(new.payment_status.map(PaymentStatus::as_str))
}

/// The order's lines, written with the log's insert.
async fn write_lines(tx: &mut Tx, order_id: &str, lines: &[PricedLine]) -> Result<(), Error> {
    let head = "INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_amount)";
    let inserts = row_inserts(head, 5, "", lines.iter().enumerate(), |insert, (line_no, line)| {
        insert
            .bind(order_id)
            .bind(line_no as i64)
            .bind(&line.sku)
            .bind(line.quantity)
            .bind(line.unit_amount)
    });
    for insert in inserts {
        tx.defer(insert).await?;
    }
    Ok(())
}

/// A buyer whose identities nobody holds yet becomes a customer, and the order theirs.
async fn become_customer(tx: &mut Tx, new: &NewOrder, order_id: &str, now: Timestamp) -> Result<String, Error> {
    let id = resolve_customer_in(tx, &new.identities, new.customer_name.as_deref(), now, new.phone_region).await?;
    tx.defer(
        sql("UPDATE orders SET customer_id = $2 WHERE id = $1")
            .bind(order_id)
            .bind(&id),
    )
    .await?;
    Ok(id)
}

/// What placing an order decided, beyond what was asked.
struct Placed {
    order_id: String,
    number: i64,
    customer_id: Option<String>,
    totals: Totals,
    reservation: Reservation,
    fulfillments: Vec<FulfillmentRecord>,
}

impl Placed {
    /// The order as `read_order` would read it back, without reading it.
    fn into_order(self, new: &NewOrder, now: Timestamp) -> Order {
        let currency = &new.channel.draft.currency;
        let lines = new
            .lines
            .iter()
            .zip(self.reservation.lines)
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
        Order {
            id: self.order_id,
            number: order_number(self.number),
            channel_id: new.channel.id.clone(),
            external_id: new.external_id.clone(),
            customer_id: self.customer_id,
            email: new.email.clone(),
            status: Status::Allocated,
            lines,
            totals: self.totals,
            loyalty_points_redeemed: new.loyalty_points,
            fulfillment: new.fulfillment.clone(),
            shipping_address: new.shipping_address.clone(),
            fulfillments: self.fulfillments,
            returns: Vec::new(),
            payment_status: new.payment_status,
            hold_expires_at: new.hold_until,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Methods served at one store get their fulfilment at once: the store sees it to prepare.
pub(super) async fn hand_to_store(
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

/// Takes the points `redeemer` spends (see [`redemption`]); answers the discount they are worth.
pub(super) async fn redeem(
    tx: &mut Tx,
    redeemer: Option<&str>,
    points: i64,
    lines: &[(i64, i64)],
    order_id: &str,
    now: Timestamp,
) -> Result<i64, Error> {
    let discount = redemption(&LoyaltyProgram::default(), points, redeemer, lines)?;
    let Some(customer) = redeemer.filter(|_| points > 0) else {
        return Ok(discount);
    };
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
