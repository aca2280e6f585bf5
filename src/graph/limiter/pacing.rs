//! The pace: how many requests a second this process sends Graph, learned from nothing but Graph's
//! answers (see the module docs of [`super`]).

mod dip;
mod usage;

use crate::graph::signals::ThrottleCause;
use dip::Dip;
use std::collections::VecDeque;
use std::ops::RangeBounds;
use std::time::Duration;
use tokio::time::Instant;
use usage::{OVERDRIVE_AFTERMATH, OVERDRIVE_LONGEST};

/// Lowest pace: a sample of a few requests says little about the limit, so never start or cut below it
/// on our own reading of Graph's answers.
pub(super) const MIN_RATE: f64 = 10.0;
/// Lowest pace while Graph says how much of the limit the app uses: that share is no sample of ours, and
/// many processes sharing one limit (Flex Consumption starts up to 40) each need less than
/// [`MIN_RATE`]; at 10/s each, 40 processes would send four times a limit of 100/s, three 429s an ID.
pub(super) const LEAST_RATE: f64 = 1.0;
pub(super) const START_RATE: f64 = 50.0;
/// Pace growth per accepted request, below and near the ceiling (a pace of r accepted requests per
/// second grows by r × step per second).
const FAST_PROBE: f64 = 0.02;
const SLOW_PROBE: f64 = 0.002;
/// Pace below which the climb no longer shrinks with the pace. Several processes sharing one budget
/// each get 429s in proportion to their pace (the trims and cuts are proportional); if the climb were
/// too, their shares would keep the ratio they started with, and a small share left holding the last
/// work of a job would drain it slowly. An equal climb for small shares makes them converge.
const FAIR_SHARE_PACE: f64 = 30.0;
/// Where slow probing starts, as a share of the ceiling.
const NEAR_CEILING: f64 = 0.98;
/// Share of the pace a 429 above the noise takes off.
const TRIM: f64 = 0.005;
/// A 429 trims the pace only while the share of 429s in the last two seconds' answers is at least this
/// much above the known noise: a rare one is noise, a steady trickle means the pace is just over the limit.
const TRIM_SHARE: f64 = 0.01;
/// Least time between two cuts: one burst of 429s is one signal. Leaving slow start the estimate is
/// rough (the bucket's burst was still being spent), so the next cut may follow sooner.
const CUT_COOLDOWN: Duration = Duration::from_secs(3);
const FIRST_CUT_COOLDOWN: Duration = Duration::from_secs(1);
/// Pace after an episode, as a share of the rate Graph accepted.
const MARGIN: f64 = 0.97;
/// An episode needs this many 429s among at least [`EPISODE_MIN_ANSWERS`] answers in the window: over a
/// few dozen answers, random 429s can look like 10 % (and a wrong episode early on would end slow start
/// far below the limit).
const EPISODE_MIN_THROTTLED: u32 = 10;
const EPISODE_MIN_ANSWERS: u32 = 20;
/// In slow start an episode also needs this share of 429s over the last half second: the limit's 429s
/// crowd in as the pace doubles past it, Graph's stray ones are spread over the whole window (at 10 %
/// of the answers they would otherwise end slow start at any pace).
const SLOW_START_RECENT_SHARE: f64 = 0.25;
/// Slots (of [`SLOT`]) that make "the last half second".
const RECENT_SLOTS: usize = 2;
/// An episode this soon after a cut (other than the rough one leaving slow start) starts a dip rather
/// than cutting again: as often as every [`CUT_COOLDOWN`], stray 429s above the noise known so far
/// would otherwise grind the pace down before any dip could learn them.
const CUT_OR_DIP: Duration = Duration::from_secs(4);
/// Share of 429s beyond which an episode cuts to what Graph accepted however deep that is.
const DEEP_CUT_SHARE: f64 = 0.5;
const EPISODE_MIN_SHARE: f64 = 0.10;
/// The rate Graph accepts and the share of 429s are measured over this window: over ~200 answers, 4 % of
/// random 429s almost never look like 10 % (over ~100 they sometimes do, and each false episode would
/// cut the pace).
const SHARE_WINDOW: Duration = Duration::from_secs(2);

