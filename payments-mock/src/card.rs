//! Card checks and the test cards of docs/api.md. A [`Card`] is what survives
//! validation: the brand, the last four digits, the expiry and the outcome
//! the test mode assigns. The full number and the CVC are checked and then
//! dropped here; nothing else in the service ever sees them.

use serde_json::{Map, Value};

use common::validate::{all, field};
use common::ApiError;

use crate::domain::{integer, string};

/// Why a card payment is declined (`402` with this code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decline {
    CardDeclined,
    InsufficientFunds,
    ExpiredCard,
    ProcessingError,
}

impl Decline {
    pub fn code(self) -> &'static str {
        match self {
            Decline::CardDeclined => "card_declined",
            Decline::InsufficientFunds => "insufficient_funds",
            Decline::ExpiredCard => "expired_card",
            Decline::ProcessingError => "processing_error",
        }
    }

    fn detail(self) -> &'static str {
        match self {
            Decline::CardDeclined => "the card was declined",
            Decline::InsufficientFunds => "the card has insufficient funds",
            Decline::ExpiredCard => "the card has expired",
            Decline::ProcessingError => "an error occurred while processing the card; try again",
        }
    }

    /// The `402` answer; the invoice stays open for another try.
    pub fn into_error(self) -> ApiError {
        ApiError::new(
            http::StatusCode::PAYMENT_REQUIRED,
            self.code(),
            self.detail(),
        )
    }
}

/// A card that passed the checks. Deliberately without the number or CVC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    pub brand: &'static str,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: i32,
    /// What the test mode does with this number (`None`: it pays).
    test_outcome: Option<Decline>,
}

/// The test numbers of docs/api.md with a fixed outcome; other valid numbers pay.
const TEST_CARDS: &[(&str, Decline)] = &[
    ("4000000000000002", Decline::CardDeclined),
    ("4000000000009995", Decline::InsufficientFunds),
    ("4000000000000069", Decline::ExpiredCard),
    ("4000000000000119", Decline::ProcessingError),
];

/// The brand by number prefix: visa 4, mastercard 51–55 and 2221–2720,
/// amex 34 and 37; anything else is "unknown".
pub fn brand(digits: &str) -> &'static str {
    let prefix = |n: usize| digits.get(..n).and_then(|p| p.parse::<u32>().ok());
    if digits.starts_with('4') {
        "visa"
    } else if prefix(2).is_some_and(|p| (51..=55).contains(&p))
        || prefix(4).is_some_and(|p| (2221..=2720).contains(&p))
    {
        "mastercard"
    } else if matches!(prefix(2), Some(34 | 37)) {
        "amex"
    } else {
        "unknown"
    }
}

/// The Luhn checksum over ASCII digits.
pub fn luhn_ok(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

/// The digits of a card number: spaces are allowed between groups.
fn card_digits(raw: &str) -> Result<String, String> {
    let digits: String = raw.chars().filter(|c| *c != ' ').collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must contain only digits (spaces between groups are allowed)".into());
    }
    if !(12..=19).contains(&digits.len()) {
        return Err("must have 12 to 19 digits".into());
    }
    if !luhn_ok(&digits) {
        return Err("is not a valid card number (the Luhn check fails)".into());
    }
    Ok(digits)
}

