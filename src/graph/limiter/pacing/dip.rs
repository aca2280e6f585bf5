//! Dips: a deliberate lowering of the pace, to tell Graph's limit from its noise (see the module docs
//! of [`super::super`]).

use super::{EPISODE_MIN_ANSWERS, Pacing, Tally};
use std::ops::Bound;
use std::time::Duration;
use tokio::time::Instant;

/// A deliberate lowering of the pace, to tell Graph's limit from its noise: 429s that fall away when
/// the pace falls were the limit; 429s that stay were noise (stray 429s come at any pace).
#[derive(Debug, Clone, Copy)]
pub(super) struct Dip {
    pub(super) restore: f64,
    /// The 429s of the first second after the dip started were sent (or retried) at the old pace.
    measure_from: Instant,
    until: Instant,
    /// `(accepted, throttled)` in the window when the dip started, to weigh what changed against chance.
    before: (u32, u32),
    /// The answers of the settling second (sent at the old pace), once counted: unlike the window that
    /// started the dip, they were not picked for holding many 429s.
    settling: Option<(u32, u32)>,
    started: Instant,
    /// Started instead of a cut that would have followed the last one too soon ([`super::CUT_OR_DIP`]): if
    /// the 429s stay, that last cut was noise's doing and is undone.
    pub(super) instead_of_cut: bool,
}

/// How far a dip lowers the pace: below the limit, if the pace was less than an episode's worth over it.
const DIP_DEPTH: f64 = 0.85;
const DIP_SETTLE: Duration = Duration::from_secs(1);
const DIP_LENGTH: Duration = Duration::from_millis(2500);
/// No dip this soon after a cut. The cut leaves Graph's bucket empty and refills it by only the margin
/// (3 % of the pace), so for a few seconds a `$batch` of 20 can still find fewer tokens than it needs:
/// those 429s are the episode's aftermath and fade on their own, and a dip would take their fading for a
/// limit below the new pace. (Trims still answer them.)
const DIP_AFTER_CUT: Duration = Duration::from_secs(4);
/// Least time from the end of one dip to the start of the next.
const DIP_INTERVAL: Duration = Duration::from_secs(10);
/// After a dip found only noise, the ceiling goes this far above the pace (the fast climb resumes).
const NOISE_HEADROOM: f64 = 1.25;
/// After a dip found the limit, the pace restarts this far below it.
const BELOW_LIMIT: f64 = 0.99;
/// How many standard errors the share of 429s must fall by in a dip for the fall to be the limit's.
/// The dip started because the share was high, so by chance alone it is lower in the dip: at a few
/// percent of stray 429s, a hundred answers holding half as many as the window before happens as often
/// as not, and each such dip took a little off the ceiling for good (measured: a ceiling at two thirds
/// of the limit for a minute at 2 % noise).
/// One-sided, at the 5 % level: a dip that clearly followed a trickle of the limit's 429s (a twentieth of
/// the answers, none in the dip) still finds it.
const DIP_SIGNIFICANCE: f64 = 1.65;

/// The share of 429s in `during` (accepted, throttled) is below the one in `before` by more than
/// [`DIP_SIGNIFICANCE`] standard errors of the difference (a two-proportion test).
fn fell_clearly(before: (u32, u32), during: (u32, u32)) -> bool {
    let n1 = f64::from(before.0 + before.1);
    let n2 = f64::from(during.0 + during.1);
    if n1 == 0.0 || n2 == 0.0 {
        return false;
    }
    let (s1, s2) = (f64::from(before.1) / n1, f64::from(during.1) / n2);
    let pooled = pooled_share(before, during);
    let error = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    s1 - s2 > DIP_SIGNIFICANCE * error
}

/// The share of 429s over both counts of (accepted, throttled).
fn pooled_share(a: (u32, u32), b: (u32, u32)) -> f64 {
    let answers = a.0 + a.1 + b.0 + b.1;
    if answers == 0 {
        return 0.0;
    }
    f64::from(a.1 + b.1) / f64::from(answers)
}

impl Dip {
    /// The share of 429s in the window when the dip started.
    fn share_before(&self) -> f64 {
        f64::from(self.before.1) / f64::from((self.before.0 + self.before.1).max(1))
    }
}

