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

/// A currency code is one of ISO 4217's that prices can be in (no funds, metals or test codes).
pub fn check_currency(field: &str, code: &str, check: &mut Check) {
    if CURRENCIES.binary_search(&code).is_err() {
        check.fail(field, "invalid", "must be an ISO 4217 code such as EUR");
    }
}

/// ISO 4217's active currencies, sorted.
const CURRENCIES: [&str; 156] = [
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BHD", "BIF",
    "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF", "CLP", "CNY", "COP", "CRC",
    "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS",
    "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD",
    "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL",
    "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD",
    "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD",
    "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP",
    "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VES",
    "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_iso_4217_currencies_are_accepted() {
        assert!(CURRENCIES.is_sorted(), "binary search needs the list sorted");
        for (code, known) in [
            ("EUR", true),
            ("JPY", true),
            ("XOF", true),
            ("XYZ", false),
            ("eur", false),
            ("EURO", false),
        ] {
            let mut check = Check::new();
            check_currency("currency", code, &mut check);
            assert_eq!(check.done().is_ok(), known, "{code}");
        }
    }
}
