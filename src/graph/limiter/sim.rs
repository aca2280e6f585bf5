//! A simulation of the limiter against Graph's throttle, in tokio's paused time: invocations send
//! `$batch`es of 20 through the limiter to a token bucket (refill `rate`/s, `burst` deep), with stray
//! 429s and 5xx at random. It runs 100 simulated seconds in milliseconds and deterministically, so the
//! pacing's behaviour (how many 429s it provokes, how much of the budget it leaves unused) is tested
//! here; the benchmark measures the real process against the emulated Graph.

use super::Limiter;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    pub rate: f64,
    pub burst: f64,
    /// Share of sub-requests answered 429 at random (after taking a token, as Graph's stray ones).
    pub stray_429: f64,
    /// Share answered 503/504 at random (after taking a token).
    pub stray_5xx: f64,
    /// Share of `$batch` requests that hang until the client gives up (3 s), or are reset at once.
    pub hung_batches: f64,
    pub reset_batches: f64,
    /// Which draw of random faults (`SIM_SEED=n` adds n, to look at other draws by hand).
    pub seed: u64,
}

struct Bucket {
    throttle: Throttle,
    tokens: f64,
    at: Instant,
    /// xorshift state: the same run every time.
    rng: u64,
}

enum Answer {
    Done,
    /// The bucket was empty: no token taken.
    Throttled,
    /// A stray 429, after taking a token.
    Stray429,
    Failed,
}

