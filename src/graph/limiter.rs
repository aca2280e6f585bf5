//! One limiter per process, shared by every concurrent invocation:
//! - a cap on in-flight Graph HTTP requests (`GRAPH_MAX_CONCURRENCY`);
//! - a back-off gate: when Graph refuses a whole `$batch` with 429 and `Retry-After`, every caller waits
//!   instead of piling on; a 429 for one request delays only that request;
//! - adaptive pacing of requests per second (a `$batch` of 20 counts 20, as Graph throttles each
//!   sub-request), from nothing but Graph's answers:
//!   - slow start at 50/s, doubling every second, until a throttling episode: at least 10 answers of 429
//!     that are also at least 10 % of the answers since the last cut (two seconds at most);
//!   - an episode sets the *ceiling* to 97 % of the rate Graph accepted in the quarter-seconds it
//!     throttled (a token bucket's refill rate) and the pace to 95 % of that rate, cutting at most
//!     28.75 % unless most answers were 429s, and at most once per 3 s (1 s after leaving slow start);
//!   - below 98 % of the ceiling the pace climbs 2 % a second; above it 0.2 % a second while Graph still
//!     sends 429s (2 % when it sends none: the limit is not there), and while at least 1 % of the answers
//!     are 429s each 429 trims it 0.5 %, so it settles just above the limit with a trickle of 429s;
//!   - a 429 below the ceiling, or a rare one, is noise (Graph's stray 429s, faults injected at random): it
//!     costs its own request a retry and nothing else, so noise cannot grind throughput down;
//!   - several instances sharing one budget learn their shares the same way: the 429s above the limit
//!     reach each in proportion to its pace.

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
/// A 429 near the ceiling trims the pace only while at least this share of the last two seconds'
/// answers were 429s: a rare one is noise, a steady trickle means the pace is just over the limit.
const TRIM_SHARE: f64 = 0.01;
/// The ceiling an episode sets, as a share of the rate Graph accepted while throttling: that estimate
/// runs a few percent high (batches of 20 answer at once, and the bucket's saved-up burst), and a ceiling
/// above the limit would put the fast climb past it.
const CEILING_TRUST: f64 = 0.97;
/// Least time between two cuts: one burst of 429s is one signal. Leaving slow start the estimate is
/// rough (the bucket's burst was still being spent), so the next cut may follow sooner.
const CUT_COOLDOWN: Duration = Duration::from_secs(3);
const FIRST_CUT_COOLDOWN: Duration = Duration::from_secs(1);
/// Pace after an episode, as a share of the rate Graph accepted.
const MARGIN: f64 = 0.95;
/// An episode needs this many 429s among at least [`EPISODE_MIN_ANSWERS`] answers in the window: over a
/// few dozen answers, random 429s can look like 10 % (and a wrong episode early on would end slow start
/// far below the limit).
const EPISODE_MIN_THROTTLED: u32 = 10;
const EPISODE_MIN_ANSWERS: u32 = 20;
/// Share of 429s beyond which an episode cuts to what Graph accepted however deep that is.
const DEEP_CUT_SHARE: f64 = 0.5;
const EPISODE_MIN_SHARE: f64 = 0.10;
/// The rate Graph accepts and the share of 429s are measured over this window: over ~200 answers, 4 % of
/// random 429s almost never look like 10 % (over ~100 they sometimes do, and each false episode would
/// cut the pace).
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
    cuts: u32,
    /// `(when, accepted, throttled)` answers in the last [`SHARE_WINDOW`], to learn the rate Graph
    /// sustains and how much of it is throttled.
    answers: VecDeque<(Instant, u32, u32)>,
}

/// Answers counted over the two windows.
/// Answers in the window since the last cut.
struct Tally {
    accepted: u32,
    throttled: u32,
    /// Accepted per second in the slots of the window that also saw a 429: while Graph throttles, its
    /// bucket is empty and what it accepts is its refill rate. (A plain average would count the burst the
    /// bucket saved up while the gate was closed.)
    accepted_rate_while_throttled: Option<f64>,
}

/// How often a request waiting for its pacing slot looks again (the pace may have changed meanwhile).
const RECHECK: Duration = Duration::from_millis(20);
/// Slots the window is cut into to find where Graph throttled.
const SLOT: Duration = Duration::from_millis(250);

impl Pacing {
    fn near_ceiling(&self) -> bool {
        match (self.rate, self.ceiling) {
            (Some(rate), Some(ceiling)) => !self.slow_start && rate >= NEAR_CEILING * ceiling,
            _ => false,
        }
    }

