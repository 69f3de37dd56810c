//! Money as integer minor units and an ISO 4217 currency. No floats, ever.

use serde::{Deserialize, Serialize};

use crate::validation::Check;

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

    /// Checks a price: a known-shaped currency and an amount that is not negative.
    pub fn check_price(&self, field: &str, check: &mut Check) {
        check_currency(&format!("{field}.currency"), &self.currency, check);
        if self.amount < 0 {
            check.fail(format!("{field}.amount"), "out_of_range", "must not be negative");
        }
    }
}

/// A currency code is three upper-case ASCII letters.
pub fn check_currency(field: &str, code: &str, check: &mut Check) {
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        check.fail(field, "invalid", "must be an ISO 4217 code such as EUR");
    }
}
