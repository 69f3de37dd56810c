//! Money as integer minor units and an ISO 4217 currency. No floats, ever.

use serde::{Deserialize, Serialize};

use crate::validation::{Check, Invalid};

/// The largest amount any price may be, in minor units: a thousand million (10^11 cents).
/// Totals of up to 10,000 units a line then stay far inside `i64`; arithmetic on amounts is
/// checked all the same, and refuses rather than wraps.
pub const MAX_AMOUNT: i64 = 100_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Money {
    /// Minor units (cents): 1999 is 19.99.
    pub amount: i64,
    /// ISO 4217 code, upper case (`EUR`).
    pub currency: String,
}

impl Money {
    pub fn new(amount: i64, currency: &str) -> Self {
        Money {
            amount,
            currency: currency.to_owned(),
        }
    }

    /// Checks a price: a known-shaped currency and an amount from 0 to [`MAX_AMOUNT`].
    pub fn check_price(&self, field: &str, check: &mut Check) {
        check_currency(&format!("{field}.currency"), &self.currency, check);
        check_amount(&format!("{field}.amount"), self.amount, check);
    }
}

/// A price's amount is from 0 to [`MAX_AMOUNT`] minor units.
pub fn check_amount(field: &str, amount: i64, check: &mut Check) {
    if amount < 0 {
        check.fail(field, "out_of_range", "must not be negative");
    } else if amount > MAX_AMOUNT {
        check.fail(field, "out_of_range", format!("must be at most {MAX_AMOUNT}"));
    }
}

/// The refusal of a sum of amounts too large to work with.
pub fn too_large(field: &str) -> Invalid {
    Invalid::one(field, "out_of_range", "the amounts add up to more than can be handled")
}

/// A currency code is three upper-case ASCII letters.
pub fn check_currency(field: &str, code: &str, check: &mut Check) {
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        check.fail(field, "invalid", "must be an ISO 4217 code such as EUR");
    }
}
