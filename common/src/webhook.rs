//! Webhook signatures in the style of Stripe's:
//! `Shop-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
//! The timestamp is signed too, and the receiver refuses old ones, so a
//! captured request cannot be replayed later.
//!
//! The sender is the outbox (`Auth::Signature`); a receiver checks the raw
//! body bytes, before parsing them, with [`verify_now`] (or [`verify`] with
//! an explicit clock in tests) and deduplicates by the event id inside.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER: &str = "shop-signature";

/// How far a signature's timestamp may be from the receiver's clock: five
/// minutes, as Stripe's libraries default to. Retries are re-signed, so a
/// late retry still verifies.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value for `body` signed at `timestamp` (unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let sig = hex::encode(mac(secret, timestamp, body).finalize().into_bytes());
    format!("t={timestamp},v1={sig}")
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the signature timestamp is outside the tolerance")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

/// Verifies `header` for `body`: the timestamp must be within `tolerance_secs`
/// of `now` and one `v1` signature must match (compared in constant time).
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<i64>().ok(),
            Some(("v1", v)) => {
                signatures.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?)
            }
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // abs_diff: `t` comes from the request, and `now - t` would overflow
    // (a panic in debug builds) for a hostile `t=-9223372036854775808`.
    if now.abs_diff(t) > tolerance_secs.max(0).unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let expected = mac(secret, t, body);
    if signatures
        .iter()
        .any(|sig| expected.clone().verify_slice(sig).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// [`verify`] against the current time.
pub fn verify_now(
    secret: &str,
    header: &str,
    body: &[u8],
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    verify(
        secret,
        header,
        body,
        crate::time::now_ms() / 1000,
        tolerance_secs,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_failures() {
        let h = sign("whsec", 1000, b"{}");
        assert!(h.starts_with("t=1000,v1="));
        assert_eq!(verify("whsec", &h, b"{}", 1010, 300), Ok(()));
        assert_eq!(
            verify("whsec", &h, b"{ }", 1010, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("other", &h, b"{}", 1010, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("whsec", &h, b"{}", 2000, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify("whsec", "v1=zz", b"{}", 1000, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify("whsec", "t=1000", b"{}", 1000, 300),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn extreme_timestamps_are_stale_not_a_panic() {
        for t in [i64::MIN, i64::MAX, -1] {
            let h = format!("t={t},v1=00");
            assert_eq!(
                verify("whsec", &h, b"{}", 1000, 300),
                Err(SignatureError::Stale)
            );
        }
    }

    #[test]
    fn any_matching_v1_verifies_and_unknown_schemes_are_ignored() {
        let now = crate::time::now_ms() / 1000;
        let good = sign("whsec", now, b"{}");
        let sig = good.split_once(",v1=").unwrap().1;
        let h = format!("t={now},v0=abc,v1={},v1={sig}", "00".repeat(32));
        assert_eq!(
            verify_now("whsec", &h, b"{}", DEFAULT_TOLERANCE_SECS),
            Ok(())
        );
        let tampered = format!("t={now},v1={}", "00".repeat(32));
        assert_eq!(
            verify_now("whsec", &tampered, b"{}", DEFAULT_TOLERANCE_SECS),
            Err(SignatureError::Mismatch)
        );
    }
}
