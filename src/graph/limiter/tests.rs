use super::pacing::*;
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
        (limiter.rate(), limiter.ceiling()),
        (Some(0.97 * 100.0), Some(100.0)),
        "leaving slow start: the ceiling is what Graph accepted while throttling (under half the pace), \
         the pace 97 % of it"
    );
    // 18 requests at 97/s take over 180 ms of schedule each.
    let start = Instant::now();
    let deadline = start + Duration::from_secs(10);
    for _ in 0..3 {
        drop(limiter.acquire(deadline, 18).await);
    }
    assert!(Instant::now() - start >= Duration::from_millis(350));
    tokio::time::advance(Duration::from_secs(4)).await;
    limiter.record_accepted(80);
    let climbed = limiter.rate().unwrap();
    assert!(
        (climbed - 98.6).abs() < 1e-9,
        "below the ceiling: +2 % per second: {climbed}"
    );
    tokio::time::advance(SLOT).await;
    limiter.record_accepted(10);
    for _ in 0..12 {
        limiter.record_throttled();
    }
    // The first 429s start a dip; the tenth makes an episode, which ends the dip and cuts from the pace
    // before it by at most 25 % although Graph accepted just 40/s while throttling.
    let rate = limiter.rate().unwrap();
    let most = 0.97 * 0.75 * climbed;
    assert!(rate <= most + 1e-9 && rate >= 0.97 * most, "{rate}");
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

/// Leaves slow start with a ceiling of 100/s (what Graph accepted) and a pace of 97/s.
async fn learned() -> Limiter {
    let limiter = Limiter::new(100);
    accept_for_two_seconds(&limiter).await;
    for _ in 0..30 {
        limiter.record_throttled();
    }
    assert_eq!((limiter.rate(), limiter.ceiling()), (Some(97.0), Some(100.0)));
    limiter
}

