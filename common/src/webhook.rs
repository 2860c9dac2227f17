//! Webhook signatures in the style of Stripe's:
//! `Shop-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
//! The timestamp is signed too, and the receiver refuses old ones, so a
//! captured request cannot be replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER: &str = "shop-signature";

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
    if (now - t).abs() > tolerance_secs {
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
}
