//! Graph's own word on where the app stands: `x-ms-throttle-limit-percentage` (the share of the limit
//! used, sent from 0.8 on). It ends slow start before any 429, starts the overdrive that spends a token
//! bucket's burst, and caps the pace just under the limit it implies (see the module docs of
//! [`super::super`]).

use super::{LEAST_RATE, Pacing, SHARE_WINDOW};
use std::time::Duration;
use tokio::time::Instant;

/// Share of Graph's limit the pace aims at once Graph says how much of it the app uses: just below the
/// limit, with room for the answers' uneven arrival. The limit is the highest estimate of the last
/// seconds, so a coarse share ("1.0" for anything from 0.95 to 1.05) still lets the pace reach the real
/// limit; Graph's 429s for it trim the rest.
const USAGE_TARGET: f64 = 0.98;
/// Once Graph first reports the limit reached, the pace runs this far above it until Graph's first 429
/// for our limit: a token bucket's burst (the requests it saved up while slow start was below the
/// limit) is spent early in the job, when it is worth the most, instead of never. Without a 429 it ends
/// after [`OVERDRIVE_LONGEST`]: a limit counted over a window has no burst to spend.
const OVERDRIVE: f64 = 1.15;
pub(super) const OVERDRIVE_LONGEST: Duration = Duration::from_secs(8);
/// 429s this soon after the overdrive ended are its aftermath (batches sent at its pace, an empty
/// bucket): they neither trim nor cut the pace again.
pub(super) const OVERDRIVE_AFTERMATH: Duration = Duration::from_secs(1);
/// The pace after the overdrive, as a share of the limit: the bucket is empty then, and a pace at the
/// limit would meet a 429 with every early answer until it refilled. The climb takes it back up within
/// a second or two.
const AFTER_OVERDRIVE: f64 = 0.96;
const USAGE_ROUNDING: f64 = 1.04;
/// A ceiling this far below the limit Graph reports is raised to it.
const FAR_BELOW: f64 = 1.15;
/// A pace that stayed within this share of itself is steady enough to read Graph's share against.
const STEADY_BAND: f64 = 0.05;
const PACE_SAMPLE: Duration = Duration::from_millis(100);
/// Graph sends `x-ms-throttle-limit-percentage` from this share on; it caps its values at this high.
const USAGE_FROM: f64 = 0.8;
const USAGE_MOST: f64 = 1.8;
/// Estimates of the limit are kept this long, the highest one counting: Graph's share is measured over
/// a window, so just after the pace fell it still shows the old pace and would make the limit look lower.
const USAGE_MEMORY: Duration = Duration::from_secs(5);
/// A share this far over the limit, outside the overdrive, says the pace is over it however the share
/// was rounded: processes sharing the limit (each sees all of their usage) or a limit that fell.
const CLEARLY_OVER: f64 = 1.05;
/// In the overdrive Graph's share of the limit reaches about [`OVERDRIVE`]; this much says more than
/// this process spent the burst.
const TOO_FAR_OVER: f64 = 1.5;
const USAGE_AVERAGING: Duration = Duration::from_secs(1);
/// Without the header for this long, the app uses under 0.8 of its limit again: the cap is lifted.
const USAGE_FRESH: Duration = Duration::from_secs(2);

impl Pacing {
    /// The most the pace may be while Graph keeps saying how much of the limit is used.
    pub(super) fn usage_cap(&self, now: Instant) -> Option<f64> {
        Some((USAGE_TARGET * self.usage_limit(now)?).max(LEAST_RATE))
    }

    /// Graph's limit as its recent `x-ms-throttle-limit-percentage` values tell it, while they are fresh.
    pub(super) fn usage_limit(&self, now: Instant) -> Option<f64> {
        if self.usage_seen.is_none_or(|at| now.duration_since(at) > USAGE_FRESH) {
            return None;
        }
        Some(self.usage.iter().map(|(_, l)| *l).fold(0.0, f64::max))
    }

    /// The middle of the recent estimates of the limit, while Graph keeps sending its share: one value
    /// rounded the wrong way does not set the pace.
    pub(super) fn usage_median(&self, now: Instant) -> Option<f64> {
        self.usage_limit(now)?;
        let mut limits: Vec<f64> = self.usage.iter().map(|(_, l)| *l).collect();
        limits.sort_by(f64::total_cmp);
        limits.get(limits.len() / 2).copied()
    }

