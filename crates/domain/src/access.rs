//! Who may do what: API key scopes and the principal behind a request.

use crate::validation::{Check, Invalid};

/// Every scope a secret key can carry. `<area>:write` implies `<area>:read`; `admin` implies all.
pub const SCOPES: &[&str] = &[
    "catalog:read",
    "catalog:write",
    "inventory:read",
    "inventory:write",
    "orders:read",
    "orders:write",
    "customers:read",
    "customers:write",
    "conversations:read",
    "conversations:write",
    "events:read",
    "admin",
];

/// What a publishable key may do, always limited to its own sales channel: read the catalog
/// and availability, and work with carts.
const PUBLISHABLE_SCOPES: &[&str] = &["catalog:read", "inventory:read", "carts:write"];

pub fn check_scopes(scopes: &[String]) -> Result<(), Invalid> {
    let mut check = Check::new();
    if scopes.is_empty() {
        check.fail("scopes", "required", "a secret key needs at least one scope");
    }
    for (i, scope) in scopes.iter().enumerate() {
        if !SCOPES.contains(&scope.as_str()) {
            check.fail(
                format!("scopes[{i}]"),
                "invalid",
                format!("unknown scope; known: {}", SCOPES.join(", ")),
            );
        }
    }
    check.done()
}

/// The holder of the API key a request was made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Secret { key_id: String, scopes: Vec<String> },
    Publishable { key_id: String, channel_id: String },
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

    pub fn allows(&self, needed: &str) -> bool {
        match self {
            Principal::Publishable { .. } => PUBLISHABLE_SCOPES.contains(&needed),
            Principal::Secret { scopes, .. } => scopes.iter().any(|held| grants(held, needed)),
        }
    }
}

fn grants(held: &str, needed: &str) -> bool {
    if held == "admin" || held == needed {
        return true;
    }
    match (held.split_once(':'), needed.split_once(':')) {
        (Some((area, "write")), Some((needed_area, "read"))) => area == needed_area,
        // Carts are part of orders for secret keys.
        (Some(("orders", "write")), _) => needed == "carts:write",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(scopes: &[&str]) -> Principal {
        Principal::Secret {
            key_id: "key_1".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn write_implies_read_and_admin_implies_all() {
        assert!(secret(&["catalog:write"]).allows("catalog:read"));
        assert!(!secret(&["catalog:read"]).allows("catalog:write"));
        assert!(!secret(&["catalog:write"]).allows("inventory:read"));
        assert!(secret(&["admin"]).allows("inventory:write"));
        assert!(secret(&["orders:write"]).allows("carts:write"));
    }

    #[test]
    fn publishable_keys_only_read_and_use_carts() {
        let key = Principal::Publishable {
            key_id: "key_1".into(),
            channel_id: "chn_1".into(),
        };
        assert!(key.allows("catalog:read"));
        assert!(key.allows("carts:write"));
        assert!(!key.allows("catalog:write"));
        assert!(!key.allows("admin"));
    }

    #[test]
    fn unknown_scopes_are_refused() {
        assert!(check_scopes(&["catalog:read".into()]).is_ok());
        assert!(check_scopes(&["catalog:delete".into()]).is_err());
        assert!(check_scopes(&[]).is_err());
    }
}
