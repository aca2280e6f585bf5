//! One limiter per process, shared by every concurrent invocation:
//! - a cap on in-flight Graph HTTP requests (`GRAPH_MAX_CONCURRENCY`);
//! - a back-off gate: once Graph throttles in earnest (an episode, below) and answers 429 with
//!   `Retry-After`, every caller waits instead of piling on; a stray 429 delays only its own request;
//! - adaptive pacing of requests per second (a `$batch` of 20 counts 20, as Graph throttles each
//!   sub-request). It starts at 50/s and doubles every second (slow start) until Graph throttles; then it
//!   paces at 90 % of the rate Graph was *accepting* in the last second (over a token-bucket limit that
//!   is the refill rate; the 10 % margin lets the bucket refill so a batch of 20
//!   arriving at once fits), cutting by at most a third per episode, and probing upward 0.5 % per
//!   accepted request. A throttling episode needs at least 3 answers of 429 that
//!   are also at least 10 % of the answers in the last second: a stray 429 (or a fault injected at random)
//!   still closes the gate for its `Retry-After` but does not cut the pace, so noise cannot grind
//!   throughput down.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// Lowest pace: a sample of a few requests says little about the limit, so never start or cut below it.
const MIN_RATE: f64 = 10.0;
const START_RATE: f64 = 50.0;
const PROBE_PER_SUCCESS: f64 = 0.005;
const MARGIN: f64 = 0.9;
const EPISODE_MIN_THROTTLED: u32 = 3;
const EPISODE_MIN_SHARE: f64 = 0.10;
const WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Pacing {
    /// Requests per second.
    rate: Option<f64>,
    /// Doubling every second until the first throttling episode.
    slow_start: bool,
    /// Virtual schedule: when the next request may start.
    next_slot: Instant,
    last_cut: Option<Instant>,
    /// `(when, accepted, throttled)` answers in the last [`WINDOW`], to learn the rate Graph sustains.
    answers: VecDeque<(Instant, u32, u32)>,
}

impl Pacing {
    fn record(&mut self, now: Instant, accepted: u32, throttled: u32) -> (u32, u32) {
        self.answers.push_back((now, accepted, throttled));
        while self
            .answers
            .front()
            .is_some_and(|(at, _, _)| now.duration_since(*at) > WINDOW)
        {
            self.answers.pop_front();
        }
        self.answers.iter().fold((0, 0), |(a, t), (_, da, dt)| (a + da, t + dt))
    }
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
                rate: Some(START_RATE),
                slow_start: true,
                next_slot: Instant::now(),
                last_cut: None,
                answers: VecDeque::new(),
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
        loop {
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
            // If a throttling episode closed the gate while we slept for our pacing slot, wait again and take
            // a fresh slot at the cut pace rather than send into the throttle. A gate closed by a stray 429
            // (no episode) does not send a request that already waited back to the end of the line.
            if self.gate_open_at().is_none() || !self.in_episode() {
                return Some(permit);
            }
        }
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

    /// Graph answered 429 with `Retry-After: wait`. In a throttling episode (the app's budget is spent:
    /// many 429s at once) every invocation waits; a stray 429 among accepted answers holds back only the
    /// request that got it (its caller waits `wait` before retrying it), so noise cannot stall the process.
    pub fn throttled(&self, wait: Duration) {
        if self.in_episode() {
            self.back_off(wait);
        }
    }

    /// Close the gate for everyone for `wait` (never shortening it).
    pub fn back_off(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut gate = self.gate.lock().expect("gate lock");
        if gate.is_none_or(|at| at < until) {
            *gate = Some(until);
        }
    }

