//! One limiter per process, shared by every concurrent invocation:
//! - a cap on in-flight Graph HTTP requests (`GRAPH_MAX_CONCURRENCY`);
//! - a back-off gate: once Graph answers 429 with `Retry-After`, every caller waits instead of piling on;
//! - adaptive pacing of requests per second (a `$batch` of 20 counts 20, as Graph throttles each
//!   sub-request): unpaced until Graph first throttles, then paced at the rate Graph was accepting,
//!   probing upward 1 % per second of work and cutting by 15 % at each new throttling episode. This keeps
//!   429s (wasted attempts) rare once the limit is learned, without a hard-coded guess of the limit.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

const MIN_RATE: f64 = 1.0;
/// First pace when Graph throttles before much was accepted (e.g. right at start-up): a sample of a
/// few requests says little about the limit, so start no lower than this and let probing/cuts adjust.
const MIN_START_RATE: f64 = 10.0;
const PROBE_PER_SUCCESS: f64 = 0.01;
const CUT: f64 = 0.85;
const WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Pacing {
    /// Requests per second; `None` until Graph first throttles.
    rate: Option<f64>,
    /// Virtual schedule: when the next request may start.
    next_slot: Instant,
    last_cut: Option<Instant>,
    /// Accepted requests in the last [`WINDOW`], to learn the rate Graph sustains.
    accepted: VecDeque<(Instant, u32)>,
}

#[derive(Debug)]
pub struct Limiter {
    in_flight: Semaphore,
    gate: Mutex<Option<Instant>>,
    pacing: Mutex<Pacing>,
}

impl Limiter {
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            in_flight: Semaphore::new(max_in_flight),
            gate: Mutex::new(None),
            pacing: Mutex::new(Pacing {
                rate: None,
                next_slot: Instant::now(),
                last_cut: None,
                accepted: VecDeque::new(),
            }),
        }
    }

    /// Waits for the back-off gate, a free slot and pacing room for `weight` requests.
    /// Returns `None` if that cannot happen before `deadline`.
    pub async fn acquire(&self, deadline: Instant, weight: u32) -> Option<SemaphorePermit<'_>> {
        self.wait_for_gate(deadline).await?;
        let permit = tokio::time::timeout_at(deadline, self.in_flight.acquire())
            .await
            .ok()?
            .ok()?;
        // The gate may have closed while we queued for a slot; honour it before sending.
        self.wait_for_gate(deadline).await?;
        let start = {
            let mut p = self.pacing.lock().expect("pacing lock");
            match p.rate {
                None => Instant::now(),
                Some(rate) => {
                    let start = p.next_slot.max(Instant::now());
                    if start >= deadline {
                        return None;
                    }
                    p.next_slot = start + Duration::from_secs_f64(f64::from(weight) / rate);
                    start
                }
            }
        };
        tokio::time::sleep_until(start).await;
        Some(permit)
    }

    async fn wait_for_gate(&self, deadline: Instant) -> Option<()> {
        while let Some(at) = self.gate_open_at() {
            if at >= deadline {
                return None;
            }
            tokio::time::sleep_until(at).await;
        }
        Some(())
    }

    /// Graph asked everyone from this app to wait: close the gate for `wait` (never shortening it).
    pub fn back_off(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut gate = self.gate.lock().expect("gate lock");
        if gate.is_none_or(|at| at < until) {
            *gate = Some(until);
        }
    }

    /// When the gate opens, if it is closed now.
    pub fn gate_open_at(&self) -> Option<Instant> {
        let gate = *self.gate.lock().expect("gate lock");
        gate.filter(|at| *at > Instant::now())
    }

    /// `n` requests were accepted (not throttled): remember them and probe the rate upward.
    pub fn record_accepted(&self, n: u32) {
        if n == 0 {
            return;
        }
        let now = Instant::now();
        let mut p = self.pacing.lock().expect("pacing lock");
        p.accepted.push_back((now, n));
        while p
            .accepted
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > WINDOW)
        {
            p.accepted.pop_front();
        }
        if let Some(rate) = p.rate.as_mut() {
            *rate += PROBE_PER_SUCCESS * f64::from(n);
        }
    }

    /// Graph throttled a request: start pacing at the rate it was accepting, or cut the current pace —
    /// once per episode, as one burst of 429s is one signal.
    pub fn record_throttled(&self) {
        let now = Instant::now();
        let mut p = self.pacing.lock().expect("pacing lock");
        if p.last_cut.is_some_and(|at| now.duration_since(at) < WINDOW) {
            return;
        }
        p.last_cut = Some(now);
        let accepted_last_window: u32 = p
            .accepted
            .iter()
            .filter(|(at, _)| now.duration_since(*at) <= WINDOW)
            .map(|(_, n)| n)
            .sum();
        let new_rate = match p.rate {
            None => f64::from(accepted_last_window).max(MIN_START_RATE),
            Some(rate) => rate * CUT,
        };
        p.rate = Some(new_rate.max(MIN_RATE));
        tracing::info!(
            rate_per_second = p.rate.unwrap_or_default() as u64,
            "Graph throttled: pacing requests"
        );
    }

    /// Most requests worth sending at once under the current pace (half a second of it), so a `$batch`
    /// does not overrun a small bucket in one burst; `None` while unpaced.
    pub fn max_burst(&self) -> Option<usize> {
        self.rate().map(|rate| ((rate * 0.5) as usize).max(1))
    }

    /// Current pace in requests per second, if pacing has started.
    pub fn rate(&self) -> Option<f64> {
        self.pacing.lock().expect("pacing lock").rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn gate_holds_everyone_back() {
        let limiter = Limiter::new(2);
        limiter.back_off(Duration::from_secs(5));
        let start = Instant::now();
        let permit = limiter.acquire(start + Duration::from_secs(60), 1).await;
        assert!(permit.is_some());
        assert!(Instant::now() - start >= Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_when_the_gate_outlasts_the_deadline() {
        let limiter = Limiter::new(1);
        limiter.back_off(Duration::from_secs(30));
        assert!(
            limiter
                .acquire(Instant::now() + Duration::from_secs(10), 1)
                .await
                .is_none()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn learns_the_accepted_rate_then_paces() {
        let limiter = Limiter::new(100);
        assert_eq!(limiter.rate(), None);
        limiter.record_accepted(60);
        limiter.record_accepted(40);
        limiter.record_throttled();
        assert_eq!(limiter.rate(), Some(100.0));
        // A second 429 in the same episode does not cut again.
        limiter.record_throttled();
        assert_eq!(limiter.rate(), Some(100.0));
        // 20 requests at 100/s take 200 ms of schedule each.
        let start = Instant::now();
        let deadline = start + Duration::from_secs(10);
        for _ in 0..3 {
            drop(limiter.acquire(deadline, 20).await);
        }
        assert!(Instant::now() - start >= Duration::from_millis(400));
        tokio::time::advance(Duration::from_secs(2)).await;
        limiter.record_throttled();
        assert_eq!(limiter.rate(), Some(85.0));
    }
}
