//! Orders from every channel: carts, checkout totals, fulfilment methods and states, the order
//! state machine, returns and refunds.

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::catalog::{Address, Geo};
use crate::customers::LoyaltyProgram;
use crate::money::Money;
use crate::validation::{Check, Invalid};

/// How the customer gets the goods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Shipped from warehouses and ship-from stores.
    #[default]
    Ship,
    /// Bought online, picked up in a store.
    Pickup,
    /// Delivered the same day from a store whose radius covers the address.
    SameDay,
    /// Reserved in the app to try in the store; a sale only when collected.
    ReserveInStore,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Ship => "ship",
            Method::Pickup => "pickup",
            Method::SameDay => "same_day",
            Method::ReserveInStore => "reserve_in_store",
        }
    }

    pub fn parse(text: &str) -> Option<Method> {
        [Method::Ship, Method::Pickup, Method::SameDay, Method::ReserveInStore]
            .into_iter()
            .find(|m| m.as_str() == text)
    }

    /// Methods served at one store the customer (or courier) comes to.
    pub fn needs_store(self) -> bool {
        matches!(self, Method::Pickup | Method::ReserveInStore)
    }

    /// The kind of fulfilment this method makes.
    pub fn fulfillment_kind(self) -> FulfillmentKind {
        match self {
            Method::Ship => FulfillmentKind::Shipment,
            Method::Pickup | Method::ReserveInStore => FulfillmentKind::Pickup,
            Method::SameDay => FulfillmentKind::Delivery,
        }
    }
}

/// The chosen method, and the store for pick-up, reserve-in-store and (optionally) same-day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Fulfillment {
    pub method: Method,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
}

/// A delivery address, with coordinates when the storefront knows them (distance, same day).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ShippingAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub address: Address,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Placed,
    Allocated,
    PartiallyFulfilled,
    ReadyForPickup,
    Shipped,
    Completed,
    Cancelled,
    Returned,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Placed => "placed",
            Status::Allocated => "allocated",
            Status::PartiallyFulfilled => "partially_fulfilled",
            Status::ReadyForPickup => "ready_for_pickup",
            Status::Shipped => "shipped",
            Status::Completed => "completed",
            Status::Cancelled => "cancelled",
            Status::Returned => "returned",
        }
    }

    pub const ALL: [Status; 8] = [
        Status::Placed,
        Status::Allocated,
        Status::PartiallyFulfilled,
        Status::ReadyForPickup,
        Status::Shipped,
        Status::Completed,
        Status::Cancelled,
        Status::Returned,
    ];

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Every status that passes `rule` (to ask the database for orders a rule allows).
    pub fn all_that(rule: fn(Status) -> bool) -> impl Iterator<Item = Status> {
        Status::ALL.into_iter().filter(move |s| rule(*s))
    }

    /// An order may be cancelled until goods have left or been handed over.
    pub fn can_cancel(self) -> bool {
        matches!(self, Status::Placed | Status::Allocated | Status::ReadyForPickup)
    }

    /// Goods can be returned once some have reached the customer's hands or the carrier.
    pub fn can_return(self) -> bool {
        matches!(self, Status::PartiallyFulfilled | Status::Shipped | Status::Completed)
    }

    pub fn is_final(self) -> bool {
        matches!(self, Status::Cancelled | Status::Returned)
    }

    /// Still to be served: nothing has left, or not everything yet.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Status::Placed | Status::Allocated | Status::PartiallyFulfilled | Status::ReadyForPickup
        )
    }
}

/// Whether the hub waits for an order's payment. Orders whose payment the hub does not follow
/// (taken in from elsewhere, checked out by the shop's backend) have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Checked out through a storefront's public key: the stock is held only for the payment
    /// window, and nothing is handed over until the order is marked paid.
    Pending,
    Paid,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Paid => "paid",
        }
    }

    pub fn parse(text: &str) -> Option<PaymentStatus> {
        [PaymentStatus::Pending, PaymentStatus::Paid]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// Who checks a cart out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutBy {
    /// A shopper, through the storefront's public key: anyone may do it, so the order holds
    /// stock only until it is paid.
    Storefront,
    /// The shop's own backend, with a secret key: it answers for the payment itself.
    Backend,
}

/// How long a storefront's orders may wait for their payment, and how many one e-mail may
/// have waiting at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentRules {
    /// `None`: unpaid orders hold their stock until cancelled (not for public storefronts).
    pub window_seconds: Option<i64>,
    pub max_unpaid_per_email: i64,
}

impl Default for PaymentRules {
    fn default() -> Self {
        PaymentRules {
            window_seconds: Some(60 * 60),
            max_unpaid_per_email: 3,
        }
    }
}

/// The buyer an e-mail's unpaid orders count toward: one, however the e-mail is written.
pub fn buyer_of(email: &str) -> String {
    email.trim().to_lowercase()
}