    /// Whether a throttling episode began in the last two seconds.
    fn in_episode(&self) -> bool {
        let p = self.pacing.lock().expect("pacing lock");
        p.last_cut.is_some_and(|at| at.elapsed() < 2 * WINDOW)
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
        let mut p = self.pacing.lock().expect("pacing lock");
        p.record(Instant::now(), n, 0);
        let step = if p.slow_start { 1.0 } else { PROBE_PER_SUCCESS };
        if let Some(rate) = p.rate.as_mut() {
            *rate += step * f64::from(n);
        }
    }

    /// Graph throttled a request. If that makes a throttling episode (see the module docs), pace at the
    /// rate Graph accepted over the last second — once per episode, as one burst of 429s is one signal.
    pub fn record_throttled(&self) {
        let now = Instant::now();
        let mut p = self.pacing.lock().expect("pacing lock");
        let (accepted, throttled) = p.record(now, 0, 1);
        let share = f64::from(throttled) / f64::from(accepted + throttled);
        if throttled < EPISODE_MIN_THROTTLED || share < EPISODE_MIN_SHARE {
            return;
        }
        if p.last_cut.is_some_and(|at| now.duration_since(at) < WINDOW) {
            return;
        }
        p.last_cut = Some(now);
        // Graph's rate is what it accepted over the last second. (Answers keep arriving while the gate is
        // closed, so dividing by open time alone would overstate it; the bounded cut below keeps a second
        // with a long closed gate from collapsing the pace instead.)
        let accepted_rate = f64::from(accepted) / WINDOW.as_secs_f64();
        let rate = p.rate.unwrap_or(accepted_rate);
        // Leaving slow start, the last second also drained the bucket's burst and so overstates the limit:
        // take half the pace that overran it (as TCP does), unless Graph accepted even less. Afterwards one
        // episode cuts by 10 % to 32.5 % at most, so a window that saw little traffic (slots busy with
        // hung requests, say) cannot collapse the pace.
        let base = if p.slow_start {
            accepted_rate.min(rate / 2.0)
        } else {
            accepted_rate.clamp(0.75 * rate, rate)
        };
        let new_rate = MARGIN * base;
        p.slow_start = false;
        // Everyone waiting re-reserves at the new pace once the gate opens; old slots no longer count.
        p.next_slot = now;
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
        assert_eq!(limiter.rate(), Some(START_RATE));
        limiter.record_accepted(60);
        limiter.record_accepted(40);
        assert_eq!(limiter.rate(), Some(150.0), "slow start: +1/s per accepted request");
        for _ in 0..3 {
            limiter.record_throttled();
        }
        assert_eq!(
            limiter.rate(),
            Some(150.0),
            "3 of 103 answers is under 10 %: noise, not an episode"
        );
        for _ in 0..10 {
            limiter.record_throttled();
        }
        assert_eq!(
            limiter.rate(),
            Some(67.5),
            "leaving slow start: 90 % of half the pace that overran"
        );
        // 18 requests at 67.5/s take over 200 ms of schedule each.
        let start = Instant::now();
        let deadline = start + Duration::from_secs(10);
        for _ in 0..3 {
            drop(limiter.acquire(deadline, 18).await);
        }
        assert!(Instant::now() - start >= Duration::from_millis(400));
        tokio::time::advance(Duration::from_secs(2)).await;
        limiter.record_accepted(50);
        for _ in 0..10 {
            limiter.record_throttled();
        }
        let rate = limiter.rate().unwrap();
        assert!(
            (rate - 0.9 * 0.75 * 67.75).abs() < 1e-9,
            "one episode cuts by at most 32.5 %: {rate}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stray_429s_do_not_grind_the_pace_down() {
        let limiter = Limiter::new(100);
        limiter.record_accepted(100);
        for _ in 0..20 {
            limiter.record_throttled();
        }
        let learned = limiter.rate().unwrap();
        for _ in 0..100 {
            tokio::time::advance(Duration::from_millis(250)).await;
            limiter.record_accepted(24);
            limiter.record_throttled();
        }
        assert!(limiter.rate().unwrap() >= learned, "{:?} < {learned}", limiter.rate());
    }
}