    fn record(&mut self, now: Instant, accepted: u32, throttled: u32) -> Tally {
        self.answers.push_back((now, accepted, throttled));
        while self
            .answers
            .front()
            .is_some_and(|(at, _, _)| now.duration_since(*at) > SHARE_WINDOW)
        {
            self.answers.pop_front();
        }
        let slots = (SHARE_WINDOW.as_millis() / SLOT.as_millis()) as usize + 1;
        let mut per_slot = vec![(0u32, 0u32); slots];
        let mut tally = Tally {
            accepted: 0,
            throttled: 0,
            accepted_rate_while_throttled: None,
        };
        for (at, a, t) in &self.answers {
            // Only answers since the pace last changed count: the ones before the last cut were sent at
            // another pace (and slow start's last ones still spent the bucket's burst).
            if self.last_cut.is_some_and(|cut| *at <= cut) {
                continue;
            }
            tally.accepted += a;
            tally.throttled += t;
            let slot = ((now.duration_since(*at).as_millis() / SLOT.as_millis()) as usize).min(slots - 1);
            per_slot[slot].0 += a;
            per_slot[slot].1 += t;
        }
        let throttled_slots: Vec<u32> = per_slot.iter().filter(|(_, t)| *t > 0).map(|(a, _)| *a).collect();
        if !throttled_slots.is_empty() {
            let accepted: u32 = throttled_slots.iter().sum();
            tally.accepted_rate_while_throttled =
                Some(f64::from(accepted) / (throttled_slots.len() as f64 * SLOT.as_secs_f64()));
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
                cuts: 0,
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
            let wake = {
                let mut p = self.pacing.lock().expect("pacing lock");
                let Some(rate) = p.rate else {
                    return Some(permit);
                };
                let now = Instant::now();
                if p.next_slot <= now {
                    p.next_slot = now + Duration::from_secs_f64(f64::from(weight) / rate);
                    return Some(permit);
                }
                if p.next_slot >= deadline {
                    return None;
                }
                // Reserve nothing ahead: a slot booked seconds ahead at an old pace would keep that pace
                // after it changed (slow start would stay slow). Look again shortly instead.
                p.next_slot.min(now + RECHECK)
            };
            tokio::time::sleep_until(wake).await;
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

    /// Graph refused a whole `$batch` with 429 and `Retry-After: wait`: close the gate for everyone for
    /// `wait` (never shortening it). A 429 for one request (or sub-request) holds back only that request
    /// (its caller waits `wait` before retrying it); the pace, not a gate, keeps the rest under the limit,
    /// so a stray 429 cannot stall the process and no burst builds up behind a closed gate.
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
        let mut p = self.pacing.lock().expect("pacing lock");
        p.record(Instant::now(), n, 0);
        let (Some(rate), ceiling) = (p.rate, p.ceiling) else {
            return;
        };
        // Slow probing only while Graph shows its limit (429s since the last cut); with none, the limit
        // is not here (another instance has stopped sharing it, say), so climb fast.
        let quiet = p.answers.iter().all(|(_, _, t)| *t == 0);
        let step = match ceiling {
            _ if p.slow_start => 1.0,
            Some(c) if rate < NEAR_CEILING * c || quiet => FAST_PROBE,
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
        let throttled = tally.throttled;
        let share = f64::from(throttled) / f64::from(tally.accepted + throttled);
        let episode = throttled >= EPISODE_MIN_THROTTLED
            && tally.accepted + throttled >= EPISODE_MIN_ANSWERS
            && share >= EPISODE_MIN_SHARE;
        let cooldown = if p.cuts == 1 { FIRST_CUT_COOLDOWN } else { CUT_COOLDOWN };
        if !episode || p.last_cut.is_some_and(|at| now.duration_since(at) < cooldown) {
            // A steady trickle of 429s at the ceiling says the pace is just over the limit: trim it.
            // Below the ceiling, or one now and then, they are noise.
            if p.near_ceiling() && share >= TRIM_SHARE {
                if let Some(rate) = p.rate {
                    p.rate = Some((rate * (1.0 - TRIM)).max(MIN_RATE));
                }
            }
            return;
        }
        let accepted = tally
            .accepted_rate_while_throttled
            .unwrap_or(f64::from(tally.accepted) / SHARE_WINDOW.as_secs_f64());
        p.last_cut = Some(now);
        p.cuts += 1;
        // Graph's rate is what it accepted over the last second. (Answers keep arriving while the gate is
        // closed, so dividing by open time alone would overstate it; the bounded cut below keeps a second
        // with a long closed gate from collapsing the pace instead.)
        let accepted_rate = accepted;
        let rate = p.rate.unwrap_or(accepted_rate);
        // Leaving slow start, the last second also drained the bucket's burst and so overstates the limit:
        // take half the pace that overran it (as TCP does), unless Graph accepted even less. Afterwards one
        // episode cuts by 10 % to 32.5 % at most, so a window that saw little traffic (slots busy with
        // hung requests, say) cannot collapse the pace.
        // When most answers are 429s the limit is plain, whatever the window: take it as measured.
        let base = if p.slow_start || share >= DEEP_CUT_SHARE {
            accepted_rate.min(rate / 2.0)
        } else {
            accepted_rate.clamp(0.75 * rate, rate)
        };
        let new_rate = MARGIN * base;
        p.ceiling = Some((CEILING_TRUST * base).max(MIN_RATE));
        p.slow_start = false;
        p.rate = Some(new_rate.max(MIN_RATE));
        tracing::info!(
            rate_per_second = p.rate.unwrap_or_default() as u64,
            accepted_per_second = accepted as u64,
            throttled_in_window = throttled,
            "Graph throttled: pacing requests"
        );
    }

    /// Most requests worth sending at once under the current pace (half a second of it), so a `$batch`
    /// does not overrun a small bucket in one burst; `None` while unpaced.
    pub fn max_burst(&self) -> Option<usize> {
        self.rate().map(|rate| ((rate * 0.5) as usize).max(1))
    }

    /// The highest rate Graph is known to sustain, once an episode taught it.
    pub fn ceiling(&self) -> Option<f64> {
        self.pacing.lock().expect("pacing lock").ceiling
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
        accept_for_two_seconds(&limiter).await;
        assert_eq!(limiter.rate(), Some(250.0), "slow start: +1/s per accepted request");
        for _ in 0..3 {
            limiter.record_throttled();
        }
        assert_eq!(
            limiter.rate(),
            Some(250.0),
            "3 of 203 answers is under 10 %: noise, not an episode"
        );
        for _ in 0..27 {
            limiter.record_throttled();
        }
        assert_eq!(
            limiter.rate(),
            Some(0.95 * 100.0),
            "leaving slow start: 95 % of what Graph accepted while throttling, under half the pace"
        );
        // 18 requests at 95/s take over 180 ms of schedule each.
        let start = Instant::now();
        let deadline = start + Duration::from_secs(10);
        for _ in 0..3 {
            drop(limiter.acquire(deadline, 18).await);
        }
        assert!(Instant::now() - start >= Duration::from_millis(350));
        tokio::time::advance(Duration::from_secs(4)).await;
        limiter.record_accepted(80);
        assert_eq!(limiter.rate(), Some(96.6), "below the ceiling: +2 % per second");
        tokio::time::advance(SLOT).await;
        limiter.record_accepted(10);
        for _ in 0..12 {
            limiter.record_throttled();
        }
        // The first 429s only trim (0.5 % each); the tenth makes an episode, which cuts by at most
        // 28.75 % although Graph accepted just 40/s while throttling.
        let rate = limiter.rate().unwrap();
        let most = 0.95 * 0.75 * 96.62;
        assert!(rate <= most + 1e-9 && rate >= 0.94 * most, "{rate}");
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

    /// 100 answers a second for two seconds, in quarter-second slots.
    async fn accept_for_two_seconds(limiter: &Limiter) {
        for _ in 0..8 {
            tokio::time::advance(SLOT).await;
            limiter.record_accepted(25);
        }
    }

    /// Leaves slow start with a pace of 95/s and a ceiling of 97/s (Graph accepted 100/s).
    async fn learned() -> Limiter {
        let limiter = Limiter::new(100);
        accept_for_two_seconds(&limiter).await;
        for _ in 0..30 {
            limiter.record_throttled();
        }
        assert_eq!((limiter.rate(), limiter.ceiling()), (Some(95.0), Some(97.0)));
        limiter
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_of_429s_at_the_ceiling_trims_the_pace_without_an_episode() {
        let limiter = learned().await;
        tokio::time::advance(Duration::from_secs(4)).await;
        while limiter.rate().unwrap() < 100.0 {
            tokio::time::advance(Duration::from_millis(100)).await;
            limiter.record_accepted(10);
        }
        let at_ceiling = limiter.rate().unwrap();
        // 10 of ~210 answers in two seconds: no episode, but far more 429s than below the ceiling (none).
        for _ in 0..10 {
            limiter.record_throttled();
        }
        let trimmed = limiter.rate().unwrap();
        assert!(trimmed < at_ceiling, "{trimmed}");
        assert!(
            trimmed > 0.97 * at_ceiling,
            "a 429 trims 0.5 %, it does not cut: {trimmed}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn noise_as_common_below_the_ceiling_as_at_it_does_not_hold_the_pace_down() {
        let limiter = learned().await;
        for _ in 0..600 {
            tokio::time::advance(Duration::from_millis(100)).await;
            // 4 % of answers are 429s at every pace: Graph's stray ones, not its limit.
            limiter.record_accepted(24);
            limiter.record_throttled();
        }
        let (rate, ceiling) = (limiter.rate().unwrap(), limiter.ceiling().unwrap());
        assert!(ceiling >= 97.0, "noise never lowers the ceiling: {ceiling}");
        assert!(
            rate >= 0.96 * ceiling,
            "nor holds the pace under it: {rate} of {ceiling}"
        );
    }
}