impl Bucket {
    fn random(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    fn answer(&mut self) -> Answer {
        let now = Instant::now();
        let t = self.throttle;
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * t.rate).min(t.burst);
        self.at = now;
        if self.tokens < 1.0 {
            return Answer::Throttled;
        }
        self.tokens -= 1.0;
        let roll = self.random();
        if roll < t.stray_429 {
            Answer::Stray429
        } else if roll < t.stray_429 + t.stray_5xx {
            Answer::Failed
        } else {
            Answer::Done
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Report {
    pub seconds: f64,
    pub attempts: u64,
    /// 429s (the bucket's and stray ones) per simulated second.
    pub throttled: Vec<u32>,
    /// Answers that took a token, per simulated second.
    pub tokens: Vec<u32>,
}

impl Report {
    fn count(series: &mut Vec<u32>, second: usize) {
        if series.len() <= second {
            series.resize(second + 1, 0);
        }
        series[second] += 1;
    }

    /// 429s from second `from` on.
    pub fn throttled_from(&self, from: usize) -> u32 {
        self.throttled.iter().skip(from).sum()
    }

    /// Share of the bucket's refill that was used from second `from` to the last full second.
    pub fn budget_used_from(&self, from: usize, rate: f64) -> f64 {
        let full = &self.tokens[from..self.tokens.len() - 1];
        f64::from(full.iter().sum::<u32>()) / (full.len() as f64 * rate)
    }
}

const LATENCY: Duration = Duration::from_millis(50);
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The learned attempt timeout's floor: a hung batch is given up after this long.
const HUNG: Duration = Duration::from_secs(3);
const BATCH: usize = 20;

/// `ids` IDs in messages of 20, `invocations` at once per instance, `instances` limiters sharing one
/// bucket. Must run on a paused-time runtime.
pub async fn run(throttle: Throttle, ids: usize, instances: usize, invocations: usize) -> Report {
    let start = Instant::now();
    // `SIM_NO_REFUND=1`: hung and reset batches keep their pacing slot, to compare.
    let refund = std::env::var_os("SIM_NO_REFUND").is_none();
    let bucket = Arc::new(Mutex::new(Bucket {
        throttle,
        tokens: throttle.burst,
        at: start,
        rng: (throttle.seed + std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0))
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            | 1,
    }));
    let messages = Arc::new(Mutex::new(ids.div_ceil(BATCH)));
    let report = Arc::new(Mutex::new(Report::default()));
    let mut tasks = Vec::new();
    for _ in 0..instances {
        let limiter = Arc::new(Limiter::new(16));
        if std::env::var_os("SIM_TRACE").is_some() && tasks.is_empty() {
            let (limiter, messages) = (limiter.clone(), messages.clone());
            tokio::spawn(async move {
                while *messages.lock().unwrap() > 0 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    eprintln!(
                        "t={:>3} rate={:?} ceiling={:?}",
                        start.elapsed().as_secs(),
                        limiter.rate().map(|r| r as u32),
                        limiter.ceiling().map(|r| r as u32)
                    );
                }
            });
        }
        for _ in 0..invocations {
            let (limiter, bucket, messages, report) =
                (limiter.clone(), bucket.clone(), messages.clone(), report.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    {
                        let mut left = messages.lock().unwrap();
                        if *left == 0 {
                            return;
                        }
                        *left -= 1;
                    }
                    let mut pending = BATCH;
                    while pending > 0 {
                        let now = limiter.max_burst().unwrap_or(usize::MAX).min(pending);
                        let deadline = Instant::now() + Duration::from_secs(600);
                        let permit = limiter.acquire(deadline, now as u32).await.expect("slot");
                        let roll = bucket.lock().unwrap().random();
                        if roll < throttle.hung_batches + throttle.reset_batches {
                            report.lock().unwrap().attempts += now as u64;
                            if roll < throttle.hung_batches {
                                tokio::time::sleep(HUNG).await;
                            }
                            if refund {
                                limiter.refund(now as u32);
                            }
                            drop(permit);
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            continue;
                        }
                        // Graph's answer times vary a little (0–20 ms over the base latency), so runs with
                        // another seed differ even without faults.
                        let jitter = bucket.lock().unwrap().random() * 0.02;
                        tokio::time::sleep(LATENCY + Duration::from_secs_f64(jitter)).await;
                        drop(permit);
                        let mut retry = 0;
                        let mut throttled = false;
                        for _ in 0..now {
                            let answer = bucket.lock().unwrap().answer();
                            let mut r = report.lock().unwrap();
                            r.attempts += 1;
                            let second = start.elapsed().as_secs() as usize;
                            if !matches!(answer, Answer::Throttled) {
                                Report::count(&mut r.tokens, second);
                            }
                            match answer {
                                Answer::Done => limiter.record_accepted(1),
                                Answer::Failed => {
                                    limiter.record_accepted(1);
                                    retry += 1;
                                }
                                Answer::Throttled | Answer::Stray429 => {
                                    Report::count(&mut r.throttled, second);
                                    drop(r);
                                    limiter.record_throttled();
                                    retry += 1;
                                    throttled = true;
                                }
                            }
                        }
                        pending -= now - retry;
                        if retry > 0 {
                            let wait = if throttled {
                                RETRY_AFTER
                            } else {
                                Duration::from_millis(500)
                            };
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("simulated invocation");
    }
    let mut report = report.lock().unwrap().clone();
    report.seconds = start.elapsed().as_secs_f64();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: usize = 10_000;
    const CLEAN: Throttle = Throttle {
        rate: 100.0,
        burst: 100.0,
        stray_429: 0.0,
        stray_5xx: 0.0,
        hung_batches: 0.0,
        reset_batches: 0.0,
        seed: 0,
    };
    /// The benchmark's fault mix: 3 % stray 429s, 9 % 503/504, 4 % of batches hung, 4 % reset.
    const NOISY: Throttle = Throttle {
        stray_429: 0.03,
        stray_5xx: 0.09,
        hung_batches: 0.04,
        reset_batches: 0.04,
        ..CLEAN
    };

    fn describe(label: &str, r: &Report) -> String {
        let bound = (IDS as f64 - CLEAN.burst) / CLEAN.rate;
        format!(
            "{label}: {:.3} × the bound, {:.3} attempts per ID, 429s per second {:?}",
            r.seconds / bound,
            r.attempts as f64 / IDS as f64,
            r.throttled
        )
    }

    #[tokio::test(start_paused = true)]
    async fn one_instance_uses_the_budget_with_few_429s() {
        let r = run(CLEAN, IDS, 1, 24).await;
        let report = describe("clean", &r);
        eprintln!("{report}, budget used {:.3}", r.budget_used_from(10, CLEAN.rate));
        assert!(r.attempts as f64 <= 1.03 * IDS as f64, "{report}");
        assert!(
            r.throttled_from(10) as f64 <= 0.01 * IDS as f64,
            "past slow start: {report}"
        );
        assert!(r.budget_used_from(10, CLEAN.rate) >= 0.97, "{report}");
    }

    /// Over several draws of the faults: one lucky draw must not carry the test.
    #[tokio::test(start_paused = true)]
    async fn stray_429s_and_5xx_do_not_hold_the_pace_under_the_limit() {
        let mut used = Vec::new();
        for seed in 0..6 {
            let r = run(Throttle { seed, ..NOISY }, IDS, 1, 24).await;
            let budget = r.budget_used_from(10, NOISY.rate);
            eprintln!("{}, budget used {budget:.3}", describe("noisy", &r));
            used.push(budget);
        }
        let mean = used.iter().sum::<f64>() / used.len() as f64;
        assert!(mean >= 0.93, "mean budget used {mean:.3} over draws {used:?}");
        assert!(used.iter().all(|&u| u >= 0.86), "budget used per draw {used:?}");
    }

    /// Over several draws of answer times (the instances' shares depend on who was throttled first).
    #[tokio::test(start_paused = true)]
    async fn four_instances_share_one_budget() {
        let mut used = Vec::new();
        for seed in 0..6 {
            let r = run(Throttle { seed, ..CLEAN }, IDS, 4, 24).await;
            let report = describe("four instances", &r);
            let budget = r.budget_used_from(10, CLEAN.rate);
            eprintln!("{report}, budget used {budget:.3}");
            assert!(r.attempts as f64 <= 1.05 * IDS as f64, "{report}");
            used.push(budget);
        }
        let mean = used.iter().sum::<f64>() / used.len() as f64;
        assert!(mean >= 0.90, "mean budget used {mean:.3} over draws {used:?}");
    }
}