/// What a new order waits for and until when it holds its stock: a reserve-in-store order
/// lapses after [`RESERVE_IN_STORE_HOURS`] unless collected; a storefront's order lapses at the
/// end of the payment window unless paid; the earlier of the two.
pub fn on_checkout(
    method: Method,
    by: CheckoutBy,
    rules: PaymentRules,
    now: Timestamp,
) -> (Option<PaymentStatus>, Option<Timestamp>) {
    let in_store = (method == Method::ReserveInStore).then(|| reserve_in_store_until(now));
    if by == CheckoutBy::Backend {
        return (None, in_store);
    }
    let unpaid = rules.window_seconds.map(|s| now.plus_seconds(s));
    let hold = match (in_store, unpaid) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    (Some(PaymentStatus::Pending), hold)
}

/// A storefront's order names its buyer's e-mail: the unpaid orders of each buyer are counted.
pub fn check_buyer(by: CheckoutBy, email: Option<&str>) -> Result<(), Invalid> {
    match (by, email.map(str::trim)) {
        (CheckoutBy::Storefront, None | Some("")) => Err(Invalid::one(
            "email",
            "required",
            "a storefront's order needs the buyer's e-mail",
        )),
        _ => Ok(()),
    }
}

/// Until when a paid order still holds its stock: a reserve-in-store order until its 48 hours
/// from `placed_at` are up; others until fulfilled.
pub fn hold_once_paid(method: Method, placed_at: Timestamp) -> Option<Timestamp> {
    (method == Method::ReserveInStore).then(|| reserve_in_store_until(placed_at))
}

/// An order may be marked paid while it waits for its payment and is not cancelled.
pub fn check_mark_paid(payment: Option<PaymentStatus>, status: Status) -> Result<(), String> {
    match payment {
        _ if status.is_final() => Err(format!("an order that is {} cannot be paid", status.as_str())),
        Some(PaymentStatus::Pending) => Ok(()),
        Some(PaymentStatus::Paid) => Err("the order is paid already".into()),
        None => Err("the hub does not follow this order's payment".into()),
    }
}

/// Goods leave (shipped, delivered, collected) only once a waiting payment has come.
pub fn check_handover(payment: Option<PaymentStatus>, next: FulfillmentStatus) -> Result<(), String> {
    if payment == Some(PaymentStatus::Pending) && next.has_left() {
        return Err("the order awaits its payment: mark it paid before handing anything over".into());
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FulfillmentKind {
    Shipment,
    Pickup,
    Delivery,
}

impl FulfillmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FulfillmentKind::Shipment => "shipment",
            FulfillmentKind::Pickup => "pickup",
            FulfillmentKind::Delivery => "delivery",
        }
    }

    pub fn parse(text: &str) -> Option<FulfillmentKind> {
        [
            FulfillmentKind::Shipment,
            FulfillmentKind::Pickup,
            FulfillmentKind::Delivery,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// Where one fulfilment is. Shipments and deliveries go `pending → shipped → delivered`;
/// pick-ups go `pending → ready → collected`. Any may be `cancelled` before goods leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FulfillmentStatus {
    Pending,
    Ready,
    Shipped,
    Delivered,
    Collected,
    Cancelled,
}

/// What can be done to a fulfilment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Ship,
    Ready,
    Collect,
    Deliver,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Ship => "ship",
            Step::Ready => "ready",
            Step::Collect => "collect",
            Step::Deliver => "deliver",
        }
    }
}

impl FulfillmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FulfillmentStatus::Pending => "pending",
            FulfillmentStatus::Ready => "ready",
            FulfillmentStatus::Shipped => "shipped",
            FulfillmentStatus::Delivered => "delivered",
            FulfillmentStatus::Collected => "collected",
            FulfillmentStatus::Cancelled => "cancelled",
        }
    }

    pub const ALL: [FulfillmentStatus; 6] = [
        FulfillmentStatus::Pending,
        FulfillmentStatus::Ready,
        FulfillmentStatus::Shipped,
        FulfillmentStatus::Delivered,
        FulfillmentStatus::Collected,
        FulfillmentStatus::Cancelled,
    ];

    pub fn parse(text: &str) -> Option<FulfillmentStatus> {
        FulfillmentStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Nothing has left the location yet: cancelling the order cancels it.
    pub fn is_open(self) -> bool {
        matches!(self, FulfillmentStatus::Pending | FulfillmentStatus::Ready)
    }

    /// Every open status (to ask the database for open fulfilments).
    pub fn open() -> impl Iterator<Item = FulfillmentStatus> {
        FulfillmentStatus::ALL.into_iter().filter(|s| s.is_open())
    }

    /// The status after `step`, or why the step is not allowed now.
    pub fn after(self, kind: FulfillmentKind, step: Step) -> Result<FulfillmentStatus, String> {
        use FulfillmentStatus as S;
        let next = match (kind, self, step) {
            (FulfillmentKind::Shipment | FulfillmentKind::Delivery, S::Pending, Step::Ship) => S::Shipped,
            (FulfillmentKind::Shipment | FulfillmentKind::Delivery, S::Shipped, Step::Deliver) => S::Delivered,
            (FulfillmentKind::Pickup, S::Pending, Step::Ready) => S::Ready,
            (FulfillmentKind::Pickup, S::Pending | S::Ready, Step::Collect) => S::Collected,
            _ => {
                return Err(format!(
                    "a {} fulfilment that is {} cannot {}",
                    kind.as_str(),
                    self.as_str(),
                    step.as_str()
                ));
            }
        };
        Ok(next)
    }

    /// Goods have left the location (stock was taken).
    pub fn has_left(self) -> bool {
        matches!(
            self,
            FulfillmentStatus::Shipped | FulfillmentStatus::Delivered | FulfillmentStatus::Collected
        )
    }

    /// Goods reached the customer.
    pub fn is_done(self) -> bool {
        matches!(self, FulfillmentStatus::Delivered | FulfillmentStatus::Collected)
    }
}