    /// Ends the overdrive: the pace settles under the limit Graph reported.
    pub(super) fn end_overdrive(&mut self, now: Instant) {
        if self.overdrive.take().is_none() {
            return;
        }
        self.overdrive_ended = Some(now);
        self.last_cut = Some(now);
        self.last_limit_sign = Some(now);
        let limit = self.usage_median(now).or(self.ceiling);
        if let (Some(limit), Some(rate)) = (limit, self.rate) {
            // Graph's share far over what the overdrive explains: others spent the same burst (several
            // processes starting at once). The overdrive's pace held; over that share it is our part.
            let limit = match self.used_last {
                Some(used) if used >= TOO_FAR_OVER => limit.min(rate / used),
                _ => limit,
            };
            // The ceiling allows for a share rounded to one decimal (a few percent either way): the
            // pace climbs fast to the limit, and 429s, not the rounding, say where it is.
            self.ceiling = Some(USAGE_ROUNDING * limit);
            self.rate = Some((AFTER_OVERDRIVE * limit).min(rate).max(self.floor()));
        }
    }

    /// Graph stopped sending `x-ms-throttle-limit-percentage` although we keep sending: the app uses
    /// less than 0.8 of its limit, which is therefore above what we send over 0.8. The cap is lifted
    /// and the pace climbs fast up to that (it may have been held low by another app, say).
    pub(super) fn usage_lapsed(&mut self, now: Instant) {
        let Some(last) = self.usage_seen else { return };
        if now.duration_since(last) <= USAGE_FRESH {
            return;
        }
        self.usage.clear();
        self.usage_seen = None;
        self.used_last = None;
        if let Some(sent) = self.sent_rate(now) {
            let below = sent / USAGE_FROM;
            if self.ceiling.is_some_and(|c| below > FAR_BELOW * c) {
                // Held far under a limit that others shared, who have stopped (the last of a job is
                // ours alone): how far above it is is unknown, so find it as at the start.
                self.slow_start = true;
                self.last_limit_sign = None;
            }
            self.ceiling = Some(self.ceiling.map_or(below, |c| c.max(below)));
        }
    }

