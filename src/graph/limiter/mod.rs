//! One limiter per process, shared by every concurrent invocation:
//! - a cap on in-flight Graph HTTP requests (`GRAPH_MAX_CONCURRENCY`);
//! - a back-off gate: when Graph refuses a whole `$batch` with 429 and `Retry-After` for the app's
//!   limit (it says so, or most recent batches were refused whole), every caller waits instead of
//!   piling on; a stray whole-batch 429 or 503 delays only that batch, a 429 for one request only that
//!   request ([`Limiter::record_batch_answer`]);
//! - adaptive pacing of requests per second (a `$batch` of 20 counts 20, as Graph throttles each
//!   sub-request), from nothing but Graph's answers ([`pacing`]):
//!   - never below 10/s on the pacing's own reading of Graph's answers (a few answers say little),
//!     but down to 1/s when Graph's share of the limit sets it: many processes sharing one limit (40
//!     on 100/s: 2.5/s each) would otherwise send it several times over, every ID meeting 429s;
//!   - slow start at 50/s, doubling every second, until a throttling episode: at least 10 answers of 429
//!     that are also at least 10 % more of the answers since the last cut (two seconds at most) than the
//!     known noise;
//!   - an episode sets the *ceiling* to the rate Graph accepted in the quarter-seconds it throttled (a
//!     token bucket's refill rate) and the pace to 97 % of it, cutting at most 28.75 % unless most answers
//!     were 429s, and at most once per 3 s (1 s after leaving slow start);
//!   - below 98 % of the ceiling the pace climbs 2 % a second, above it 0.2 % a second (0.5 % after 10 s
//!     without a 429: the limit may have moved, as when another instance stops sharing it);
//!   - 429s above the known noise (1 %, or 2.5 standard deviations of the noise) trim the pace by 0.5 %
//!     each, so it settles at the limit;
//!   - whether 429s are the limit or noise (Graph's stray 429s come at any pace) only a change of pace can
//!     tell: when they rise above the known noise, the pace *dips* by 15 % for 2.5 s. If the 429s fall
//!     away, the pace was over the limit by what fell away: the ceiling becomes that limit and the pace
//!     restarts 1 % under it. If they stay, they are noise: the noise share is learned and the pace
//!     restored, so noise cannot grind throughput down. At most one dip per 10 s. While Graph names
//!     none of its 429s, a fall must also be beyond chance (a one-sided two-proportion test at 5 %, the
//!     settling second's answers counted with the old pace's): the dip started because the share was
//!     high, so by chance alone it is lower in the dip. A fall within chance restores the pace, keeps
//!     the ceiling and takes half the 429s for noise;
//!   - several instances sharing one budget learn their shares the same way: the 429s above the limit
//!     reach each in proportion to its pace. Below 30/s a pace climbs as much a second as one at 30/s,
//!     so small shares catch up (additive increase, as in TCP) instead of keeping their first ratio;
//!   - no dip within 4 s of a cut: the 429s just after one are its aftermath, not a limit below it;
//!     but an episode that soon after a cut (other than the first two) starts a dip instead of cutting
//!     again: stray 429s above the noise known so far would otherwise cut every 3 s before any dip
//!     could learn them. If the 429s stay through that dip, that cut is undone;
//!   - in slow start an episode also needs a quarter of the last half second's answers to be 429s:
//!     the limit's crowd in as the pace doubles past it, stray ones are spread over the window;
//!   - a request that got no answer (reset, or abandoned as hung) gives its pacing slot back
//!     ([`Limiter::refund`]): Graph most likely never counted it;
//!   - when Graph says how much of the app's limit is used (`x-ms-throttle-limit-percentage`, sent
//!     from 0.8 on), the limit is what we sent over that share, read only while the pace has held
//!     steady for as long as the window (else the two counts cover different spans). The first such
//!     header ends slow start before any 429 and starts an *overdrive*: up to 1.15 × that limit, to
//!     spend the burst a token bucket saved while slow start was below it, until Graph's first 429
//!     for our limit (or 8 s); the pace then restarts at 96 % of the limit and climbs. Afterwards the
//!     pace stays under 98 % of the highest estimate of the last seconds (a coarse share still lets
//!     it reach the real limit), a ceiling far below the reported limit is raised to it, and the cap
//!     lifts once Graph stops sending the header;
//!   - the share counts every process of the app, so it is also how processes sharing the limit steer
//!     together without talking: a share clearly over the limit (1.05 or more, averaged over a second
//!     of answers, outside the overdrive, and confirmed by a 429 for our limit in the last two
//!     seconds: a share counted over a longer window lags the pace) sets each pace and ceiling at
//!     98 % of what it sent over that share, every process at once by the same factor. The overdrive ends at 96 % of what it sent over
//!     the share if that was far more (1.5 or more) than one process's overdrive explains (several
//!     started at once). A process held far under its ceiling whose header lapses (the others are done)
//!     finds the limit again by slow start;
//!   - 429s that Graph says come from a loaded service (`CPULimitExceeded`) or the tenant's limit for
//!     all apps are not throttle signals ([`Limiter::record_answer`]); once Graph has named one 429 as
//!     the app's own limit (`ResourceUnitLimitExceeded`), a 429 it does not name is not one either.
//!
//! [`sim`] runs this limiter against a simulated token bucket in paused time and tests what it provokes.

mod pacing;
#[cfg(test)]
mod sim;

