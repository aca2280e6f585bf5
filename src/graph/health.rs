//! Whether Graph is in trouble now, or one request was unlucky. Graph answers a few requests with a
//! reset, a hang or a 5xx every day; retrying those after growing waits leaves the budget unused while an
//! invocation sleeps (the last IDs of a batch job wait longest). Only when a large share of the recent
//! requests failed is Graph itself failing, and then waits must grow so we do not add to its load.
//!
//! Counts whole HTTP requests (a `$batch` envelope is one): no answer, or a 5xx. Sub-request failures
//! inside an answered `$batch` are judged per batch (`graph::batch`), and 429s by the pacing.

use std::sync::Mutex;

/// Requests remembered: a few seconds of traffic at Graph's usual pace.
const WINDOW: u32 = 32;
/// Above this share of failed requests, Graph is in trouble. Everyday noise (a few percent) stays far
/// below it: 9 or more failures in 32 at a 8 % failure rate happen about once in a thousand windows.
const TROUBLE_SHARE: f64 = 0.25;

#[derive(Debug, Default)]
pub struct Health {
    /// Bit `i` set: the `i`-th most recent request failed. `seen` counts up to [`WINDOW`].
    recent: Mutex<(u32, u32)>,
}

impl Health {
    pub fn record(&self, failed: bool) {
        let mut recent = self.recent.lock().expect("health lock");
        let (bits, seen) = *recent;
        *recent = ((bits << 1) | u32::from(failed), (seen + 1).min(WINDOW));
    }

    /// More than [`TROUBLE_SHARE`] of the recent requests failed (and at least a few were seen).
    pub fn in_trouble(&self) -> bool {
        let (bits, seen) = *self.recent.lock().expect("health lock");
        let failed = bits.count_ones();
        failed >= 2 && f64::from(failed) > TROUBLE_SHARE * f64::from(seen.max(4))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scattered_failures_are_noise() {
        let health = Health::default();
        for i in 0..200 {
            health.record(i % 12 == 0);
            assert!(!health.in_trouble(), "request {i}");
        }
    }

    #[test]
    fn a_run_of_failures_is_trouble_and_recovery_clears_it() {
        let health = Health::default();
        for _ in 0..40 {
            health.record(false);
        }
        for _ in 0..9 {
            health.record(true);
        }
        assert!(health.in_trouble());
        for _ in 0..WINDOW {
            health.record(false);
        }
        assert!(!health.in_trouble());
    }

    #[test]
    fn one_failure_at_start_is_not_trouble_but_two_of_three_are() {
        let health = Health::default();
        health.record(true);
        assert!(!health.in_trouble());
        health.record(false);
        health.record(true);
        assert!(health.in_trouble());
    }
}
