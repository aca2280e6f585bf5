//! The per-attempt timeout, derived from how fast Graph has been answering: a hung request should not
//! hold its limiter slot (and its invocation) for the whole `GRAPH_ATTEMPT_TIMEOUT_SECONDS` when Graph
//! normally answers in tens of milliseconds.
//!
//! Timeout = the 99th percentile of the last [`SAMPLES`] answer times × [`FACTOR`], never below
//! [`FLOOR`] (a slow but healthy answer must not be cut off: Graph's own gateway gives up after far
//! longer) and never above the setting, which stays the ceiling. Until [`MIN_SAMPLES`] answers were
//! seen, the setting applies as it is. Timeouts are not answer times, but if more than
//! [`MAX_TIMEOUT_SHARE`] of the recent attempts timed out, Graph has become slow rather than a few requests
//! hung, so the setting applies again until slower answers have been seen.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// Answers remembered: enough for a stable 99th percentile, few enough to follow a change in minutes.
const SAMPLES: usize = 512;
const MIN_SAMPLES: usize = 32;
const FACTOR: u32 = 8;
pub const FLOOR: Duration = Duration::from_secs(1);
const MAX_TIMEOUT_SHARE: f64 = 0.2;
/// Attempts over which the timeout share is counted.
const OUTCOMES: usize = 100;

#[derive(Debug)]
pub struct AdaptiveTimeout {
    ceiling: Duration,
    samples: Mutex<VecDeque<Duration>>,
    /// `true` for an attempt that timed out, over the last [`OUTCOMES`] attempts.
    timed_out: Mutex<VecDeque<bool>>,
}

impl AdaptiveTimeout {
    pub fn new(ceiling: Duration) -> Self {
        Self {
            ceiling,
            samples: Mutex::new(VecDeque::with_capacity(SAMPLES)),
            timed_out: Mutex::new(VecDeque::with_capacity(OUTCOMES)),
        }
    }

    /// Graph answered (any status) after `elapsed`.
    pub fn record(&self, elapsed: Duration) {
        self.outcome(false);
        let mut samples = self.samples.lock().expect("latency lock");
        if samples.len() == SAMPLES {
            samples.pop_front();
        }
        samples.push_back(elapsed);
    }

    /// An attempt got no answer within its timeout.
    pub fn record_timeout(&self) {
        self.outcome(true);
    }

    fn outcome(&self, timed_out: bool) {
        let mut outcomes = self.timed_out.lock().expect("latency lock");
        if outcomes.len() == OUTCOMES {
            outcomes.pop_front();
        }
        outcomes.push_back(timed_out);
    }

    /// The timeout for the next attempt.
    pub fn current(&self) -> Duration {
        {
            let outcomes = self.timed_out.lock().expect("latency lock");
            let timeouts = outcomes.iter().filter(|t| **t).count();
            if timeouts as f64 > MAX_TIMEOUT_SHARE * outcomes.len() as f64 {
                return self.ceiling;
            }
        }
        let mut sorted: Vec<Duration> = {
            let samples = self.samples.lock().expect("latency lock");
            if samples.len() < MIN_SAMPLES {
                return self.ceiling;
            }
            samples.iter().copied().collect()
        };
        sorted.sort_unstable();
        let p99 = sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)];
        (p99 * FACTOR).clamp(FLOOR.min(self.ceiling), self.ceiling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_observed_latency_between_floor_and_ceiling() {
        let timeout = AdaptiveTimeout::new(Duration::from_secs(20));
        assert_eq!(timeout.current(), Duration::from_secs(20), "no samples: the setting");
        for _ in 0..100 {
            timeout.record(Duration::from_millis(50));
        }
        assert_eq!(timeout.current(), FLOOR, "50 ms answers: the floor, not 400 ms");
        for _ in 0..SAMPLES {
            timeout.record(Duration::from_millis(900));
        }
        assert_eq!(timeout.current(), Duration::from_millis(7_200), "p99 × 8");
        for _ in 0..SAMPLES {
            timeout.record(Duration::from_secs(10));
        }
        assert_eq!(timeout.current(), Duration::from_secs(20), "never above the setting");
        let short = AdaptiveTimeout::new(Duration::from_millis(500));
        for _ in 0..100 {
            short.record(Duration::from_millis(5));
        }
        assert_eq!(
            short.current(),
            Duration::from_millis(500),
            "a setting below the floor wins"
        );
    }

    #[test]
    fn many_timeouts_mean_graph_is_slow_and_the_setting_applies() {
        let timeout = AdaptiveTimeout::new(Duration::from_secs(20));
        for _ in 0..100 {
            timeout.record(Duration::from_millis(50));
        }
        for _ in 0..10 {
            timeout.record_timeout();
        }
        assert_eq!(timeout.current(), FLOOR, "one hung request in ten is not a slow Graph");
        for _ in 0..30 {
            timeout.record_timeout();
        }
        assert_eq!(timeout.current(), Duration::from_secs(20));
    }

    #[test]
    fn one_slow_answer_in_a_hundred_sets_the_pace() {
        let timeout = AdaptiveTimeout::new(Duration::from_secs(60));
        for i in 0..200 {
            let ms = if i % 50 == 0 { 2_000 } else { 40 };
            timeout.record(Duration::from_millis(ms));
        }
        assert_eq!(
            timeout.current(),
            Duration::from_secs(16),
            "the 99th percentile is the slow one"
        );
    }
}