use super::signals::{Signals, ThrottleCause};
use pacing::Pacing;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// How often a request waiting for its pacing slot looks again (the pace may have changed meanwhile).
const RECHECK: Duration = Duration::from_millis(20);
/// Whole-request answers to `$batch`es are remembered this long, to tell a stray 429 for a whole batch
/// (Graph's noise: only that batch waits) from the app's limit (everyone waits).
const WHOLE_WINDOW: Duration = Duration::from_secs(5);
/// Without information, whole-batch 429s close the gate only when at least this many came in
/// [`WHOLE_WINDOW`] and they are at least half of the batches answered in it.
const WHOLE_429S: usize = 3;

#[derive(Debug)]
pub struct Limiter {
    in_flight: Semaphore,
    gate: Mutex<Option<Instant>>,
    pacing: Mutex<Pacing>,
    /// `(when, throttled)` for the `$batch` requests answered as a whole in the last [`WHOLE_WINDOW`].
    whole_answers: Mutex<VecDeque<(Instant, bool)>>,
}

impl Limiter {
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            in_flight: Semaphore::new(max_in_flight),
            gate: Mutex::new(None),
            pacing: Mutex::new(Pacing::new()),
            whole_answers: Mutex::new(VecDeque::new()),
        }
    }

    /// A limiter already pacing at `rate` requests per second (past slow start), for tests.
    #[cfg(test)]
    pub(crate) fn with_rate(max_in_flight: usize, rate: f64) -> Self {
        let limiter = Self::new(max_in_flight);
        limiter.pacing.lock().expect("pacing lock").rate = Some(rate);
        limiter
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

    /// Closes the gate for everyone for `wait` (never shortening it): Graph said the app as a whole must
    /// wait ([`Limiter::record_batch_answer`]). A 429 for one request (or sub-request) holds back only
    /// that request (its caller waits `wait` before retrying it); the pace, not a gate, keeps the rest
    /// under the limit, so a stray 429 cannot stall the process and no burst builds up behind a gate.
    pub fn back_off(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut gate = self.gate.lock().expect("gate lock");
        if gate.is_none_or(|at| at < until) {
            *gate = Some(until);
        }
    }

    /// A request of `weight` got no answer at all (reset, or abandoned as hung): Graph most likely never
    /// counted it, so its share of the pace goes to the next request waiting for a slot. Without this
    /// the pace would have to climb above Graph's limit by the share of such failures to use the budget.
    pub fn refund(&self, weight: u32) {
        let mut p = self.pacing.lock().expect("pacing lock");
        let Some(rate) = p.rate else { return };
        let now = Instant::now();
        let earlier = p
            .next_slot
            .checked_sub(Duration::from_secs_f64(f64::from(weight) / rate));
        p.next_slot = earlier.map_or(now, |at| at.max(now));
    }

    /// When the gate opens, if it is closed now.
    pub fn gate_open_at(&self) -> Option<Instant> {
        let gate = *self.gate.lock().expect("gate lock");
        gate.filter(|at| *at > Instant::now())
    }

    /// Graph's answer to one request or `$batch` sub-request, as the pacing reads it: which 429s are
    /// throttle signals is the pacing's call (`Pacing::on_429`); anything else was accepted.
    /// `x-ms-throttle-limit-percentage` tells the pacing where the limit is.
    pub fn record_answer(&self, status: u16, signals: &Signals) {
        if let Some(used) = signals.limit_used {
            self.pacing.lock().expect("pacing lock").on_usage(Instant::now(), used);
        }
        match status {
            429 => self
                .pacing
                .lock()
                .expect("pacing lock")
                .on_429(Instant::now(), signals.cause()),
            _ => self.record_accepted(1),
        }
    }

    /// A `$batch` request was answered as a whole: `200` (its sub-responses follow), or a failure with
    /// Graph's `Retry-After` (`wait`). That batch waits `wait` on its own; the gate closes for everyone
    /// only when the 429 is the app's limit: Graph says so (`ResourceUnitLimitExceeded`, our scope), or,
    /// without information, several whole batches were refused in a short time and they are at least
    /// half of those answered. A 503, a 429 because the service is loaded, and a stray 429 among
    /// answered batches never stall the other invocations. Returns whether the gate closed.
    pub fn record_batch_answer(&self, status: u16, wait: Option<Duration>, cause: ThrottleCause) -> bool {
        let now = Instant::now();
        let throttled = status == 429;
        let mut recent = self.whole_answers.lock().expect("whole answers lock");
        recent.push_back((now, throttled));
        while recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > WHOLE_WINDOW)
        {
            recent.pop_front();
        }
        let Some(wait) = wait.filter(|_| throttled) else {
            return false;
        };
        let close = match cause {
            ThrottleCause::OurLimit => true,
            ThrottleCause::ServiceLoad => false,
            ThrottleCause::Unknown => {
                let refused = recent.iter().filter(|(_, t)| *t).count();
                refused >= WHOLE_429S && refused * 2 >= recent.len()
            }
        };
        drop(recent);
        if close {
            self.back_off(wait);
        }
        close
    }

    /// `n` requests were accepted (not throttled): remember them and probe the pace upward.
    pub fn record_accepted(&self, n: u32) {
        if n > 0 {
            self.pacing.lock().expect("pacing lock").on_accepted(Instant::now(), n);
        }
    }

    /// A 429 that says nothing more, as the tests send it: the same path as Graph's answers.
    #[cfg(test)]
    pub fn record_throttled(&self) {
        self.record_answer(429, &Signals::default());
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
mod tests;
