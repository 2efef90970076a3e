//! Rendering of stored times (epoch microseconds, DESIGN.md §3) for API responses.

use chrono::{DateTime, SecondsFormat};

/// RFC 3339 in UTC with milliseconds, one fixed width so clients can compare times as text;
/// out-of-range values render as the epoch rather than failing a response.
pub fn rfc3339(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_utc_with_needed_precision() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_500_250), "1970-01-01T00:00:01.500Z");
    }
}