/// How much of each order line is where, to work out the order's status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub ordered: i64,
    /// In fulfilments whose goods have left.
    pub left: i64,
    /// Delivered or collected.
    pub done: i64,
    /// In pick-up fulfilments that are ready.
    pub ready: i64,
    pub returned: i64,
}

/// The order's status, derived from its fulfilments and returns: one rule, so the status can
/// never disagree with what happened.
pub fn derive_status(progress: Progress) -> Status {
    let p = progress;
    if p.ordered > 0 && p.returned >= p.ordered {
        Status::Returned
    } else if p.done >= p.ordered && p.ordered > 0 {
        Status::Completed
    } else if p.left >= p.ordered && p.ordered > 0 {
        Status::Shipped
    } else if p.left > 0 {
        Status::PartiallyFulfilled
    } else if p.ready >= p.ordered && p.ordered > 0 {
        Status::ReadyForPickup
    } else {
        Status::Allocated
    }
}

/// A human order number: `#1001`.
pub fn order_number(n: i64) -> String {
    format!("#{n}")
}

/// Subtotal, discount and total of some priced lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Totals {
    pub subtotal: Money,
    pub discount: Money,
    pub total: Money,
}

/// The sum of `(quantity, unit price)` lines; `None` when it would overflow.
pub fn subtotal(lines: &[(i64, i64)]) -> Option<i64> {
    lines.iter().try_fold(0i64, |sum, (quantity, unit)| {
        sum.checked_add(quantity.checked_mul(*unit)?)
    })
}

/// Totals of `(quantity, unit price)` lines less a discount, which never exceeds the subtotal.
/// Lines adding up to more than an `i64` holds are refused on field `lines` (`out_of_range`),
/// never wrapped.
/// Why an order whose hold lapsed was cancelled: a storefront's order not paid in time, or a
/// reserve-in-store order not collected.
pub fn lapse_reason(payment: Option<PaymentStatus>) -> &'static str {
    match payment {
        Some(PaymentStatus::Pending) => "it was not paid in time",
        _ => "the hold lapsed before it was collected",
    }
}

/// Whose loyalty points an order spends. A cart spends those of the customer it names, never
/// those of one found by its e-mail, which whoever holds the storefront's public key may type;
/// an order taken in from another system spends those of the customer it was resolved to.
pub fn redeemer<'a>(from_cart: bool, named: Option<&'a str>, resolved: Option<&'a str>) -> Option<&'a str> {
    if from_cart { named } else { resolved }
}

/// What `points` take off lines of (quantity, unit amount): only a known customer redeems, and
/// never more than the lines are worth. Whether the customer holds the points is checked as
/// they are taken.
pub fn redemption(
    program: &LoyaltyProgram,
    points: i64,
    redeemer: Option<&str>,
    lines: &[(i64, i64)],
) -> Result<i64, Invalid> {
    if points == 0 {
        return Ok(0);
    }
    if redeemer.is_none() {
        return Err(Invalid::one(
            "loyalty_points",
            "no_customer",
            "only a known customer can redeem points",
        ));
    }
    let subtotal = subtotal(lines).ok_or_else(|| crate::money::too_large("lines"))?;
    let discount = program.redemption_value(points);
    if discount > subtotal {
        return Err(Invalid::one(
            "loyalty_points",
            "out_of_range",
            "more points than the order is worth",
        ));
    }
    Ok(discount)
}

pub fn totals(lines: &[(i64, i64)], discount: i64, currency: &str) -> Result<Totals, Invalid> {
    let subtotal = subtotal(lines).ok_or_else(|| crate::money::too_large("lines"))?;
    let discount = discount.clamp(0, subtotal.max(0));
    Ok(Totals {
        subtotal: Money::new(subtotal, currency),
        discount: Money::new(discount, currency),
        total: Money::new(subtotal - discount, currency),
    })
}

