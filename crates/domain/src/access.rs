//! Who may do what: API key scopes and the principal behind a request.

use crate::validation::{Check, Invalid};

string_enum! {
    /// What an API key may do, as stored with the key and named by the routes.
    /// `<area>:write` implies `<area>:read`; `admin` implies all.
    pub enum Scope {
        CatalogRead = "catalog:read",
        CatalogWrite = "catalog:write",
        InventoryRead = "inventory:read",
        InventoryWrite = "inventory:write",
        OrdersRead = "orders:read",
        OrdersWrite = "orders:write",
        CustomersRead = "customers:read",
        CustomersWrite = "customers:write",
        ConversationsRead = "conversations:read",
        ConversationsWrite = "conversations:write",
        EventsRead = "events:read",
        Admin = "admin",
        /// Working with carts: what a publishable key does, and a secret key through
        /// `orders:write`; never given to a key by name.
        CartsWrite = "carts:write",
    }
}

impl Scope {
    /// The scopes a secret key may be given by name, in the order they are offered.
    pub fn for_secret_keys() -> impl Iterator<Item = Scope> {
        Scope::ALL.iter().copied().filter(|scope| *scope != Scope::CartsWrite)
    }

    /// Whether a key holding this scope may do what `needed` allows.
    pub fn grants(self, needed: Scope) -> bool {
        self == needed || self == Scope::Admin || self.implied().contains(&needed)
    }

    /// What holding this scope brings along besides itself (`admin` aside, which brings all).
    fn implied(self) -> &'static [Scope] {
        match self {
            Scope::CatalogWrite => &[Scope::CatalogRead],
            Scope::InventoryWrite => &[Scope::InventoryRead],
            // Carts are part of orders for secret keys.
            Scope::OrdersWrite => &[Scope::OrdersRead, Scope::CartsWrite],
            Scope::CustomersWrite => &[Scope::CustomersRead],
            Scope::ConversationsWrite => &[Scope::ConversationsRead],
            Scope::CatalogRead
            | Scope::InventoryRead
            | Scope::OrdersRead
            | Scope::CustomersRead
            | Scope::ConversationsRead
            | Scope::EventsRead
            | Scope::Admin
            | Scope::CartsWrite => &[],
        }
    }
}

/// What a publishable key may do, always limited to its own sales channel: read the catalog
/// and availability, and work with carts.
const PUBLISHABLE_SCOPES: [Scope; 3] = [Scope::CatalogRead, Scope::InventoryRead, Scope::CartsWrite];

/// What one client may do without a secret key, in one place (an inbox, a sales channel): web
/// chat visitors and storefront shoppers are anybody, so each is bounded. Counted per server
/// process, in fixed windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PublicLimit {
    /// Chat sessions opened from one client address: enough for a household behind one router.
    ChatSessions,
    /// Chat messages written by one visitor.
    ChatMessages,
    /// Chat messages naming an order number from one client address, whatever session they
    /// come from: each may be a guess at another person's order.
    OrderLookups,
    /// Checkouts through a storefront's public key from one client address: each holds stock
    /// until it is paid or lapses.
    StorefrontCheckouts,
}

impl PublicLimit {
    /// How many are allowed per window, and the window in milliseconds.
    pub const fn allowance(self) -> (u32, i64) {
        match self {
            PublicLimit::ChatSessions => (20, 60_000),
            PublicLimit::ChatMessages => (30, 60_000),
            PublicLimit::OrderLookups => (5, 60 * 60_000),
            PublicLimit::StorefrontCheckouts => (20, 60 * 60_000),
        }
    }

    /// Counts one more at `now_ms` on a counter `(window_start_ms, count)`: the counter after it,
    /// and whether this one is allowed. A window passed starts a new one.
    pub fn count(self, counter: Option<(i64, u32)>, now_ms: i64) -> ((i64, u32), bool) {
        let (limit, window) = self.allowance();
        let (start, count) = match counter {
            Some((start, count)) if now_ms - start < window => (start, count + 1),
            _ => (now_ms, 1),
        };
        ((start, count), count <= limit)
    }
}

