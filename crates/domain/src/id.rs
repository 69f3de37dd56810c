//! Opaque ids: a type prefix over a time-ordered ULID (`prd_01J…`).

use std::sync::Mutex;

/// The prefix of each kind of resource's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Product,
    Variant,
    Location,
    Channel,
    ApiKey,
    Event,
    Reservation,
    Movement,
    Fulfillment,
    Return,
    CartLine,
    Order,
    Cart,
    Customer,
    CustomerMerge,
    LoyaltyMovement,
    TimelineEntry,
    Spend,
    WebhookEndpoint,
    WebhookDelivery,
    ServerNode,
    Inbox,
    Conversation,
    Message,
    CannedReply,
    User,
    FaqEntry,
    WebchatVisitor,
}

impl Kind {
    pub const fn prefix(self) -> &'static str {
        match self {
            Kind::Product => "prd",
            Kind::Variant => "var",
            Kind::Location => "loc",
            Kind::Channel => "chn",
            Kind::ApiKey => "key",
            Kind::Event => "evt",
            Kind::Reservation => "res",
            Kind::Movement => "mov",
            Kind::Fulfillment => "ful",
            Kind::Return => "ret",
            Kind::CartLine => "cli",
            Kind::Order => "ord",
            Kind::Cart => "crt",
            Kind::Customer => "cus",
            Kind::CustomerMerge => "mrg",
            Kind::LoyaltyMovement => "lpt",
            Kind::TimelineEntry => "tle",
            Kind::Spend => "spd",
            Kind::WebhookEndpoint => "whe",
            Kind::WebhookDelivery => "whd",
            Kind::ServerNode => "srv",
            Kind::Inbox => "inb",
            Kind::Conversation => "cnv",
            Kind::Message => "msg",
            Kind::CannedReply => "cnr",
            Kind::User => "usr",
            Kind::FaqEntry => "faq",
            Kind::WebchatVisitor => "wcv",
        }
    }
}

/// A fresh id of the given kind, ordered by creation time. Within one process ids are strictly
/// increasing, even within one millisecond, so "ORDER BY id" is creation order.
pub fn new(kind: Kind) -> String {
    static GENERATOR: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());
    let next = GENERATOR
        .lock()
        .ok()
        .and_then(|mut g| g.generate().ok())
        .unwrap_or_else(|| ulid::Ulid::from_datetime(std::time::SystemTime::now()));
    format!("{}_{}", kind.prefix(), next.to_string().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_sort_by_time() {
        let a = new(Kind::Product);
        let b = new(Kind::Product);
        assert!(a.starts_with("prd_"));
        assert_eq!(a.len(), 4 + 26);
        assert!(a < b);
    }
}
