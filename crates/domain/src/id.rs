//! Opaque ids: a type prefix over a time-ordered ULID (`prd_01J…`).

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
    Order,
    Cart,
    Customer,
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
            Kind::Order => "ord",
            Kind::Cart => "crt",
            Kind::Customer => "cus",
        }
    }
}

/// A fresh id of the given kind, ordered by creation time.
pub fn new(kind: Kind) -> String {
    format!("{}_{}", kind.prefix(), ulid::Ulid::new().to_string().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_sort_by_time() {
        let a = new(Kind::Product);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new(Kind::Product);
        assert!(a.starts_with("prd_"));
        assert_eq!(a.len(), 4 + 26);
        assert!(a < b);
    }
}
