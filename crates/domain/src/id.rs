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

    /// Whether an id of this kind authorises by itself: whoever holds a cart's id (a shopper
    /// with the storefront's public key) may read and change the cart, so no cart id may be
    /// derivable from another.
    pub const fn is_bearer(self) -> bool {
        matches!(self, Kind::Cart | Kind::CartLine | Kind::WebchatVisitor)
    }
}

/// A fresh id of the given kind, ordered by creation time to the millisecond.
///
/// Bearer ids ([`Kind::is_bearer`]) carry 80 fresh random bits each. Other ids are strictly
/// increasing within one process, even within one millisecond (the random part counts up),
/// so "ORDER BY id" is creation order: a message and the answer written right after it.
pub fn new(kind: Kind) -> String {
    static GENERATOR: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());
    let now = || ulid::Ulid::from_datetime(std::time::SystemTime::now());
    let next = if kind.is_bearer() {
        now()
    } else {
        GENERATOR
            .lock()
            .ok()
            .and_then(|mut g| g.generate().ok())
            .unwrap_or_else(now)
    };
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

    /// The 80 random bits of an id, as a number.
    fn random_part(id: &str) -> u128 {
        let (_, ulid) = id.split_once('_').expect("a prefix");
        ulid::Ulid::from_string(&ulid.to_uppercase()).expect("a ULID").random()
    }

    #[test]
    fn bearer_ids_are_not_derivable_from_their_neighbours() {
        let carts: Vec<String> = (0..200).map(|_| new(Kind::Cart)).collect();
        for (i, a) in carts.iter().enumerate() {
            for b in &carts[i + 1..] {
                // Neighbours of a counter differ by one; random parts by ~2^79.
                assert!(random_part(a).abs_diff(random_part(b)) > 1 << 48, "{a} and {b}");
            }
        }
        let products = [new(Kind::Product), new(Kind::Product)];
        assert!(products[0] < products[1]);
    }
}