pub fn check_scopes(scopes: &[String]) -> Result<(), Invalid> {
    let mut check = Check::new();
    if scopes.is_empty() {
        check.fail("scopes", "required", "a secret key needs at least one scope");
    }
    for (i, scope) in scopes.iter().enumerate() {
        if !Scope::for_secret_keys().any(|known| known == scope.as_str()) {
            let known: Vec<&str> = Scope::for_secret_keys().map(Scope::as_str).collect();
            check.fail(
                format!("scopes[{i}]"),
                "invalid",
                format!("unknown scope; known: {}", known.join(", ")),
            );
        }
    }
    check.done()
}

/// The routes (under `/api/v1`, `{}` for an id) a publishable key may use, so the only ones a
/// browser on the shop's pages is let call across sites. Each also takes a publishable key in
/// its handler: this list only answers browsers' preflights.
const PUBLISHABLE_ROUTES: &[(&str, &str)] = &[
    ("GET", "/availability"),
    ("GET", "/channels/{}"),
    ("GET", "/locations"),
    ("GET", "/locations/{}"),
    ("GET", "/products"),
    ("GET", "/products/{}"),
    ("POST", "/carts"),
    ("GET", "/carts/{}"),
    ("PATCH", "/carts/{}"),
    ("POST", "/carts/{}/lines"),
    ("PATCH", "/carts/{}/lines/{}"),
    ("DELETE", "/carts/{}/lines/{}"),
    ("POST", "/carts/{}/checkout"),
];

/// Whether a publishable key may use `method` on `path` (under `/api/v1`).
pub fn publishable_route(method: &str, path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    PUBLISHABLE_ROUTES.iter().any(|(m, pattern)| {
        let pattern: Vec<&str> = pattern.split('/').collect();
        *m == method
            && pattern.len() == segments.len()
            && pattern
                .iter()
                .zip(&segments)
                .all(|(p, s)| if *p == "{}" { !s.is_empty() } else { p == s })
    })
}

/// A site's origin as browsers send it (`https://shop.example`, `http://localhost:3000`):
/// scheme, host and port, lower-cased, nothing else; `None` for anything else.
pub fn origin(text: &str) -> Option<String> {
    let url = url::Url::parse(text.trim()).ok()?;
    let bare = matches!(url.path(), "" | "/") && url.query().is_none() && url.fragment().is_none();
    let plain = url.username().is_empty() && url.password().is_none() && url.host().is_some();
    (matches!(url.scheme(), "http" | "https") && bare && plain).then(|| url.origin().ascii_serialization())
}

/// The sites whose pages may use a publishable key, each in its canonical form, once.
pub fn check_origins(origins: &[String]) -> Result<Vec<String>, Invalid> {
    let mut check = Check::new();
    let mut canonical: Vec<String> = Vec::new();
    for (i, text) in origins.iter().enumerate() {
        match origin(text) {
            Some(origin) if !canonical.contains(&origin) => canonical.push(origin),
            Some(_) => {}
            None => check.fail(
                format!("origins[{i}]"),
                "invalid",
                "must be a site's origin such as https://shop.example (no path)",
            ),
        }
    }
    check.done().map(|()| canonical)
}

/// The holder of the API key a request was made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Secret {
        key_id: String,
        scopes: Vec<Scope>,
    },
    /// A key of one sales channel, for the pages of the sites in `origins` (and for servers,
    /// which send no `Origin`).
    Publishable {
        key_id: String,
        channel_id: String,
        origins: Vec<String>,
    },
}

impl Principal {
    pub fn key_id(&self) -> &str {
        match self {
            Principal::Secret { key_id, .. } | Principal::Publishable { key_id, .. } => key_id,
        }
    }

    /// The sales channel a publishable key is bound to.
    pub fn channel(&self) -> Option<&str> {
        match self {
            Principal::Publishable { channel_id, .. } => Some(channel_id),
            Principal::Secret { .. } => None,
        }
    }

    /// Whether a browser on the pages of `origin` may use this key. Never a secret key: it
    /// must not live in a page at all.
    pub fn allows_origin(&self, origin: &str) -> bool {
        match self {
            Principal::Publishable { origins, .. } => origins.iter().any(|o| o == origin),
            Principal::Secret { .. } => false,
        }
    }