    /// Graph says the app used `used` of its limit (`x-ms-throttle-limit-percentage`): the limit is what
    /// we sent over that share. In slow start this starts the overdrive; afterwards the pace is capped
    /// at [`USAGE_TARGET`] of the limit.
    pub(in crate::graph::limiter) fn on_usage(&mut self, now: Instant, used: f64) {
        let Some(rate) = self.rate else { return };
        if used < USAGE_FROM {
            return;
        }
        let used = used.min(USAGE_MOST);
        let sent = self.sent_rate(now).unwrap_or(rate);
        // Graph's share and our count of what we sent agree only once the pace has held for as long as
        // either window: while it climbs or falls they cover different spans, and the estimate is off
        // by as much as the pace changed. The first estimate is kept anyway: rough beats none.
        let steady = self.pace_is_steady(now);
        if steady && self.usage_rough {
            self.usage.clear();
            self.usage_rough = false;
        }
        if steady || self.usage.is_empty() {
            self.usage.push_back((now, sent / used));
            self.usage_rough = !steady;
        }
        self.usage_seen = Some(now);
        // The newest estimate stays however old: while the pace moves, none newer can be made.
        while self.usage.len() > 1
            && self
                .usage
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) > USAGE_MEMORY)
        {
            self.usage.pop_front();
        }
        if used >= 1.0 {
            self.last_limit_sign = Some(now);
        }
        self.used_last = Some(used);
        let used_lately = self.average_usage(now, used);
        let clearly_over = used_lately >= CLEARLY_OVER
            && !self.slow_start
            && self.overdrive.is_none()
            && self
                .overdrive_ended
                .is_none_or(|at| now.duration_since(at) >= OVERDRIVE_AFTERMATH)
            && self.last_over.is_none_or(|at| now.duration_since(at) >= SHARE_WINDOW)
            // Graph's 429s for our limit confirm it: over a window longer than ours its share still
            // shows a pace we already left, and scaling down by it again and again would collapse it.
            && self.last_our_429.is_some_and(|at| now.duration_since(at) < SHARE_WINDOW);
        if clearly_over {
            self.scale_to_usage(now, sent, used_lately);
            return;
        }
        let Some(limit) = self.usage_limit(now) else { return };
        if self.slow_start {
            // Slow start is over before any 429. A token bucket saved up a burst while the pace was
            // below the limit: the overdrive spends it until Graph's first 429.
            self.slow_start = false;
            self.overdrive = Some(now);
            self.ceiling = Some(limit);
            self.last_cut = Some(now);
            self.cuts += 1;
            // No faster than slow start had come: its estimate of the limit is rough (slow start's
            // climb spans less than Graph's window), and above the pace Graph just saw it is a guess.
            let overdrive = rate.min(OVERDRIVE * limit).max(LEAST_RATE);
            self.rate = Some(overdrive);
            tracing::info!(
                rate_per_second = overdrive as u64,
                limit_used = used,
                "Graph reports most of the limit used: spending its burst, then pacing under it"
            );
            return;
        }
        if let Some(since) = self.overdrive {
            if now.duration_since(since) < OVERDRIVE_LONGEST {
                return;
            }
            self.end_overdrive(now);
        }
        let Some(cap) = self.usage_cap(now) else { return };
        if rate > cap {
            self.rate = Some(cap);
        }
        // Graph says there is much room above a ceiling that a cut (after a wave of 429s, say) set low:
        // the pace climbs fast to the limit again instead of probing its way up for a minute. (Not for
        // a few percent: processes sharing the limit each see their share of it rise and fall, and
        // each raised ceiling would have them climb into each other's 429s.)
        if let (Some(limit), Some(ceiling)) = (self.usage_median(now), self.ceiling) {
            if steady && limit > FAR_BELOW * ceiling {
                self.ceiling = Some(limit);
            }
        }
    }

    /// Graph says the app uses `used` of its limit, clearly over it, while we sent `sent` a second: what we
    /// sent is our part of that usage, so every process that sees this header scales its pace down by
    /// the same factor, at once, and together they land under the limit.
    fn scale_to_usage(&mut self, now: Instant, sent: f64, used: f64) {
        let Some(rate) = self.rate else { return };
        let limit = sent / used;
        self.usage.clear();
        self.usage.push_back((now, limit));
        self.usage_rough = false;
        self.last_over = Some(now);
        self.last_limit_sign = Some(now);
        self.ceiling = Some(self.ceiling.map_or(limit, |c| c.min(limit)));
        self.rate = Some(rate.min(USAGE_TARGET * limit).max(LEAST_RATE));
    }

    /// Graph's share of the limit over the last second or so: one value rounded to one decimal is
    /// off by as much as 5 %, and a pace sent in batches puts one more or one less batch in Graph's
    /// window from one answer to the next; over many answers these even out.
    fn average_usage(&mut self, now: Instant, used: f64) -> f64 {
        let average = match self.used_average {
            Some((at, average)) if now.duration_since(at) <= USAGE_FRESH => {
                let weight = 1.0 - (-now.duration_since(at).as_secs_f64() / USAGE_AVERAGING.as_secs_f64()).exp();
                average + weight * (used - average)
            }
            _ => used,
        };
        self.used_average = Some((now, average));
        average
    }

    /// The pace has stayed within [`STEADY_BAND`] of what it is now for the last [`SHARE_WINDOW`].
    pub(super) fn pace_is_steady(&self, now: Instant) -> bool {
        let Some(rate) = self.rate else { return false };
        let Some((oldest, _)) = self.paces.front() else {
            return false;
        };
        now.duration_since(*oldest) + PACE_SAMPLE >= SHARE_WINDOW
            && self.paces.iter().all(|(_, r)| (r - rate).abs() <= STEADY_BAND * rate)
    }

    /// Samples the pace (every [`PACE_SAMPLE`]) for [`Pacing::pace_is_steady`].
    pub(super) fn sample_pace(&mut self, now: Instant) {
        let Some(rate) = self.rate else { return };
        if self
            .paces
            .back()
            .is_some_and(|(at, _)| now.duration_since(*at) < PACE_SAMPLE)
        {
            return;
        }
        self.paces.push_back((now, rate));
        while self
            .paces
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > SHARE_WINDOW)
        {
            self.paces.pop_front();
        }
    }

    /// A 429 that says nothing about our pace was answered: it counts only as sent.
    pub(super) fn on_unsignalled(&mut self, now: Instant) {
        self.unsignalled.push_back(now);
        while self
            .unsignalled
            .front()
            .is_some_and(|at| now.duration_since(*at) >= SHARE_WINDOW)
        {
            self.unsignalled.pop_front();
        }
    }
}