/// What a return gives back: the redeemed points' share of what comes back, as points, and
/// the rest, per line, as cash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnSplit {
    /// Redeemed points given back.
    pub points: i64,
    /// The cash refund of each returned line, in the order given.
    pub cash: Vec<i64>,
}

impl ReturnSplit {
    /// The cash refund of the whole return.
    pub fn cash_total(&self) -> i64 {
        self.cash.iter().sum()
    }
}

/// Splits a return between redeemed points and cash. `lines` are the gross amounts (units ×
/// unit price) of the returned lines, `returned_before` the gross amount of the order's earlier
/// returns, `subtotal` the order's, `points_redeemed` what it was partly paid with, each point
/// worth `point_value` minor units. The points due grow with everything returned so far,
/// rounded down, so returns of every unit give back exactly the points redeemed and exactly
/// the cash paid. `None` when the amounts are beyond what can be worked with.
pub fn return_split(
    lines: &[i64],
    returned_before: i64,
    subtotal: i64,
    points_redeemed: i64,
    point_value: i64,
) -> Option<ReturnSplit> {
    let gross = lines.iter().try_fold(0i64, |sum, g| sum.checked_add(*g))?;
    if subtotal <= 0 || points_redeemed <= 0 || point_value <= 0 || gross <= 0 {
        return Some(ReturnSplit {
            points: 0,
            cash: lines.to_vec(),
        });
    }
    let due = |returned: i64| -> i128 {
        let returned = i128::from(returned.clamp(0, subtotal));
        (i128::from(points_redeemed) * returned).div_euclid(i128::from(subtotal))
    };
    let points = due(returned_before.checked_add(gross)?) - due(returned_before);
    let value = (points * i128::from(point_value)).min(i128::from(gross));
    // The value is spread over the lines by their running sum: the shares add up to it exactly.
    let mut cash = Vec::with_capacity(lines.len());
    let (mut running, mut shared) = (0i128, 0i128);
    for line in lines {
        running += i128::from(*line);
        let share_so_far = (value * running).div_euclid(i128::from(gross));
        let share = share_so_far - shared;
        shared = share_so_far;
        cash.push(i64::try_from((i128::from(*line) - share).max(0)).ok()?);
    }
    Some(ReturnSplit {
        points: i64::try_from(points).ok()?,
        cash,
    })
}

/// A line to put in a cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CartLineDraft {
    pub sku: String,
    pub quantity: i64,
}

impl CartLineDraft {
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut check = Check::new();
        crate::catalog::check_sku("sku", &self.sku, &mut check);
        check_quantity("quantity", self.quantity, &mut check);
        check.done()
    }
}

pub fn check_quantity(field: &str, quantity: i64, check: &mut Check) {
    if !(1..=10_000).contains(&quantity) {
        check.fail(field, "out_of_range", "must be between 1 and 10000");
    }
}

/// A line of a fulfilment or a return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ItemLine {
    pub sku: String,
    pub quantity: i64,
}

/// An order taken in from another system: its external id one line of 1 to 200 characters, no
/// negative points, sound lines.
pub fn check_intake(external_id: &str, loyalty_points: i64, lines: &[ItemLine]) -> Result<(), Invalid> {
    if external_id.trim().is_empty() || external_id.len() > 200 || external_id.chars().any(char::is_control) {
        return Err(Invalid::one(
            "external_id",
            "invalid",
            "must be 1 to 200 characters on one line",
        ));
    }
    if loyalty_points < 0 {
        return Err(Invalid::one("loyalty_points", "out_of_range", "must not be negative"));
    }
    check_item_lines(lines)
}

/// The unit prices of an order taken in: each in the channel's currency, each an amount.
pub fn check_prices(prices: &[&Money], currency: &str) -> Result<(), Invalid> {
    let mut check = Check::new();
    for (i, price) in prices.iter().enumerate() {
        if price.currency != currency {
            check.fail(
                format!("lines[{i}].unit_price"),
                "invalid",
                format!("must be a price in {currency}"),
            );
        } else {
            crate::money::check_amount(&format!("lines[{i}].unit_price.amount"), price.amount, &mut check);
        }
    }
    check.done()
}

/// A sale at a till (a POS channel) is picked up at once where it was rung up: the store it
/// names, else the channel's first location.
pub fn till_sale(fulfillment: &Fulfillment, channel_locations: &[String]) -> Fulfillment {
    Fulfillment {
        method: Method::Pickup,
        location_id: fulfillment
            .location_id
            .clone()
            .or_else(|| channel_locations.first().cloned()),
    }
}

pub fn check_item_lines(lines: &[ItemLine]) -> Result<(), Invalid> {
    let mut check = Check::new();
    if lines.is_empty() {
        check.fail("lines", "required", "name at least one line");
    }
    for (i, line) in lines.iter().enumerate() {
        check_quantity(&format!("lines[{i}].quantity"), line.quantity, &mut check);
        if lines[..i].iter().any(|l| l.sku == line.sku) {
            check.fail(format!("lines[{i}].sku"), "duplicate", "is listed twice");
        }
    }
    check.done()
}