impl Card {
    /// Checks a `POST /invoices/{id}/pay` body; `422` lists every bad field.
    /// `this_year` bounds the expiry year from above.
    pub fn parse(body: &Map<String, Value>, this_year: i32) -> Result<Card, ApiError> {
        let number = string(body.get("card_number")).and_then(card_digits);
        let month = integer(body.get("exp_month")).and_then(|m| match u32::try_from(m) {
            Ok(m @ 1..=12) => Ok(m),
            _ => Err("must be a month from 1 to 12".into()),
        });
        let year = integer(body.get("exp_year")).and_then(|y| {
            // Two-digit years mean this century, as printed on cards.
            let y = if (0..100).contains(&y) { y + 2000 } else { y };
            if !(1000..=9999).contains(&y) {
                Err("must be a four-digit year".into())
            } else if y > i64::from(this_year) + 50 {
                Err("is too far in the future".into())
            } else {
                Ok(y as i32)
            }
        });
        let cvc = string(body.get("cvc")).and_then(|c| {
            if (3..=4).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()) {
                Ok(())
            } else {
                Err("must be 3 or 4 digits".into())
            }
        });
        let (digits, exp_month, exp_year, ()) = all((
            field("card_number", number),
            field("exp_month", month),
            field("exp_year", year),
            field("cvc", cvc),
        ))?;
        Ok(Card {
            brand: brand(&digits),
            last4: digits[digits.len() - 4..].to_string(),
            exp_month,
            exp_year,
            test_outcome: TEST_CARDS
                .iter()
                .find(|(n, _)| *n == digits)
                .map(|(_, d)| *d),
        })
    }

    /// What the test mode answers: a card expired before (`year`, `month`)
    /// is `expired_card`; test numbers have their fixed outcome.
    pub fn authorize(&self, year: i32, month: u32) -> Result<(), Decline> {
        if (self.exp_year, self.exp_month) < (year, month) {
            return Err(Decline::ExpiredCard);
        }
        match self.test_outcome {
            Some(decline) => Err(decline),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn card(number: &str) -> Result<Card, Vec<String>> {
        let body = json!({"card_number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"});
        Card::parse(body.as_object().unwrap(), 2026)
            .map_err(|e| e.errors.into_iter().map(|f| f.field).collect())
    }

    #[test]
    fn luhn() {
        assert!(luhn_ok("4242424242424242"));
        assert!(luhn_ok("79927398713"));
        assert!(!luhn_ok("4242424242424241"));
        assert!(!luhn_ok("79927398710"));
    }

    #[test]
    fn brands() {
        assert_eq!(brand("4242424242424242"), "visa");
        assert_eq!(brand("5555555555554444"), "mastercard");
        assert_eq!(brand("5105105105105100"), "mastercard");
        assert_eq!(brand("2223003122003222"), "mastercard");
        assert_eq!(brand("2720990000000007"), "mastercard");
        assert_eq!(brand("2721000000000004"), "unknown");
        assert_eq!(brand("378282246310005"), "amex");
        assert_eq!(brand("340000000000009"), "amex");
        assert_eq!(brand("6011111111111117"), "unknown");
        assert_eq!(brand("5610591081018250"), "unknown");
    }

    #[test]
    fn numbers() {
        let c = card("4242 4242 4242 4242").unwrap();
        assert_eq!((c.brand, c.last4.as_str()), ("visa", "4242"));
        assert_eq!(c.authorize(2026, 11), Ok(()));
        for bad in [
            "",
            "    ",
            "4242-4242-4242-4242",
            "4242424242424241",
            "42424242424",
            "42424242424242424242",
            "abcd",
        ] {
            assert_eq!(card(bad).unwrap_err(), ["card_number"], "{bad:?}");
        }
        // A 12-digit and a 19-digit Luhn-valid number are accepted.
        assert!(card("000000000000").is_ok());
        assert!(card("4000000000000000006").is_ok());
    }

    #[test]
    fn test_cards_have_their_outcomes() {
        let outcome = |n: &str| card(n).unwrap().authorize(2026, 11);
        assert_eq!(outcome("4242424242424242"), Ok(()));
        assert_eq!(outcome("4000000000000002"), Err(Decline::CardDeclined));
        assert_eq!(outcome("4000000000009995"), Err(Decline::InsufficientFunds));
        assert_eq!(outcome("4000000000000069"), Err(Decline::ExpiredCard));
        assert_eq!(outcome("4000000000000119"), Err(Decline::ProcessingError));
        assert_eq!(outcome("5555555555554444"), Ok(()));
    }

    #[test]
    fn expiry_month_and_cvc() {
        let parse = |month: Value, year: Value, cvc: Value| {
            let body = json!({"card_number": "4242424242424242", "exp_month": month, "exp_year": year, "cvc": cvc});
            Card::parse(body.as_object().unwrap(), 2026)
        };
        let fields = |r: Result<Card, ApiError>| {
            r.unwrap_err()
                .errors
                .into_iter()
                .map(|f| f.field)
                .collect::<Vec<_>>()
        };
        for m in [
            json!(0),
            json!(13),
            json!(-1),
            json!("12"),
            json!(1.5),
            json!(null),
        ] {
            assert_eq!(
                fields(parse(m.clone(), json!(2030), json!("123"))),
                ["exp_month"],
                "{m}"
            );
        }
        for y in [
            json!(123),
            json!(20300),
            json!(2077),
            json!("2030"),
            json!(-2030),
        ] {
            assert_eq!(
                fields(parse(json!(1), y.clone(), json!("123"))),
                ["exp_year"],
                "{y}"
            );
        }
        for c in [
            json!("12"),
            json!("12345"),
            json!("12a"),
            json!(123),
            json!(null),
        ] {
            assert_eq!(
                fields(parse(json!(1), json!(2030), c.clone())),
                ["cvc"],
                "{c}"
            );
        }
        assert!(parse(json!(1), json!(2030), json!("1234")).is_ok());
        // Two-digit years and the boundaries of "expired".
        let c = parse(json!(11), json!(26), json!("123")).unwrap();
        assert_eq!(c.exp_year, 2026);
        assert_eq!(
            c.authorize(2026, 11),
            Ok(()),
            "valid through the end of its month"
        );
        assert_eq!(c.authorize(2026, 12), Err(Decline::ExpiredCard));
        assert_eq!(c.authorize(2027, 1), Err(Decline::ExpiredCard));
        // An expired test card that would decline is still just expired.
        let body = json!({"card_number": "4000000000000002", "exp_month": 1, "exp_year": 2020, "cvc": "123"});
        let c = Card::parse(body.as_object().unwrap(), 2026).unwrap();
        assert_eq!(c.authorize(2026, 11), Err(Decline::ExpiredCard));
    }

    #[test]
    fn debug_output_never_contains_the_number() {
        let c = card("4000 0000 0000 9995").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("4000000000009995"), "{shown}");
        assert!(shown.contains("9995"));
    }
}