impl Pacing {
    /// Lowers the pace by [`DIP_DEPTH`] for [`DIP_LENGTH`], to restore it or find the limit when it ends.
    pub(super) fn start_dip(&mut self, now: Instant, rate: f64, tally: &Tally, instead_of_cut: bool) {
        self.dip = Some(Dip {
            restore: rate,
            before: (tally.accepted, tally.throttled),
            settling: None,
            started: now,
            measure_from: now + DIP_SETTLE,
            until: now + DIP_LENGTH,
            instead_of_cut,
        });
        self.rate = Some((DIP_DEPTH * rate).max(self.floor()));
    }

    /// Starts or ends a dip (see [`Dip`]). Called with every answer.
    pub(super) fn steer(&mut self, now: Instant, tally: &Tally) {
        let Some(rate) = self.rate else { return };
        if let Some(mut dip) = self.dip {
            if dip.settling.is_none() && now >= dip.measure_from {
                // Still in the window: the settling second is shorter than it.
                let settling = (Bound::Excluded(dip.started), Bound::Included(dip.measure_from));
                dip.settling = Some(self.count_in(settling));
                self.dip = Some(dip);
            }
            if now < dip.until {
                return;
            }
            self.dip = None;
            self.next_dip = Some(now + DIP_INTERVAL);
            let (accepted, throttled) = self.count_in(dip.measure_from..=dip.until);
            if accepted + throttled < EPISODE_MIN_ANSWERS {
                self.rate = Some(dip.restore);
                return;
            }
            let share = f64::from(throttled) / f64::from(accepted + throttled);
            let fell = share < dip.share_before() / 2.0;
            let (settled_accepted, settled_throttled) = dip.settling.unwrap_or_default();
            let old_pace = (dip.before.0 + settled_accepted, dip.before.1 + settled_throttled);
            // Once Graph names its limit's 429s, only those are counted here, and any fall is the limit's.
            let by_chance = !self.labelled_429s && !fell_clearly(old_pace, (accepted, throttled));
            if fell && by_chance {
                // Fewer 429s, but by no more than chance gives: not the limit found. The pace goes
                // back and the ceiling stays; half the 429s are taken for noise, so a few stray ones
                // stop trimming the pace while the next dip looks again.
                self.noise = self.noise.max(pooled_share(old_pace, (accepted, throttled)) / 2.0);
                self.rate = Some(dip.restore);
                return;
            }
            if fell {
                // The 429s fell away with the pace: the pace was over the limit by what fell away.
                // And at least the dip's pace, at which they fell away: a window that happened to
                // see many stray 429s must not take the ceiling lower than that.
                let limit = (dip.restore * (1.0 - (dip.share_before() - share)))
                    .max(DIP_DEPTH * dip.restore)
                    .max(self.floor());
                // Below the limit only Graph's stray 429s remain: what the dip still saw is the noise.
                // A dip that happened to see none does not forget what earlier ones learned: with no
                // noise known, two or three stray 429s in a small window look like a limit again, and
                // each such dip would lower the ceiling a little.
                self.noise = share.max(self.noise / 2.0);
                self.ceiling = Some(limit);
                self.rate = Some(BELOW_LIMIT * limit);
                tracing::info!(limit_per_second = limit as u64, "Graph's limit found by a dip in pace");
            } else {
                self.noise = (share + dip.share_before()) / 2.0;
                let undone = if dip.instead_of_cut { self.cut_from } else { None };
                self.rate = Some(undone.map_or(dip.restore, |from| from.max(dip.restore)));
                // The limit is above this pace, by how much is unknown: climb fast again for a while.
                self.ceiling = Some(dip.restore * NOISE_HEADROOM);
                tracing::info!(stray_429_share = self.noise, "Graph's 429s are noise: pace restored");
            }
            return;
        }
        let answers = tally.accepted + tally.throttled;
        let settled = self
            .last_cut
            .is_some_and(|cut| now.duration_since(cut) >= DIP_AFTER_CUT);
        if self.slow_start || !settled || self.next_dip.is_some_and(|at| now < at) || answers < 50 {
            return;
        }
        let share = f64::from(tally.throttled) / f64::from(answers);
        if tally.throttled >= 3 && share >= self.above_noise(answers) {
            self.start_dip(now, rate, tally, false);
        }
    }
}