/// Above the ceiling the pace climbs faster only after this long without a sign of the limit (429s above
/// the noise): then the limit may have moved (another instance stopped sharing it), or was never there.
/// Sooner, and it would climb into the limit again after every trim.
const QUIET: Duration = Duration::from_secs(10);
/// The climb above the ceiling after [`QUIET`]: Graph's burst hides a pace over the limit until it is
/// spent, and the faster the climb the further over the limit the pace is by then.
const QUIET_PROBE: f64 = 0.005;

#[derive(Debug)]
pub(super) struct Pacing {
    /// Requests per second.
    pub(super) rate: Option<f64>,
    /// Doubling every second until the first throttling episode.
    slow_start: bool,
    /// The highest rate Graph sustained: set at an episode, raised when the pace runs above it unthrottled.
    pub(super) ceiling: Option<f64>,
    /// Virtual schedule: when the next request may start.
    pub(super) next_slot: Instant,
    last_cut: Option<Instant>,
    /// The pace just before the last cut.
    cut_from: Option<f64>,
    cuts: u32,
    /// Share of answers that are 429s whatever the pace (Graph's stray ones), as the last dip found.
    noise: f64,
    /// The last 429 that came with more 429s than the noise: a sign of the limit.
    last_limit_sign: Option<Instant>,
    dip: Option<Dip>,
    next_dip: Option<Instant>,
    /// `(when, accepted, throttled)` answers in the last [`SHARE_WINDOW`], to learn the rate Graph
    /// sustains and how much of it is throttled.
    answers: VecDeque<(Instant, u32, u32)>,
    /// When the pace was last written to the debug log (once a second at most).
    last_trace: Instant,
    /// `(when, limit)`: Graph's limit as `x-ms-throttle-limit-percentage` showed it, per answer that had it.
    usage: VecDeque<(Instant, f64)>,
    /// The estimates of the limit are one made while the pace moved: the first steady one replaces it.
    usage_rough: bool,
    /// When Graph last sent `x-ms-throttle-limit-percentage` (0.8 or more).
    usage_seen: Option<Instant>,
    /// Since when the pace runs over the limit Graph reported, to spend its burst ([`OVERDRIVE`]).
    overdrive: Option<Instant>,
    /// When the overdrive ended: 429s until [`OVERDRIVE_AFTERMATH`] later are its own.
    overdrive_ended: Option<Instant>,
    /// When Graph last reported a share clearly over the limit outside the overdrive.
    last_over: Option<Instant>,
    /// `(when, share)`: Graph's share of the limit used, averaged over [`usage::USAGE_AVERAGING`].
    used_average: Option<(Instant, f64)>,
    /// The last share of the limit Graph reported.
    used_last: Option<f64>,
    /// When Graph last answered 429 for our limit (named, or unnamed while it names none).
    last_our_429: Option<Instant>,
    /// When 429s that are no signal for the pace (a loaded service, Graph's noise) came, in the last
    /// [`SHARE_WINDOW`]: Graph counted those requests too, so they are part of what we sent it.
    unsignalled: VecDeque<Instant>,
    /// Graph has named a 429 as our limit (`x-ms-throttle-information`): it labels its 429s.
    labelled_429s: bool,
    /// Since when answers have come without a gap as long as [`SHARE_WINDOW`].
    answering_since: Option<Instant>,
    /// `(when, pace)` over the last [`SHARE_WINDOW`], one sample per [`PACE_SAMPLE`].
    paces: VecDeque<(Instant, f64)>,
}