/// How long a reserve-in-store order holds its items by default.
pub const RESERVE_IN_STORE_HOURS: i64 = 48;

/// When a reserve-in-store hold lapses.
pub fn reserve_in_store_until(now: Timestamp) -> Timestamp {
    now.plus_seconds(RESERVE_IN_STORE_HOURS * 3600)
}

/// What a client may set on a cart (a JSON Merge Patch over these fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CartDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The customer the order will be for: one that exists, neither merged nor erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<ShippingAddress>,
    #[serde(default)]
    pub fulfillment: Fulfillment,
    /// Loyalty points to redeem at checkout as a discount.
    #[serde(default)]
    pub loyalty_points: i64,
}

impl CartDetails {
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut check = Check::new();
        if let Some(email) = &self.email
            && (email.len() > 254 || !email.contains('@'))
        {
            check.fail("email", "invalid", "must be an e-mail address");
        }
        if let Some(address) = &self.shipping_address {
            address.address.check("shipping_address", &mut check);
            if let Some(geo) = &address.geo {
                geo.check("shipping_address.geo", &mut check);
            }
        }
        if self.loyalty_points < 0 {
            check.fail("loyalty_points", "out_of_range", "must not be negative");
        } else if self.loyalty_points > 0 && self.customer_id.is_none() {
            check.fail(
                "loyalty_points",
                "no_customer",
                "points are redeemed by the customer the cart names: set customer_id",
            );
        }
        check.done()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CartLine {
    pub id: String,
    pub sku: String,
    pub quantity: i64,
    /// The channel's price.
    pub unit_price: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CartStatus {
    Active,
    CheckedOut,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Cart {
    pub id: String,
    pub channel_id: String,
    pub status: CartStatus,
    #[serde(flatten)]
    pub details: CartDetails,
    pub lines: Vec<CartLine>,
    #[serde(flatten)]
    pub totals: Totals,
    /// The order it became, once checked out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderLine {
    pub sku: String,
    pub quantity: i64,
    pub unit_price: Money,
    /// Which locations hold or gave the units.
    pub allocations: Vec<crate::inventory::Allocation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FulfillmentRecord {
    pub id: String,
    pub location_id: String,
    pub kind: FulfillmentKind,
    pub status: FulfillmentStatus,
    pub lines: Vec<ItemLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking_number: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReturnRecord {
    pub id: String,
    pub location_id: String,
    pub restock: bool,
    pub reason: String,
    pub lines: Vec<ItemLine>,
    /// The cash paid back: the price of these units less the redeemed loyalty points' share,
    /// which comes back as points (a `redemption_returned` entry of the customer's ledger).
    pub refund: Money,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Order {
    pub id: String,
    /// Human number, `#1001`.
    pub number: String,
    pub channel_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub customer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub status: Status,
    pub lines: Vec<OrderLine>,
    #[serde(flatten)]
    pub totals: Totals,
    pub loyalty_points_redeemed: i64,
    pub fulfillment: Fulfillment,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipping_address: Option<ShippingAddress>,
    pub fulfillments: Vec<FulfillmentRecord>,
    pub returns: Vec<ReturnRecord>,
    /// Whether the hub waits for the order's payment (storefront checkouts); absent where it
    /// does not follow the payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_status: Option<PaymentStatus>,
    /// When the stock's hold lapses and the order is cancelled: a reserve-in-store order not
    /// collected, a storefront's order not paid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_expires_at: Option<Timestamp>,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Order {
    /// Whether the order is a location's own business: sold, picked up or reserved there, or
    /// with goods held, fulfilled or returned there.
    pub fn concerns(&self, location_id: &str) -> bool {
        self.fulfillment.location_id.as_deref() == Some(location_id)
            || (self.lines.iter().flat_map(|l| &l.allocations)).any(|a| a.location_id == location_id)
            || self.fulfillments.iter().any(|f| f.location_id == location_id)
            || self.returns.iter().any(|r| r.location_id == location_id)
    }

    /// Whether a store's staff may find the order: their store's own by its number alone; any
    /// other (an online order brought back to the store) only with the buyer's e-mail beside
    /// the number, so that nobody at a till pages through every customer's orders.
    pub fn found_at_desk(&self, store: &str, email: Option<&str>) -> bool {
        let proven = match (email, &self.email) {
            (Some(given), Some(own)) => !given.trim().is_empty() && buyer_of(given) == buyer_of(own),
            _ => false,
        };
        self.concerns(store) || proven
    }

    /// Units of a SKU held at a location for the order and not yet in a live fulfilment.
    pub fn unfulfilled(&self, sku: &str, location_id: &str) -> i64 {
        let held: i64 = (self.lines.iter().filter(|l| l.sku == sku))
            .flat_map(|l| &l.allocations)
            .filter(|a| a.location_id == location_id)
            .map(|a| a.quantity)
            .sum();
        let in_fulfilments: i64 = (self.fulfillments.iter())
            .filter(|f| f.location_id == location_id && f.status != FulfillmentStatus::Cancelled)
            .flat_map(|f| &f.lines)
            .filter(|l| l.sku == sku)
            .map(|l| l.quantity)
            .sum();
        held - in_fulfilments
    }

    /// What returning `lines` now gives back, in points and in cash per line (see
    /// [`return_split`]); refused when a line is more than can be returned.
    pub fn refund_of(&self, lines: &[ItemLine], program: &LoyaltyProgram) -> Result<ReturnSplit, Invalid> {
        let unit_of = |sku: &str| {
            self.lines
                .iter()
                .find(|l| l.sku == sku)
                .map_or(0, |l| l.unit_price.amount)
        };
        let mut gross = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            let returnable = self.returnable(&line.sku);
            if line.quantity > returnable {
                return Err(Invalid::one(
                    format!("lines[{i}].quantity"),
                    "exceeds_purchased",
                    format!("only {returnable} units of {} can be returned", line.sku),
                ));
            }
            let amount = line.quantity.checked_mul(unit_of(&line.sku));
            gross.push(amount.ok_or_else(|| crate::money::too_large(&format!("lines[{i}].quantity")))?);
        }
        let returned_before = (self.returns.iter().flat_map(|r| &r.lines))
            .try_fold(0i64, |sum, l| sum.checked_add(l.quantity.checked_mul(unit_of(&l.sku))?))
            .ok_or_else(|| crate::money::too_large("lines"))?;
        let (subtotal, redeemed) = (self.totals.subtotal.amount, self.loyalty_points_redeemed);
        return_split(&gross, returned_before, subtotal, redeemed, program.point_value_minor)
            .ok_or_else(|| crate::money::too_large("lines"))
    }

    /// Units of a SKU that reached the customer (or the carrier) and have not come back yet.
    pub fn returnable(&self, sku: &str) -> i64 {
        let left: i64 = (self.fulfillments.iter().filter(|f| f.status.has_left()))
            .flat_map(|f| &f.lines)
            .filter(|l| l.sku == sku)
            .map(|l| l.quantity)
            .sum();
        let back: i64 = (self.returns.iter().flat_map(|r| &r.lines))
            .filter(|l| l.sku == sku)
            .map(|l| l.quantity)
            .sum();
        left - back
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_intake_is_one_line_of_id_with_lines_priced_in_the_channels_currency() {
        let line = [ItemLine {
            sku: "SKU-1".into(),
            quantity: 1,
        }];
        assert_eq!(check_intake("ext-1", 0, &line), Ok(()));
        let first = |r: Result<(), Invalid>| r.unwrap_err().0[0].clone();
        assert_eq!(first(check_intake("a\nb", 0, &line)).field, "external_id");
        assert_eq!(first(check_intake(" ", 0, &line)).field, "external_id");
        assert_eq!(first(check_intake("ext-1", -1, &line)).code, "out_of_range");
        assert_eq!(first(check_intake("ext-1", 0, &[])).field, "lines");
        let (euros, dollars, negative) = (Money::new(500, "EUR"), Money::new(5, "USD"), Money::new(-5, "EUR"));
        assert_eq!(check_prices(&[&euros], "EUR"), Ok(()));
        assert_eq!(
            first(check_prices(&[&euros, &dollars], "EUR")).field,
            "lines[1].unit_price"
        );
        assert_eq!(
            first(check_prices(&[&negative], "EUR")).field,
            "lines[0].unit_price.amount"
        );
    }

    #[test]
    fn a_till_sale_is_picked_up_where_it_was_rung_up() {
        let asked = Fulfillment {
            method: Method::Ship,
            location_id: None,
        };
        let stores = ["loc_a".to_string(), "loc_b".to_string()];
        assert_eq!(till_sale(&asked, &stores).location_id.as_deref(), Some("loc_a"));
        assert_eq!(till_sale(&asked, &stores).method, Method::Pickup);
        let named = Fulfillment {
            location_id: Some("loc_b".into()),
            ..asked
        };
        assert_eq!(till_sale(&named, &stores).location_id.as_deref(), Some("loc_b"));
    }

    #[test]
    fn a_cart_spends_only_the_points_of_the_customer_it_names() {
        assert_eq!(redeemer(true, None, Some("cus_found_by_email")), None);
        assert_eq!(redeemer(true, Some("cus_named"), Some("cus_found")), Some("cus_named"));
        assert_eq!(redeemer(false, None, Some("cus_resolved")), Some("cus_resolved"));
    }

    #[test]
    fn points_redeem_for_a_known_customer_up_to_what_the_order_is_worth() {
        let program = LoyaltyProgram::default();
        let lines = [(2, 500)];
        assert_eq!(redemption(&program, 0, None, &lines), Ok(0));
        let nobody = redemption(&program, 100, None, &lines).unwrap_err();
        assert_eq!(nobody.0[0].code, "no_customer");
        let worth = program.redemption_value(100);
        assert_eq!(redemption(&program, 100, Some("cus_1"), &lines), Ok(worth));
        let too_many = redemption(&program, 1_000_000, Some("cus_1"), &lines).unwrap_err();
        assert_eq!(too_many.0[0].code, "out_of_range");
    }

    #[test]
    fn the_status_lists_asked_of_the_database_follow_the_rules() {
        let cancellable: Vec<&str> = Status::all_that(Status::can_cancel).map(Status::as_str).collect();
        assert_eq!(cancellable, ["placed", "allocated", "ready_for_pickup"]);
        let open: Vec<&str> = FulfillmentStatus::open().map(FulfillmentStatus::as_str).collect();
        assert_eq!(open, ["pending", "ready"]);
        assert!(Status::ALL.iter().all(|s| Status::parse(s.as_str()) == Some(*s)));
    }

    fn progress(ordered: i64, left: i64, done: i64, ready: i64, returned: i64) -> Progress {
        Progress {
            ordered,
            left,
            done,
            ready,
            returned,
        }
    }

    #[test]
    fn status_follows_what_happened() {
        assert_eq!(derive_status(progress(3, 0, 0, 0, 0)), Status::Allocated);
        assert_eq!(derive_status(progress(3, 0, 0, 3, 0)), Status::ReadyForPickup);
        assert_eq!(derive_status(progress(3, 1, 0, 0, 0)), Status::PartiallyFulfilled);
        assert_eq!(derive_status(progress(3, 3, 1, 0, 0)), Status::Shipped);
        assert_eq!(derive_status(progress(3, 3, 3, 0, 0)), Status::Completed);
        assert_eq!(derive_status(progress(3, 3, 3, 0, 1)), Status::Completed);
        assert_eq!(derive_status(progress(3, 3, 3, 0, 3)), Status::Returned);
    }

    #[test]
    fn a_storefronts_order_holds_its_stock_for_the_payment_window_only() {
        let now = Timestamp(1_000_000);
        let rules = PaymentRules::default();
        let hour = now.plus_seconds(3600);
        assert_eq!(
            on_checkout(Method::Ship, CheckoutBy::Storefront, rules, now),
            (Some(PaymentStatus::Pending), Some(hour))
        );
        assert_eq!(on_checkout(Method::Ship, CheckoutBy::Backend, rules, now), (None, None));
        // Reserve in store: the earlier of its 48 hours and the payment window.
        assert_eq!(
            on_checkout(Method::ReserveInStore, CheckoutBy::Storefront, rules, now).1,
            Some(hour)
        );
        let no_window = PaymentRules {
            window_seconds: None,
            ..rules
        };
        assert_eq!(
            on_checkout(Method::ReserveInStore, CheckoutBy::Storefront, no_window, now),
            (Some(PaymentStatus::Pending), Some(reserve_in_store_until(now)))
        );
        assert_eq!(
            on_checkout(Method::ReserveInStore, CheckoutBy::Backend, rules, now).1,
            Some(reserve_in_store_until(now))
        );
        assert_eq!(hold_once_paid(Method::Pickup, now), None);
        assert_eq!(
            hold_once_paid(Method::ReserveInStore, now),
            Some(reserve_in_store_until(now))
        );
    }

    #[test]
    fn a_storefronts_buyer_is_named_by_an_email() {
        assert!(check_buyer(CheckoutBy::Storefront, None).is_err());
        assert!(check_buyer(CheckoutBy::Storefront, Some(" ")).is_err());
        assert!(check_buyer(CheckoutBy::Storefront, Some("ann@example.com")).is_ok());
        assert!(check_buyer(CheckoutBy::Backend, None).is_ok());
    }

    #[test]
    fn only_a_waiting_live_order_is_marked_paid_and_nothing_leaves_before() {
        let pending = Some(PaymentStatus::Pending);
        assert!(check_mark_paid(pending, Status::Allocated).is_ok());
        assert!(check_mark_paid(pending, Status::Cancelled).is_err());
        assert!(check_mark_paid(Some(PaymentStatus::Paid), Status::Allocated).is_err());
        assert!(check_mark_paid(None, Status::Allocated).is_err());
        assert!(check_handover(pending, FulfillmentStatus::Ready).is_ok());
        for left in [
            FulfillmentStatus::Shipped,
            FulfillmentStatus::Delivered,
            FulfillmentStatus::Collected,
        ] {
            assert!(check_handover(pending, left).is_err());
            assert!(check_handover(Some(PaymentStatus::Paid), left).is_ok());
            assert!(check_handover(None, left).is_ok());
        }
        assert_eq!(PaymentStatus::parse("pending"), pending);
    }

    fn shipped_from(location: &str, email: Option<&str>) -> Order {
        let eur = |amount| Money::new(amount, "EUR");
        Order {
            id: "ord_1".into(),
            number: "#1001".into(),
            channel_id: "chn_web".into(),
            external_id: None,
            customer_id: None,
            email: email.map(str::to_owned),
            status: Status::Allocated,
            lines: vec![OrderLine {
                sku: "A".into(),
                quantity: 1,
                unit_price: eur(1000),
                allocations: vec![crate::inventory::Allocation {
                    location_id: location.into(),
                    quantity: 1,
                }],
            }],
            totals: Totals {
                subtotal: eur(1000),
                discount: eur(0),
                total: eur(1000),
            },
            loyalty_points_redeemed: 0,
            fulfillment: Fulfillment {
                method: Method::Ship,
                location_id: None,
            },
            shipping_address: None,
            fulfillments: Vec::new(),
            returns: Vec::new(),
            payment_status: None,
            hold_expires_at: None,
            version: 1,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    #[test]
    fn a_store_finds_its_own_orders_by_number_and_others_with_the_buyers_email() {
        let order = shipped_from("loc_warehouse", Some("Ann@Example.com"));
        assert!(order.found_at_desk("loc_warehouse", None));
        assert!(!order.found_at_desk("loc_store", None));
        assert!(!order.found_at_desk("loc_store", Some("eve@example.com")));
        assert!(order.found_at_desk("loc_store", Some(" ann@example.com ")));
        let anonymous = shipped_from("loc_warehouse", None);
        assert!(!anonymous.found_at_desk("loc_store", Some("")));
        let picked_up = Order {
            fulfillment: Fulfillment {
                method: Method::Pickup,
                location_id: Some("loc_store".into()),
            },
            ..anonymous
        };
        assert!(picked_up.found_at_desk("loc_store", None));
    }

    #[test]
    fn fulfilment_steps_follow_their_kind() {
        use FulfillmentStatus as S;
        assert_eq!(S::Pending.after(FulfillmentKind::Shipment, Step::Ship), Ok(S::Shipped));
        assert_eq!(
            S::Shipped.after(FulfillmentKind::Shipment, Step::Deliver),
            Ok(S::Delivered)
        );
        assert!(S::Pending.after(FulfillmentKind::Shipment, Step::Collect).is_err());
        assert_eq!(S::Pending.after(FulfillmentKind::Pickup, Step::Ready), Ok(S::Ready));
        assert_eq!(S::Ready.after(FulfillmentKind::Pickup, Step::Collect), Ok(S::Collected));
        assert!(
            S::Collected.after(FulfillmentKind::Pickup, Step::Collect).is_err(),
            "no double collect"
        );
        assert!(S::Cancelled.after(FulfillmentKind::Delivery, Step::Ship).is_err());
    }

    #[test]
    fn totals_never_discount_below_zero() {
        let t = totals(&[(2, 1000), (1, 550)], 3000, "EUR").unwrap();
        assert_eq!((t.subtotal.amount, t.discount.amount, t.total.amount), (2550, 2550, 0));
        let t = totals(&[(2, 1000)], 150, "EUR").unwrap();
        assert_eq!(t.total.amount, 1850);
    }

    #[test]
    fn totals_and_refunds_refuse_to_overflow() {
        let huge = i64::MAX;
        assert!(totals(&[(1, huge), (1, huge)], 0, "EUR").is_err());
        assert!(totals(&[(2, huge)], 0, "EUR").is_err());
        assert_eq!(return_split(&[huge, huge], 0, huge, 0, 1), None);
        assert_eq!(return_split(&[huge], huge, huge, 1, 1), None);
    }

    proptest! {
        #[test]
        fn returns_of_every_unit_give_back_the_points_and_the_cash_paid(
            lines in proptest::collection::vec((1i64..20, 1i64..50_000), 1..6),
            points_share in 0i64..=100,
            split in 1usize..6,
        ) {
            let gross: Vec<i64> = lines.iter().map(|(q, u)| q * u).collect();
            let subtotal: i64 = gross.iter().sum();
            let points = subtotal * points_share / 100;
            let (mut returned, mut points_back, mut cash_back) = (0, 0, 0);
            for chunk in gross.chunks(split) {
                let back = return_split(chunk, returned, subtotal, points, 1).unwrap();
                prop_assert!(back.cash.iter().zip(chunk).all(|(cash, g)| (0..=*g).contains(cash)));
                prop_assert_eq!(back.points + back.cash_total(), chunk.iter().sum::<i64>());
                returned += chunk.iter().sum::<i64>();
                points_back += back.points;
                cash_back += back.cash_total();
            }
            prop_assert_eq!(points_back, points);
            prop_assert_eq!(cash_back, subtotal - points);
        }
    }
}
