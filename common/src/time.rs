//! Timestamps: stored as integer milliseconds since the epoch (portable
//! across SQLite and PostgreSQL, cheap to compare), shown as RFC 3339 UTC.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `2026-11-27T10:32:24.123Z`, or without fraction when it is whole seconds.
pub fn rfc3339(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    if ms % 1000 == 0 {
        // Whole seconds print without a fraction, as in docs/api.md's example.
        t.replace_nanosecond(0).unwrap_or(t).format(&Rfc3339)
    } else {
        t.format(&Rfc3339)
    }
    .unwrap_or_default()
}

/// Parses an RFC 3339 time (any offset) to epoch milliseconds.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| "must be an RFC 3339 time such as 2026-11-27T10:32:24Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(rfc3339(1_795_775_544_000), "2026-11-27T10:32:24Z");
        assert_eq!(rfc3339(1_795_775_544_123), "2026-11-27T10:32:24.123Z");
        assert_eq!(
            parse_rfc3339("2026-11-27T10:32:24Z").unwrap(),
            1_795_775_544_000
        );
        assert_eq!(
            parse_rfc3339("2026-11-27T11:32:24+01:00").unwrap(),
            1_795_775_544_000
        );
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