/// Answers in the window since the last cut.
struct Tally {
    accepted: u32,
    throttled: u32,
    /// Accepted per second in the slots of the window that also saw a 429: while Graph throttles, its
    /// bucket is empty and what it accepts is its refill rate. (A plain average would count the burst the
    /// bucket saved up while the gate was closed.)
    accepted_rate_while_throttled: Option<f64>,
    /// Share of 429s among the answers of the last [`RECENT_SLOTS`] slots.
    recent_share: f64,
}

/// Slots the window is cut into to find where Graph throttled.
pub(super) const SLOT: Duration = Duration::from_millis(250);

impl Pacing {
    pub(super) fn new() -> Self {
        Self {
            rate: Some(START_RATE),
            slow_start: true,
            ceiling: None,
            next_slot: Instant::now(),
            last_cut: None,
            cut_from: None,
            cuts: 0,
            noise: 0.0,
            last_limit_sign: None,
            dip: None,
            next_dip: None,
            answers: VecDeque::new(),
            last_trace: Instant::now(),
            usage: VecDeque::new(),
            usage_seen: None,
            usage_rough: false,
            overdrive: None,
            overdrive_ended: None,
            last_over: None,
            used_average: None,
            used_last: None,
            last_our_429: None,
            paces: VecDeque::new(),
            answering_since: None,
            labelled_429s: false,
            unsignalled: VecDeque::new(),
        }
    }

    /// Requests a second Graph saw from us lately (answers in the window, over the time they span).
    fn sent_rate(&self, now: Instant) -> Option<f64> {
        let (first, _, _) = self.answers.front()?;
        // Answers have come for longer than the window: it is full, whenever its oldest one came.
        let span = if self
            .answering_since
            .is_some_and(|at| now.duration_since(at) >= SHARE_WINDOW)
        {
            SHARE_WINDOW
        } else {
            now.duration_since(*first).max(SLOT)
        }
        .as_secs_f64();
        let sent: u32 = self.answers.iter().map(|(_, a, t)| a + t).sum::<u32>()
            + u32::try_from(self.unsignalled.len()).unwrap_or(u32::MAX);
        Some(f64::from(sent) / span)
    }

    /// The least share of 429s over `answers` answers that says more than noise: one percent above the
    /// noise, or two and a half standard deviations of it.
    fn above_noise(&self, answers: u32) -> f64 {
        let sd = (self.noise * (1.0 - self.noise) / f64::from(answers.max(1))).sqrt();
        self.noise + TRIM_SHARE.max(2.5 * sd)
    }

    /// The lowest our own reading of Graph's answers may cut the pace to: [`MIN_RATE`], or the pace
    /// itself if Graph's share of the limit already set it lower (see [`LEAST_RATE`]).
    fn floor(&self) -> f64 {
        MIN_RATE.min(self.rate.unwrap_or(MIN_RATE))
    }

    /// Answers (accepted, throttled) recorded within `range`.
    fn count_in(&self, range: impl RangeBounds<Instant>) -> (u32, u32) {
        self.answers
            .iter()
            .filter(|(at, _, _)| range.contains(at))
            .fold((0, 0), |(a, t), (_, x, y)| (a + x, t + y))
    }

