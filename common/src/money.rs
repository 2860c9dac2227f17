//! Money as every service holds it: an integer amount in minor units (never
//! a float) with its ISO 4217 [`Currency`]. Products price in it, the cart
//! totals and compares it, payments invoices it; the one default currency
//! and the one currency check live here.

use std::fmt;

/// The currency of a product, an invoice or an empty cart that names none
/// (docs/api.md).
pub const DEFAULT_CURRENCY: &str = "USD";

/// What a client is told about a currency that is not one (docs/design.md,
/// "Validation messages": one wording for products and payments).
pub const CURRENCY_MESSAGE: &str =
    "must be a three-letter upper-case ISO 4217 code such as \"USD\"";

/// An ISO 4217 code: exactly three upper-case ASCII letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Currency(String);

impl Currency {
    pub fn parse(raw: &str) -> Result<Currency, String> {
        if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Currency(raw.to_string()))
        } else {
            Err(CURRENCY_MESSAGE.into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Currency {
    fn default() -> Currency {
        Currency(DEFAULT_CURRENCY.to_string())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An amount in minor units of a currency, borrowed from whatever holds it
/// (an order, an invoice): two amounts are equal only in the same currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money<'a> {
    pub cents: i64,
    pub currency: &'a str,
}

impl<'a> Money<'a> {
    pub fn new(cents: i64, currency: &'a str) -> Money<'a> {
        Money { cents, currency }
    }
}

/// ISO 4217 currencies without minor units; every other is shown with two
/// decimals (the three-decimal dinars are rare enough to accept "1.234"
/// shown as "12.34" in an email, never in an amount we charge).
const ZERO_DECIMAL: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF",
];

/// `12.34 USD`, for people (emails, logs); amounts stay integers
/// everywhere else.
impl fmt::Display for Money<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (cents, currency) = (self.cents, self.currency);
        if ZERO_DECIMAL.contains(&currency) {
            return write!(f, "{cents} {currency}");
        }
        let sign = if cents < 0 { "-" } else { "" };
        let abs = cents.unsigned_abs();
        write!(f, "{sign}{}.{:02} {currency}", abs / 100, abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_three_upper_case_letters() {
        for bad in ["US", "USDD", "usd", "U5D", "ÜSD", ""] {
            assert_eq!(
                Currency::parse(bad),
                Err(CURRENCY_MESSAGE.to_string()),
                "{bad}"
            );
        }
        assert_eq!(Currency::parse("EUR").unwrap().as_str(), "EUR");
        assert_eq!(Currency::default().as_str(), "USD");
    }

    #[test]
    fn money_for_people() {
        assert_eq!(Money::new(1999, "USD").to_string(), "19.99 USD");
        assert_eq!(Money::new(5, "EUR").to_string(), "0.05 EUR");
        assert_eq!(Money::new(-5, "EUR").to_string(), "-0.05 EUR");
        assert_eq!(Money::new(500, "JPY").to_string(), "500 JPY");
    }

    #[test]
    fn amounts_differ_by_currency_too() {
        assert_eq!(Money::new(1, "USD"), Money::new(1, "USD"));
        assert_ne!(Money::new(1, "USD"), Money::new(1, "EUR"));
        assert_ne!(Money::new(1, "USD"), Money::new(2, "USD"));
    }
}
