//! The carts this process wrote lately, remembered.
//!
//! Each step of a checkout (add a line, set the details, check out) changes the cart the step
//! before it wrote, and would first read it back from the database: a round trip per step on
//! PostgreSQL. The cart as this process last wrote it serves instead. That is safe because
//! every change made from a remembered cart is written only at the version it was made from:
//! a cart changed since by another process fails that write, and the change is made again
//! from the cart as read from the database. Reads for their own sake (`GET`) always go to the
//! database.

use std::collections::HashMap;
use std::sync::Mutex;

use omnihub_domain::orders::{Cart, CartStatus};

/// Carts per generation: at most twice as many are remembered.
const GENERATION: usize = 4096;

/// Two generations: a cart is remembered in the young one; when it is full, it becomes the old
/// one and the old one is dropped, so the memory is bounded without tracking every use.
#[derive(Default)]
pub(crate) struct RecentCarts {
    generations: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    young: HashMap<String, Cart>,
    old: HashMap<String, Cart>,
}

impl Generations {
    fn get(&self, id: &str) -> Option<&Cart> {
        self.young.get(id).or_else(|| self.old.get(id))
    }
}

impl RecentCarts {
    pub(crate) fn get(&self, id: &str) -> Option<Cart> {
        self.generations.lock().ok()?.get(id).cloned()
    }

    /// Remembers `cart` as written, unless a newer version of it is remembered already (two
    /// requests on one cart may answer in either order). A checked-out cart is forgotten.
    pub(crate) fn remember(&self, cart: &Cart) {
        let Ok(mut generations) = self.generations.lock() else {
            return;
        };
        if generations
            .get(&cart.id)
            .is_some_and(|known| known.version >= cart.version)
        {
            return;
        }
        generations.old.remove(&cart.id);
        if cart.status != CartStatus::Active {
            generations.young.remove(&cart.id);
            return;
        }
        if generations.young.len() >= GENERATION {
            generations.old = std::mem::take(&mut generations.young);
        }
        generations.young.insert(cart.id.clone(), cart.clone());
    }

    pub(crate) fn forget(&self, id: &str) {
        if let Ok(mut generations) = self.generations.lock() {
            generations.young.remove(id);
            generations.old.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use omnihub_domain::Timestamp;
    use omnihub_domain::orders::{CartDetails, totals};

    use super::*;

    fn cart(id: &str, version: i64) -> Cart {
        Cart {
            id: id.into(),
            channel_id: "ch_web".into(),
            status: CartStatus::Active,
            totals: totals(&[], 0, "EUR").unwrap(),
            details: CartDetails::default(),
            lines: Vec::new(),
            order_id: None,
            version,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    #[test]
    fn the_newest_version_stays_whatever_order_writes_answer_in() {
        let recent = RecentCarts::default();
        recent.remember(&cart("cart_a", 3));
        recent.remember(&cart("cart_a", 2));
        assert_eq!(recent.get("cart_a").map(|c| c.version), Some(3));
        recent.remember(&cart("cart_a", 4));
        assert_eq!(recent.get("cart_a").map(|c| c.version), Some(4));
        let checked_out = Cart {
            status: CartStatus::CheckedOut,
            ..cart("cart_a", 5)
        };
        recent.remember(&checked_out);
        assert!(recent.get("cart_a").is_none());
    }

    #[test]
    fn memory_is_bounded_to_two_generations() {
        let recent = RecentCarts::default();
        for n in 0..(3 * GENERATION) {
            recent.remember(&cart(&format!("cart_{n}"), 1));
        }
        let generations = recent.generations.lock().unwrap();
        assert!(generations.young.len() + generations.old.len() <= 2 * GENERATION);
        assert!(generations.get(&format!("cart_{}", 3 * GENERATION - 1)).is_some());
        assert!(generations.get("cart_0").is_none());
    }
}