    fn record(&mut self, now: Instant, accepted: u32, throttled: u32) -> Tally {
        self.sample_pace(now);
        if self
            .answers
            .back()
            .is_none_or(|(at, _, _)| now.duration_since(*at) > SHARE_WINDOW)
        {
            self.answering_since = Some(now);
        }
        self.answers.push_back((now, accepted, throttled));
        while self
            .answers
            .front()
            .is_some_and(|(at, _, _)| now.duration_since(*at) >= SHARE_WINDOW)
        {
            self.answers.pop_front();
        }
        let slots = (SHARE_WINDOW.as_millis() / SLOT.as_millis()) as usize + 1;
        let mut per_slot = vec![(0u32, 0u32); slots];
        let mut tally = Tally {
            accepted: 0,
            throttled: 0,
            accepted_rate_while_throttled: None,
            recent_share: 0.0,
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
        let (recent_accepted, recent_throttled) = per_slot[..RECENT_SLOTS]
            .iter()
            .fold((0, 0), |(a, t), (x, y)| (a + x, t + y));
        if recent_accepted + recent_throttled > 0 {
            tally.recent_share = f64::from(recent_throttled) / f64::from(recent_accepted + recent_throttled);
        }
        let throttled_slots: Vec<u32> = per_slot.iter().filter(|(_, t)| *t > 0).map(|(a, _)| *a).collect();
        if !throttled_slots.is_empty() {
            let accepted: u32 = throttled_slots.iter().sum();
            tally.accepted_rate_while_throttled =
                Some(f64::from(accepted) / (throttled_slots.len() as f64 * SLOT.as_secs_f64()));
        }
        tally
    }

    /// The pace once a second in the debug log (`RUST_LOG=reprocess_handler::graph::limiter=debug`), to
    /// see in a benchmark or an incident how it followed Graph.
    fn trace(&mut self, now: Instant, tally: &Tally) {
        if now.duration_since(self.last_trace) < Duration::from_secs(1) {
            return;
        }
        self.last_trace = now;
        tracing::debug!(
            rate = self.rate.unwrap_or_default() as u64,
            ceiling = self.ceiling.unwrap_or_default() as u64,
            noise_permille = (self.noise * 1000.0) as u64,
            accepted_in_window = tally.accepted,
            throttled_in_window = tally.throttled,
            slow_start = self.slow_start,
            dip = self.dip.is_some(),
            "pace"
        );
    }

    /// `n` requests were accepted (not throttled): remember them and probe the pace upward.
    pub(super) fn on_accepted(&mut self, now: Instant, n: u32) {
        let p = self;
        let tally = p.record(now, n, 0);
        p.usage_lapsed(now);
        p.trace(now, &tally);
        p.steer(now, &tally);
        let (Some(rate), ceiling) = (p.rate, p.ceiling) else {
            return;
        };
        if p.overdrive
            .is_some_and(|since| now.duration_since(since) >= OVERDRIVE_LONGEST)
        {
            p.end_overdrive(now);
        }
        if p.dip.is_some() || p.overdrive.is_some() {
            return;
        }
        // Above the ceiling climb slowly, and a little faster once Graph has sent no 429 for a while (the
        // limit may have moved: another instance has stopped sharing it, say).
        let quiet = p.last_limit_sign.is_none_or(|at| now.duration_since(at) >= QUIET);
        let step = match ceiling {
            _ if p.slow_start => 1.0,
            Some(c) if rate < NEAR_CEILING * c => FAST_PROBE,
            _ if quiet => QUIET_PROBE,
            _ => SLOW_PROBE,
        };
        // Below FAIR_SHARE_PACE every process climbs as if it ran at that pace: the same increase a second
        // whatever its share, so shares converge (a climb proportional to the pace would keep them apart).
        let scale = if p.slow_start {
            1.0
        } else {
            (FAIR_SHARE_PACE / rate).max(1.0)
        };
        let mut rate = rate + step * scale * f64::from(n);
        if let Some(cap) = p.usage_cap(now) {
            rate = rate.min(cap.max(p.rate.unwrap_or(rate)));
        }
        p.rate = Some(rate);
        if ceiling.is_some_and(|c| rate > c) {
            p.ceiling = Some(rate);
        }
    }

    /// Graph throttled a request. If that makes a throttling episode (see the module docs), pace at the
    /// rate Graph accepted over the last second — once per episode, as one burst of 429s is one signal.
    /// Graph answered 429 for `cause`. Every 429 is honoured by its own request; only the pace's own
    /// signals move the pace: one Graph names as our limit, or one it does not name while Graph has
    /// never named any (once it has named one, it names them all, and an unnamed one is noise). A 429
    /// for a loaded service or the tenant's limit only counts as sent.
    pub(super) fn on_429(&mut self, now: Instant, cause: ThrottleCause) {
        match cause {
            ThrottleCause::OurLimit => {
                self.labelled_429s = true;
                self.on_throttled(now, true);
            }
            ThrottleCause::Unknown if !self.labelled_429s => self.on_throttled(now, false),
            _ => self.on_unsignalled(now),
        }
    }

    /// `named`: Graph said the 429 is for our limit (`x-ms-throttle-information`).
    pub(super) fn on_throttled(&mut self, now: Instant, named: bool) {
        let p = self;
        let tally = p.record(now, 0, 1);
        p.last_our_429 = Some(now);
        if p.overdrive.is_some() {
            let answers = tally.accepted + tally.throttled;
            let many = tally.throttled >= EPISODE_MIN_THROTTLED
                && f64::from(tally.throttled) >= EPISODE_MIN_SHARE * f64::from(answers);
            if !named && !many {
                // A stray 429 (Graph names its limit's) must not end the overdrive before the burst is spent.
                return;
            }
            // The burst is spent: Graph's limit is plain.
            p.end_overdrive(now);
        }
        if p.overdrive_ended
            .is_some_and(|at| now.duration_since(at) < OVERDRIVE_AFTERMATH)
        {
            // Counted from here on: these 429s must not make an episode of the next ones.
            p.last_cut = Some(now);
            return;
        }
        let throttled = tally.throttled;
        let share = f64::from(throttled) / f64::from(tally.accepted + throttled);
        let episode = throttled >= EPISODE_MIN_THROTTLED
            && tally.accepted + throttled >= EPISODE_MIN_ANSWERS
            && share >= p.noise + EPISODE_MIN_SHARE
            && (!p.slow_start || tally.recent_share >= SLOW_START_RECENT_SHARE);
        if episode || share >= p.above_noise(tally.accepted + throttled) {
            p.last_limit_sign = Some(now);
        }
        if !episode {
            p.steer(now, &tally);
            if p.dip.is_some() {
                return;
            }
        }
        if episode && share < DEEP_CUT_SHARE && p.dip.is_some_and(|d| d.instead_of_cut) {
            // That dip is already telling the limit from noise.
            return;
        }
        let soon_after_cut = p.last_cut.is_some_and(|at| now.duration_since(at) < CUT_OR_DIP);
        if episode && p.cuts >= 2 && soon_after_cut && share < DEEP_CUT_SHARE && p.dip.is_none() {
            // Cut after cut, and the 429s did not fall away: maybe they never were the limit's (Graph's
            // stray 429s come at any pace). A dip tells which, and undoes the last cut if they stay.
            if let Some(rate) = p.rate {
                p.start_dip(now, rate, &tally, true);
            }
            return;
        }
        let cooldown = if p.cuts == 1 { FIRST_CUT_COOLDOWN } else { CUT_COOLDOWN };
        if !episode || p.last_cut.is_some_and(|at| now.duration_since(at) < cooldown) {
            // A steady trickle of 429s above the noise says the pace is just over the limit: trim it.
            // One now and then is noise.
            if !p.slow_start && share >= p.above_noise(tally.accepted + throttled) {
                if let Some(rate) = p.rate {
                    p.rate = Some((rate * (1.0 - TRIM)).max(p.floor()));
                }
            }
            return;
        }
        let accepted = tally
            .accepted_rate_while_throttled
            .unwrap_or(f64::from(tally.accepted) / SHARE_WINDOW.as_secs_f64());
        if let Some(dip) = p.dip.take() {
            p.rate = Some(dip.restore);
        }
        p.last_cut = Some(now);
        p.cut_from = p.rate;
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
        p.ceiling = Some(base.max(p.floor()));
        p.slow_start = false;
        p.rate = Some(new_rate.max(p.floor()));
        tracing::info!(
            rate_per_second = p.rate.unwrap_or_default() as u64,
            accepted_per_second = accepted as u64,
            throttled_in_window = throttled,
            "Graph throttled: pacing requests"
        );
    }
}