    pub fn allows(&self, needed: Scope) -> bool {
        match self {
            Principal::Publishable { .. } => PUBLISHABLE_SCOPES.contains(&needed),
            Principal::Secret { scopes, .. } => scopes.iter().any(|held| held.grants(needed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_limits_count_in_fixed_windows() {
        let limit = PublicLimit::OrderLookups;
        let mut counter = None;
        for _ in 0..5 {
            let (next, allowed) = limit.count(counter, 1_000);
            assert!(allowed);
            counter = Some(next);
        }
        assert!(!limit.count(counter, 2_000).1, "the sixth within the hour");
        assert!(limit.count(counter, 1_000 + 60 * 60_000).1, "a new window");
    }

    #[test]
    fn origins_are_sites_without_paths() {
        assert_eq!(origin("https://Shop.Example/").as_deref(), Some("https://shop.example"));
        assert_eq!(
            origin("http://localhost:3000").as_deref(),
            Some("http://localhost:3000")
        );
        assert_eq!(
            origin("https://shop.example:443").as_deref(),
            Some("https://shop.example")
        );
        for bad in [
            "shop.example",
            "https://shop.example/cart",
            "ftp://shop.example",
            "null",
            "https://a@shop.example",
        ] {
            assert_eq!(origin(bad), None, "{bad}");
        }
        let listed = ["https://shop.example".to_owned(), "https://SHOP.example/".to_owned()];
        assert_eq!(check_origins(&listed).unwrap(), ["https://shop.example"]);
        let Invalid(errors) = check_origins(&["https://shop.example/x".to_owned()]).unwrap_err();
        assert_eq!(errors[0].field, "origins[0]");
    }

    #[test]
    fn browsers_may_call_only_the_routes_of_publishable_keys() {
        assert!(publishable_route("GET", "/products/prd_1"));
        assert!(publishable_route("POST", "/carts/crt_1/checkout"));
        assert!(publishable_route("DELETE", "/carts/crt_1/lines/ln_2"));
        assert!(!publishable_route("POST", "/products"));
        assert!(!publishable_route("GET", "/customers"));
        assert!(!publishable_route("GET", "/products//"));
        assert!(!publishable_route("GET", "/carts/crt_1/lines/ln_2/x"));
        let key = Principal::Publishable {
            key_id: "key_1".into(),
            channel_id: "chn_1".into(),
            origins: vec!["https://shop.example".into()],
        };
        assert!(key.allows_origin("https://shop.example"));
        assert!(!key.allows_origin("https://evil.example"));
        assert!(!secret(&[Scope::Admin]).allows_origin("https://shop.example"));
    }

    fn secret(scopes: &[Scope]) -> Principal {
        Principal::Secret {
            key_id: "key_1".into(),
            scopes: scopes.to_vec(),
        }
    }

    #[test]
    fn write_implies_read_and_admin_implies_all() {
        assert!(secret(&[Scope::CatalogWrite]).allows(Scope::CatalogRead));
        assert!(!secret(&[Scope::CatalogRead]).allows(Scope::CatalogWrite));
        assert!(!secret(&[Scope::CatalogWrite]).allows(Scope::InventoryRead));
        assert!(secret(&[Scope::Admin]).allows(Scope::InventoryWrite));
        assert!(secret(&[Scope::OrdersWrite]).allows(Scope::CartsWrite));
    }

    #[test]
    fn publishable_keys_only_read_and_use_carts() {
        let key = Principal::Publishable {
            key_id: "key_1".into(),
            channel_id: "chn_1".into(),
            origins: Vec::new(),
        };
        assert!(key.allows(Scope::CatalogRead));
        assert!(key.allows(Scope::CartsWrite));
        assert!(!key.allows(Scope::CatalogWrite));
        assert!(!key.allows(Scope::Admin));
    }

    #[test]
    fn unknown_scopes_are_refused() {
        assert!(check_scopes(&["catalog:read".into()]).is_ok());
        assert!(check_scopes(&["catalog:delete".into()]).is_err());
        assert!(check_scopes(&[]).is_err());
        assert!(check_scopes(&["carts:write".into()]).is_err(), "never given by name");
        let Invalid(errors) = check_scopes(&["catalog:delete".into()]).unwrap_err();
        assert_eq!(
            errors[0].message,
            "unknown scope; known: catalog:read, catalog:write, inventory:read, inventory:write, \
             orders:read, orders:write, customers:read, customers:write, conversations:read, \
             conversations:write, events:read, admin"
        );
    }

    #[test]
    fn every_scope_round_trips_through_its_own_string() {
        crate::string_enum::assert_spelled_once(Scope::ALL, Scope::as_str, Scope::parse);
        assert_eq!(Scope::for_secret_keys().count(), Scope::ALL.len() - 1);
    }
}
