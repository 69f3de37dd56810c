//! How values read to a person: money, moments, and the merchant's words for states.

use omnihub_domain::inventory::MovementReason;
use omnihub_domain::orders::{FulfillmentKind, FulfillmentStatus, Method, Status};
use omnihub_domain::{Money, Timestamp};
use time::OffsetDateTime;
use time::macros::format_description;

/// `49.00 EUR`, `-3.50 EUR`: minor units as decimals (two places: the currencies sold here).
pub fn money(money: &Money) -> String {
    let sign = if money.amount < 0 { "-" } else { "" };
    let abs = money.amount.unsigned_abs();
    format!("{sign}{}.{:02} {}", abs / 100, abs % 100, money.currency)
}

fn moment(at: Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.millis()) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2026-09-21 14:05` (UTC, the server's time, the same for every store).
pub fn when(at: Timestamp) -> String {
    moment(at)
        .format(format_description!("[year]-[month]-[day] [hour]:[minute]"))
        .unwrap_or_default()
}

/// The start of the UTC day `at` falls in.
pub fn day_start(at: Timestamp) -> Timestamp {
    let day = moment(at).date().midnight().assume_utc();
    Timestamp((day.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// `2026-09-21` from a date field, as the start of that UTC day.
pub fn parse_day(text: &str) -> Option<Timestamp> {
    Timestamp::parse(&format!("{}T00:00:00Z", text.trim()))
}

pub fn status(status: Status) -> &'static str {
    match status {
        Status::Placed => "Placed",
        Status::Allocated => "Allocated",
        Status::PartiallyFulfilled => "Partly fulfilled",
        Status::ReadyForPickup => "Ready for pick-up",
        Status::Shipped => "Shipped",
        Status::Completed => "Completed",
        Status::Cancelled => "Cancelled",
        Status::Returned => "Returned",
    }
}

pub fn method(method: Method) -> &'static str {
    match method {
        Method::Ship => "Shipping",
        Method::Pickup => "Pick-up in store",
        Method::SameDay => "Same-day delivery",
        Method::ReserveInStore => "Reserve in store",
    }
}

pub const METHODS: [Method; 4] = [Method::Ship, Method::Pickup, Method::SameDay, Method::ReserveInStore];

pub fn fulfillment_kind(kind: FulfillmentKind) -> &'static str {
    match kind {
        FulfillmentKind::Shipment => "Shipment",
        FulfillmentKind::Pickup => "Pick-up",
        FulfillmentKind::Delivery => "Delivery",
    }
}

pub fn fulfillment_status(status: FulfillmentStatus) -> &'static str {
    match status {
        FulfillmentStatus::Pending => "Being prepared",
        FulfillmentStatus::Ready => "Ready",
        FulfillmentStatus::Shipped => "Shipped",
        FulfillmentStatus::Delivered => "Delivered",
        FulfillmentStatus::Collected => "Collected",
        FulfillmentStatus::Cancelled => "Cancelled",
    }
}

pub fn reason(reason: MovementReason) -> &'static str {
    match reason {
        MovementReason::Receipt => "Goods received",
        MovementReason::Sale => "Sale",
        MovementReason::Count => "Stock count",
        MovementReason::Damage => "Damaged",
        MovementReason::Return => "Return",
        MovementReason::Correction => "Correction",
        MovementReason::TransferOut => "Transfer out",
        MovementReason::TransferIn => "Transfer in",
    }
}

/// `order.placed` → `Order placed`.
pub fn event_kind(kind: &str) -> String {
    let words = kind.replace(['.', '_'], " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_as_decimals() {
        assert_eq!(money(&Money::new(4900, "EUR")), "49.00 EUR");
        assert_eq!(money(&Money::new(-350, "EUR")), "-3.50 EUR");
        assert_eq!(money(&Money::new(5, "EUR")), "0.05 EUR");
    }

    #[test]
    fn days_start_at_midnight_utc() {
        let at = Timestamp::parse("2026-09-21T14:05:09Z").unwrap();
        assert_eq!(when(at), "2026-09-21 14:05");
        assert_eq!(day_start(at), parse_day("2026-09-21").unwrap());
        assert_eq!(parse_day("yesterday"), None);
    }

    #[test]
    fn event_kinds_read_as_words() {
        assert_eq!(
            event_kind("fulfillment.ready_for_pickup"),
            "Fulfillment ready for pickup"
        );
    }
}
