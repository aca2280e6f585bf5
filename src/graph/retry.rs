//! Retry timing: Graph's `Retry-After` when it sends one, exponential back-off with jitter when not.

use std::time::{Duration, SystemTime};

/// Longest wait we accept from a `Retry-After`; beyond it the ID is handed back instead.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// `Retry-After` as delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// Full-jitter exponential back-off: attempt 1 waits up to 1 s, then 2 s, 4 s … capped at 32 s.
pub fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = 1_000u64.saturating_mul(1 << attempt.saturating_sub(1).min(5));
    Duration::from_millis(ceiling_ms / 2 + fastrand::u64(0..=ceiling_ms / 2))
}

/// The wait before attempt `attempt + 1` of something that failed without a named wait: a stray
/// failure while Graph is healthy is retried soon (growing waits would only leave the budget unused);
/// while Graph is failing, [`backoff`] grows with each attempt.
pub fn backoff_unless_healthy(attempt: u32, graph_failing: bool) -> Duration {
    backoff(if graph_failing { attempt } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        assert_eq!(parse_retry_after("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after("100000"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        let parsed = parse_retry_after(&future).unwrap();
        assert!(parsed > Duration::from_secs(25) && parsed <= Duration::from_secs(30));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..10 {
            let b = backoff(attempt);
            assert!(b <= Duration::from_secs(32));
            assert!(b >= Duration::from_millis(500));
        }
    }
}