/// `accepted` answers and `throttled` 429s every 100 ms for `seconds`.
async fn answer_for(limiter: &Limiter, seconds: u32, accepted: u32, throttled: u32) {
    for _ in 0..seconds * 10 {
        tokio::time::advance(Duration::from_millis(100)).await;
        limiter.record_accepted(accepted);
        for _ in 0..throttled {
            limiter.record_throttled();
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_trickle_of_429s_that_a_dip_makes_vanish_was_the_limit() {
    let limiter = learned().await;
    tokio::time::advance(Duration::from_secs(4)).await;
    while limiter.rate().unwrap() < 104.0 {
        tokio::time::advance(Duration::from_millis(100)).await;
        limiter.record_accepted(10);
    }
    let over = limiter.rate().unwrap();
    // 5 % of the answers are 429s: not an episode (10 %), but more than the noise known so far (none).
    answer_for(&limiter, 1, 19, 1).await;
    let dipped = limiter.rate().unwrap();
    assert!(
        dipped <= 0.86 * over,
        "a dip lowers the pace by 15 %: {dipped} of {over}"
    );
    // At the lower pace the 429s stop: they were the limit's.
    answer_for(&limiter, 3, 9, 0).await;
    let (rate, ceiling) = (limiter.rate().unwrap(), limiter.ceiling().unwrap());
    assert!(
        ceiling < over && ceiling > 0.9 * over,
        "the limit is the pace less the 429s that fell away: {ceiling} of {over}"
    );
    assert!(
        rate < ceiling && rate >= 0.98 * ceiling,
        "the pace restarts just under it: {rate}"
    );
}

/// A share of 429s that was high by chance is lower in the next window, dip or none: a fall no larger
/// than chance gives must not be taken for the limit.
#[tokio::test(start_paused = true)]
async fn a_dip_that_sees_fewer_429s_only_by_chance_leaves_the_ceiling() {
    let limiter = learned().await;
    answer_for(&limiter, 5, 10, 0).await;
    let ceiling = limiter.ceiling().unwrap();
    // About 2 % of the answers are Graph's stray 429s (Graph names none): a few in a window start a dip.
    let mut restore = None;
    for tick in 1..=40 {
        let before = limiter.rate().unwrap();
        tokio::time::advance(Duration::from_millis(100)).await;
        limiter.record_accepted(10);
        if tick % 5 == 0 {
            limiter.record_throttled();
        }
        if limiter.rate().unwrap() < 0.9 * before {
            restore = Some(before);
            break;
        }
    }
    let restore = restore.expect("a dip started");
    // In the dip no 429 comes: half as many as before, but over ~135 answers that is chance.
    answer_for(&limiter, 3, 9, 0).await;
    let (rate, after) = (limiter.rate().unwrap(), limiter.ceiling().unwrap());
    assert!(after >= ceiling, "the ceiling stays: {after} < {ceiling}");
    assert!(rate >= restore, "the pace goes back: {rate} < {restore}");
}

#[tokio::test(start_paused = true)]
async fn noise_that_a_dip_leaves_in_place_is_learned_and_does_not_hold_the_pace_down() {
    let limiter = learned().await;
    answer_for(&limiter, 3, 10, 0).await;
    let before = limiter.rate().unwrap();
    // 4 % of answers are 429s at every pace: Graph's stray ones, not its limit.
    answer_for(&limiter, 60, 24, 1).await;
    let (rate, ceiling) = (limiter.rate().unwrap(), limiter.ceiling().unwrap());
    assert!(
        rate >= before,
        "noise never lowers the pace for good: {rate} < {before}"
    );
    assert!(
        rate >= 0.95 * ceiling,
        "nor holds it under the ceiling: {rate} of {ceiling}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_without_an_answer_gives_its_pacing_slot_back() {
    let limiter = Limiter::new(4);
    let deadline = Instant::now() + Duration::from_secs(60);
    let start = Instant::now();
    // At 50/s a `$batch` of 20 books 0.4 s of pace.
    drop(limiter.acquire(deadline, 20).await);
    limiter.refund(20);
    drop(limiter.acquire(deadline, 20).await);
    assert_eq!(
        Instant::now(),
        start,
        "the refunded slot went to the next request at once"
    );
    drop(limiter.acquire(deadline, 20).await);
    assert!(
        Instant::now() - start >= Duration::from_millis(400),
        "an answered one keeps its slot"
    );
    // A refund never books a slot in the past: no burst builds up from refunds.
    limiter.refund(20);
    limiter.refund(20);
    drop(limiter.acquire(deadline, 20).await);
    let at = Instant::now();
    drop(limiter.acquire(deadline, 20).await);
    assert!(
        Instant::now() - at >= Duration::from_millis(390),
        "{:?}",
        Instant::now() - at
    );
}

use crate::graph::signals::{INFORMATION, LIMIT_PERCENTAGE, Signals};

fn signals(headers: &[(&str, &str)]) -> Signals {
    Signals::read(|name| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
}

/// Sends at the pace for `seconds` in steps of 100 ms to a Graph whose limit is `limit` a second and
/// which reports the share of it used over the last two seconds (from 0.8 on; `sent` is what it saw
/// sent, step by step); returns the highest pace.
async fn paced_against(limiter: &Limiter, limit: f64, seconds: u32, sent: &mut std::collections::VecDeque<u32>) -> f64 {
    let mut highest: f64 = 0.0;
    for _ in 0..seconds * 10 {
        tokio::time::advance(Duration::from_millis(100)).await;
        let rate = limiter.rate().unwrap();
        highest = highest.max(rate);
        let n = (rate / 10.0).round() as u32;
        sent.push_back(n);
        if sent.len() > 20 {
            sent.pop_front();
        }
        let used = f64::from(sent.iter().sum::<u32>()) / (2.0 * limit);
        let value = format!("{used:.2}");
        let headers: Vec<(&str, &str)> = if used >= 0.8 {
            vec![(LIMIT_PERCENTAGE, value.as_str())]
        } else {
            Vec::new()
        };
        for _ in 0..n {
            limiter.record_answer(202, &signals(&headers));
        }
    }
    highest
}

#[tokio::test(start_paused = true)]
async fn graph_s_share_of_the_limit_used_settles_the_pace_at_the_limit_after_a_bounded_overdrive() {
    let limiter = Limiter::new(100);
    // Slow start meets the header (a second or two late: Graph counts over a window), spends the burst a
    // token bucket saved meanwhile at a pace bounded above the limit, and without a 429 (a limit
    // counted over a window has no burst) settles at it.
    let mut sent = std::collections::VecDeque::new();
    paced_against(&limiter, 200.0, 5, &mut sent).await;
    let highest = paced_against(&limiter, 200.0, 25, &mut sent).await;
    let rate = limiter.rate().unwrap();
    assert!(highest <= 1.4 * 200.0, "the overdrive stays bounded: {highest}");
    assert!((0.9 * 200.0..=1.05 * 200.0).contains(&rate), "{rate}");
    // Held there: Graph's share keeps the pace at the limit without overrunning it.
    let held = paced_against(&limiter, 200.0, 20, &mut sent).await;
    let rate = limiter.rate().unwrap();
    assert!(held <= 1.05 * 200.0, "{held}");
    assert!(rate >= 0.9 * 200.0, "{rate}");
    // The header goes away (the limit rose, another app stopped sharing it): the pace climbs again.
    let climbed = paced_against(&limiter, 1000.0, 20, &mut sent).await;
    assert!(climbed > 1.1 * rate, "{climbed} after {rate}");
}

#[tokio::test(start_paused = true)]
async fn the_first_429_for_our_limit_ends_the_overdrive_just_under_the_limit() {
    let limiter = Limiter::new(100);
    paced_against(&limiter, 200.0, 5, &mut std::collections::VecDeque::new()).await;
    let over = limiter.rate().unwrap();
    assert!(over > 200.0, "spending the burst: {over}");
    // A stray 429 (Graph names its limit's) does not end it.
    for _ in 0..3 {
        limiter.record_answer(429, &signals(&[]));
    }
    assert_eq!(limiter.rate(), Some(over));
    limiter.record_answer(429, &signals(&[(INFORMATION, "ResourceUnitLimitExceeded")]));
    let settled = limiter.rate().unwrap();
    assert!(
        (0.9 * 200.0..=1.05 * 200.0).contains(&settled),
        "{settled} after {over}"
    );
    // The rest of that round's 429s are the overdrive's aftermath, not a limit below the new pace.
    for _ in 0..15 {
        limiter.record_answer(429, &signals(&[(INFORMATION, "ResourceUnitLimitExceeded")]));
    }
    assert_eq!(limiter.rate(), Some(settled));
}

#[tokio::test(start_paused = true)]
async fn a_429_for_a_loaded_service_does_not_slow_the_pace() {
    let loaded = learned().await;
    let ours = learned().await;
    tokio::time::advance(Duration::from_secs(5)).await;
    for limiter in [&loaded, &ours] {
        limiter.record_accepted(50);
    }
    let before = loaded.rate().unwrap();
    for _ in 0..30 {
        loaded.record_answer(429, &signals(&[(INFORMATION, "CPULimitExceeded")]));
        ours.record_answer(429, &signals(&[]));
    }
    assert_eq!(loaded.rate(), Some(before), "Graph was loaded: not our pace");
    assert!(
        ours.rate().unwrap() < before,
        "a 429 without information is ours: {:?}",
        ours.rate()
    );
}

#[tokio::test(start_paused = true)]
async fn once_graph_names_a_429_as_our_limit_an_unnamed_one_is_noise() {
    let limiter = learned().await;
    tokio::time::advance(Duration::from_secs(5)).await;
    limiter.record_accepted(50);
    limiter.record_answer(429, &signals(&[(INFORMATION, "ResourceUnitLimitExceeded")]));
    tokio::time::advance(Duration::from_secs(5)).await;
    limiter.record_accepted(50);
    let before = limiter.rate().unwrap();
    for _ in 0..30 {
        limiter.record_answer(429, &signals(&[]));
    }
    assert_eq!(
        limiter.rate(),
        Some(before),
        "Graph names its limit's 429s: these are not"
    );
    for _ in 0..30 {
        limiter.record_answer(429, &signals(&[(INFORMATION, "ResourceUnitLimitExceeded")]));
    }
    assert!(limiter.rate().unwrap() < before, "named ones still slow the pace");
}

#[tokio::test(start_paused = true)]
async fn a_stray_whole_batch_429_holds_back_only_its_batch() {
    use crate::graph::signals::ThrottleCause;
    let limiter = Limiter::new(4);
    let wait = Some(Duration::from_secs(5));
    for _ in 0..10 {
        assert!(!limiter.record_batch_answer(200, None, ThrottleCause::Unknown));
    }
    assert!(!limiter.record_batch_answer(429, wait, ThrottleCause::Unknown));
    assert!(!limiter.record_batch_answer(503, wait, ThrottleCause::Unknown));
    assert!(!limiter.record_batch_answer(429, wait, ThrottleCause::ServiceLoad));
    assert_eq!(limiter.gate_open_at(), None, "another invocation is not held back");
    // Graph says it is the app's limit: everyone waits.
    assert!(limiter.record_batch_answer(429, wait, ThrottleCause::OurLimit));
    assert!(limiter.gate_open_at().is_some());
}

#[tokio::test(start_paused = true)]
async fn most_batches_refused_whole_close_the_gate_without_information() {
    use crate::graph::signals::ThrottleCause;
    let limiter = Limiter::new(4);
    let wait = Some(Duration::from_secs(2));
    assert!(!limiter.record_batch_answer(200, None, ThrottleCause::Unknown));
    assert!(!limiter.record_batch_answer(429, wait, ThrottleCause::Unknown));
    assert!(!limiter.record_batch_answer(429, wait, ThrottleCause::Unknown));
    assert!(
        limiter.record_batch_answer(429, wait, ThrottleCause::Unknown),
        "3 of 4: the app's limit"
    );
    assert!(limiter.gate_open_at().is_some());
    // Long after, one more is a stray one again.
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(!limiter.record_batch_answer(429, wait, ThrottleCause::Unknown));
}

/// As [`paced_against`], for several processes sharing one limit: Graph's share counts what all of them
/// sent, and each sees it on its own answers; what a token bucket (the limit a second, as deep) cannot
/// take is answered 429 for our limit. Returns the highest sum of their paces.
async fn shared_against(
    limiters: &[&Limiter],
    limit: f64,
    seconds: u32,
    sent: &mut std::collections::VecDeque<u32>,
) -> f64 {
    let mut highest: f64 = 0.0;
    let mut tokens = limit;
    for _ in 0..seconds * 10 {
        tokio::time::advance(Duration::from_millis(100)).await;
        tokens = (tokens + limit / 10.0).min(limit);
        let paces: Vec<f64> = limiters.iter().map(|l| l.rate().unwrap()).collect();
        highest = highest.max(paces.iter().sum());
        let counts: Vec<u32> = paces.iter().map(|r| (r / 10.0).round() as u32).collect();
        sent.push_back(counts.iter().sum());
        if sent.len() > 20 {
            sent.pop_front();
        }
        let used = f64::from(sent.iter().sum::<u32>()) / (2.0 * limit);
        let value = format!("{used:.1}");
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if used >= 0.8 {
            headers.push((LIMIT_PERCENTAGE, value.as_str()));
        }
        let mut throttled = headers.clone();
        throttled.push((INFORMATION, "ResourceUnitLimitExceeded"));
        // Their requests arrive interleaved: the bucket runs dry for all of them alike.
        for round in 0..counts.iter().copied().max().unwrap_or(0) {
            for (limiter, n) in limiters.iter().zip(&counts) {
                if round >= *n {
                    continue;
                }
                if tokens >= 1.0 {
                    tokens -= 1.0;
                    limiter.record_answer(202, &signals(&headers));
                } else {
                    limiter.record_answer(429, &signals(&throttled));
                }
            }
        }
    }
    highest
}

#[tokio::test(start_paused = true)]
async fn processes_sharing_the_limit_scale_down_together_under_it() {
    // Each process alone learned the whole limit; then they share it. Each sees Graph's share of the
    // limit at about twice what it sent, and Graph's 429s confirm it: together they are back under the
    // limit within four seconds and stay there.
    let (a, b) = (Limiter::new(100), Limiter::new(100));
    for limiter in [&a, &b] {
        paced_against(limiter, 200.0, 30, &mut std::collections::VecDeque::new()).await;
        assert!(limiter.rate().unwrap() > 0.9 * 200.0, "{:?}", limiter.rate());
    }
    let mut sent = std::collections::VecDeque::new();
    shared_against(&[&a, &b], 200.0, 4, &mut sent).await;
    let held = shared_against(&[&a, &b], 200.0, 20, &mut sent).await;
    let total = a.rate().unwrap() + b.rate().unwrap();
    assert!(held <= 1.05 * 200.0, "together over the limit: {held}");
    assert!(total >= 0.85 * 200.0, "together far under the limit: {total}");
}

#[tokio::test(start_paused = true)]
async fn many_processes_sharing_a_small_limit_each_go_below_the_floor_graph_s_share_allows() {
    // Twenty processes on a limit of 100/s: a fair share is 5/s, half the lowest pace the pacing sets
    // on its own reading. Graph's share of the limit tells each how far over they are together.
    let limiters: Vec<Limiter> = (0..20).map(|_| Limiter::new(100)).collect();
    let all: Vec<&Limiter> = limiters.iter().collect();
    let mut sent = std::collections::VecDeque::new();
    shared_against(&all, 100.0, 30, &mut sent).await;
    let held = shared_against(&all, 100.0, 20, &mut sent).await;
    let total: f64 = limiters.iter().map(|l| l.rate().unwrap()).sum();
    eprintln!("highest total pace over the last 20 s: {held:.1}; at the end {total:.1}");
    assert!(held <= 1.3 * 100.0, "together far over the limit: {held}");
    assert!(total >= 0.5 * 100.0, "together far under the limit: {total}");
}

#[tokio::test(start_paused = true)]
async fn the_last_process_sharing_the_limit_finds_it_again_when_the_others_stop() {
    let (a, b, c, d) = (
        Limiter::new(100),
        Limiter::new(100),
        Limiter::new(100),
        Limiter::new(100),
    );
    let mut sent = std::collections::VecDeque::new();
    shared_against(&[&a, &b, &c, &d], 200.0, 30, &mut sent).await;
    let share = a.rate().unwrap();
    assert!(share < 0.4 * 200.0, "a quarter of the limit, or so: {share}");
    // The others are done: Graph stops reporting a share, and the last process climbs to the limit
    // within seconds instead of probing its way up from a quarter of it.
    let mut alone = std::collections::VecDeque::new();
    let highest = paced_against(&a, 200.0, 5, &mut alone).await;
    assert!(highest >= 0.9 * 200.0, "{highest} after {share}");
}

/// Answers at the limiter's pace for `seconds`, in steps of 100 ms, each with Graph's share `share(step)`;
/// with `named_429s`, one answer a second is a 429 for our limit (too few to trim the pace, but a sign
/// that the share over the limit is real).
async fn answered_with_share(limiter: &Limiter, seconds: u32, share: impl Fn(u32) -> &'static str, named_429s: bool) {
    for step in 0..seconds * 10 {
        tokio::time::advance(Duration::from_millis(100)).await;
        let headers = [(LIMIT_PERCENTAGE, share(step))];
        for _ in 0..(limiter.rate().unwrap() / 10.0).round() as u32 {
            limiter.record_answer(202, &signals(&headers));
        }
        if named_429s && step % 10 == 0 {
            limiter.record_answer(429, &signals(&[headers[0], (INFORMATION, "ResourceUnitLimitExceeded")]));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_share_rounded_over_the_limit_now_and_then_does_not_cut_the_pace() {
    // Batches put one more or one less in Graph's window: a steady pace at the limit reads "1.0",
    // now and then "1.1", and meets a 429 now and then. That is no sign of others sharing the limit.
    let limiter = Limiter::new(100);
    paced_against(&limiter, 200.0, 30, &mut std::collections::VecDeque::new()).await;
    let before = limiter.rate().unwrap();
    answered_with_share(&limiter, 10, |step| if step % 4 == 0 { "1.1" } else { "1.0" }, true).await;
    let after = limiter.rate().unwrap();
    assert!(after >= 0.95 * before, "{after} after {before}");
}

#[tokio::test(start_paused = true)]
async fn a_share_over_the_limit_without_429s_does_not_collapse_the_pace() {
    // Graph's share over a window longer than ours still shows a pace we left: with no 429 for our limit
    // to confirm it, it must not scale the pace down again and again.
    let limiter = Limiter::new(100);
    paced_against(&limiter, 200.0, 30, &mut std::collections::VecDeque::new()).await;
    let before = limiter.rate().unwrap();
    answered_with_share(&limiter, 10, |_| "1.2", false).await;
    let after = limiter.rate().unwrap();
    assert!(after >= 0.8 * before, "{after} after {before}");
    // Confirmed by Graph's 429s, the same share does scale it down.
    answered_with_share(&limiter, 3, |_| "1.2", true).await;
    let confirmed = limiter.rate().unwrap();
    assert!(confirmed <= 0.9 * after, "{confirmed} after {after}");
}
