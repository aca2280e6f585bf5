//! One limiter per process, shared by every concurrent invocation:
//! - a cap on in-flight Graph HTTP requests (`GRAPH_MAX_CONCURRENCY`);
//! - a back-off gate: once Graph throttles in earnest (an episode, below) and answers 429 with
//!   `Retry-After`, every caller waits instead of piling on; a stray 429 delays only its own request;
//! - adaptive pacing of requests per second (a `$batch` of 20 counts 20, as Graph throttles each
//!   sub-request). It starts at 50/s and doubles every second (slow start) until a throttling episode:
//!   at least 3 answers of 429 that are also at least 10 % of the answers in the last two seconds. An episode
//!   sets the *ceiling* to the rate Graph accepted over that second (over a token-bucket limit, its
//!   refill rate) and the pace to 95 % of it, cutting by at most a third per episode. Below 98 % of the
//!   ceiling the pace climbs back fast (2 % of the pace per second); above it, it probes slowly (0.2 %
//!   per second) and each 429 there trims it by 0.5 %, so it settles a hair above the limit with a
//!   trickle of 429s instead of swinging between episodes. A 429 below the ceiling is noise (Graph's
//!   stray 429s, or faults injected at random): it costs its own request a retry and nothing else, so
//!   noise cannot grind throughput down. Several instances sharing one budget each learn their share
//!   the same way: the trickle of 429s above the limit reaches each in proportion to its pace.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// Lowest pace: a sample of a few requests says little about the limit, so never start or cut below it.
const MIN_RATE: f64 = 10.0;
const START_RATE: f64 = 50.0;
/// Pace growth per accepted request, below and near the ceiling (a pace of r accepted requests per
/// second grows by r × step per second).
const FAST_PROBE: f64 = 0.02;
const SLOW_PROBE: f64 = 0.002;
/// Where slow probing starts, as a share of the ceiling.
const NEAR_CEILING: f64 = 0.98;
/// Share of the pace a 429 near the ceiling takes off.
const TRIM: f64 = 0.005;
/// Pace after an episode, as a share of the rate Graph accepted.
const MARGIN: f64 = 0.95;
const EPISODE_MIN_THROTTLED: u32 = 3;
const EPISODE_MIN_SHARE: f64 = 0.10;
/// The rate Graph accepts is measured over this window.
const WINDOW: Duration = Duration::from_secs(1);
/// The share of 429s is measured over a longer one: over ~200 answers, 4 % of random 429s almost never
/// look like 10 % (over ~100 they sometimes do, and each false episode would cut the pace).
const SHARE_WINDOW: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Pacing {
    /// Requests per second.
    rate: Option<f64>,
    /// Doubling every second until the first throttling episode.
    slow_start: bool,
    /// The highest rate Graph sustained: set at an episode, raised when the pace runs above it unthrottled.
    ceiling: Option<f64>,
    /// Virtual schedule: when the next request may start.
    next_slot: Instant,
    last_cut: Option<Instant>,
    /// `(when, accepted, throttled)` answers in the last [`SHARE_WINDOW`], to learn the rate Graph
    /// sustains and how much of it is throttled.
    answers: VecDeque<(Instant, u32, u32)>,
}

/// Answers counted over the two windows.
struct Tally {
    accepted_last_window: u32,
    accepted: u32,
    throttled: u32,
}

impl Pacing {
    fn record(&mut self, now: Instant, accepted: u32, throttled: u32) -> Tally {
        self.answers.push_back((now, accepted, throttled));
        while self
            .answers
            .front()
            .is_some_and(|(at, _, _)| now.duration_since(*at) > SHARE_WINDOW)
        {
            self.answers.pop_front();
        }
        let mut tally = Tally {
            accepted_last_window: 0,
            accepted: 0,
            throttled: 0,
        };
        for (at, a, t) in &self.answers {
            tally.accepted += a;
            tally.throttled += t;
            if now.duration_since(*at) <= WINDOW {
                tally.accepted_last_window += a;
            }
        }
        tally
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
                ceiling: None,
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
        let (Some(rate), ceiling) = (p.rate, p.ceiling) else {
            return;
        };
        let step = match ceiling {
            _ if p.slow_start => 1.0,
            Some(c) if rate < NEAR_CEILING * c => FAST_PROBE,
            _ => SLOW_PROBE,
        };
        let rate = rate + step * f64::from(n);
        p.rate = Some(rate);
        if ceiling.is_some_and(|c| rate > c) {
            p.ceiling = Some(rate);
        }
    }

    /// Graph throttled a request. If that makes a throttling episode (see the module docs), pace at the
    /// rate Graph accepted over the last second — once per episode, as one burst of 429s is one signal.
    pub fn record_throttled(&self) {
        let now = Instant::now();
        let mut p = self.pacing.lock().expect("pacing lock");
        let tally = p.record(now, 0, 1);
        let (accepted, throttled) = (tally.accepted_last_window, tally.throttled);
        let share = f64::from(throttled) / f64::from(tally.accepted + throttled);
        let episode = throttled >= EPISODE_MIN_THROTTLED && share >= EPISODE_MIN_SHARE;
        if !episode || p.last_cut.is_some_and(|at| now.duration_since(at) < WINDOW) {
            // A 429 at the ceiling says the pace is just over the limit: trim it. Below, it is noise.
            if let (Some(rate), Some(ceiling)) = (p.rate, p.ceiling) {
                if !p.slow_start && rate >= NEAR_CEILING * ceiling {
                    p.rate = Some((rate * (1.0 - TRIM)).max(MIN_RATE));
                }
            }
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
        p.ceiling = Some(base.max(MIN_RATE));
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
            Some(0.95 * 75.0),
            "leaving slow start: 95 % of half the pace that overran"
        );
        // 18 requests at 71.25/s take over 200 ms of schedule each.
        let start = Instant::now();
        let deadline = start + Duration::from_secs(10);
        for _ in 0..3 {
            drop(limiter.acquire(deadline, 18).await);
        }
        assert!(Instant::now() - start >= Duration::from_millis(400));
        tokio::time::advance(Duration::from_secs(2)).await;
        limiter.record_accepted(50);
        assert_eq!(
            limiter.rate(),
            Some(0.95 * 75.0 + 1.0),
            "below the ceiling: +2 % per second"
        );
        for _ in 0..10 {
            limiter.record_throttled();
        }
        let rate = limiter.rate().unwrap();
        assert!(
            (rate - 0.95 * 0.75 * 72.25).abs() < 1e-9,
            "one episode cuts by at most 28.75 %: {rate}"
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

    #[tokio::test(start_paused = true)]
    async fn a_trickle_of_429s_at_the_ceiling_trims_the_pace_without_an_episode() {
        let limiter = Limiter::new(100);
        limiter.record_accepted(100);
        for _ in 0..20 {
            limiter.record_throttled();
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        // Climb to the ceiling (75/s) unthrottled.
        while limiter.rate().unwrap() < 75.0 {
            tokio::time::advance(Duration::from_millis(100)).await;
            limiter.record_accepted(7);
        }
        let at_ceiling = limiter.rate().unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        limiter.record_accepted(70);
        limiter.record_throttled();
        let trimmed = limiter.rate().unwrap();
        assert!(trimmed < at_ceiling + 70.0 * SLOW_PROBE, "{trimmed}");
        assert!(
            trimmed > 0.99 * at_ceiling,
            "one 429 trims 0.5 %, it does not cut: {trimmed}"
        );
    }
}
