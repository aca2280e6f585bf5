//! A simulation of the limiter and the `$batch` runner against Graph's throttle, in tokio's paused
//! time: invocations send messages of 20 IDs through the real runner ([`batch::run`]) and limiter to
//! a simulated Graph: a token bucket (refill `rate`/s, `burst` deep) with stray 429s and 5xx per
//! sub-request, whole-request faults, hung and reset requests at random. IDs handed back transient are
//! queued again, as the queue redelivers them. It runs minutes of simulated time in milliseconds and
//! deterministically, so the pacing's and the retries' behaviour (how many 429s they provoke, how much
//! of the budget they leave unused, how many attempts an ID costs) is tested here; the benchmark
//! measures the real process against the emulated Graph.

use super::Limiter;
use crate::domain::{Guid, Outcome};
use crate::graph::batch::{self, BatchSender, Envelope, Method, SubRequest, SubResponse};
use crate::graph::health::Health;
use crate::graph::signals::Signals;
use crate::graph::transport::SendError;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The `Retry-After` Graph names on a 429 (and on a whole request's 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// Always this many seconds.
    Fixed(u64),
    /// Whole seconds drawn evenly from this range.
    Between(u64, u64),
}

#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    pub rate: f64,
    pub burst: f64,
    /// Share of sub-requests answered 429 at random (after taking a token, as Graph's stray ones).
    pub stray_429: f64,
    /// Share answered 503/504 at random (after taking a token).
    pub stray_5xx: f64,
    /// Share of `$batch` requests answered 429 (with `Retry-After`, no other header) as a whole, and
    /// 503 with `Retry-After`, without taking tokens.
    pub whole_429: f64,
    pub whole_503: f64,
    /// Share of `$batch` requests that hang until the client gives up (3 s), or are reset at once.
    pub hung_batches: f64,
    pub reset_batches: f64,
    pub retry_after: RetryAfter,
    /// From this second on, Graph's limit is this rate: a real limit below the pace learned so far
    /// (another app started sharing the tenant's budget, say).
    pub limit_drop: Option<(u64, f64)>,
    /// Graph sends `x-ms-throttle-limit-percentage` (the share of the limit used over [`USAGE_WINDOW`])
    /// from 0.8 on, and names the cause of its 429s in `x-ms-throttle-information`
    /// (`ResourceUnitLimitExceeded` for the bucket's; `CPULimitExceeded` for half the stray ones, the
    /// others unnamed), with one decimal as the emulator.
    pub headers: bool,
    /// Which draw of random faults (`SIM_SEED=n` adds n, to look at other draws by hand).
    pub seed: u64,
}

impl Throttle {
    /// The shortest time Graph's limit allows for `ids` requests: the burst at once, then the refill
    /// rate (the lower one after a [`Throttle::limit_drop`]).
    pub fn bound(&self, ids: usize) -> f64 {
        let after_burst = ids as f64 - self.burst;
        match self.limit_drop {
            Some((at, lower)) if after_burst > self.rate * at as f64 => {
                at as f64 + (after_burst - self.rate * at as f64) / lower
            }
            _ => after_burst / self.rate,
        }
    }
}

struct Bucket {
    throttle: Throttle,
    start: Instant,
    tokens: f64,
    at: Instant,
    /// Requests that reached Graph in the last [`USAGE_WINDOW`], for `x-ms-throttle-limit-percentage`.
    recent: VecDeque<Instant>,
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

    /// Graph's share of the limit used: the requests of its window over what the limit allows in it.
    fn used(&self) -> f64 {
        self.recent.len() as f64 / (self.rate(Instant::now()) * usage_window().as_secs_f64())
    }

    fn rate(&self, now: Instant) -> f64 {
        match self.throttle.limit_drop {
            Some((at, lower)) if now.duration_since(self.start) >= Duration::from_secs(at) => lower,
            _ => self.throttle.rate,
        }
    }

    fn retry_after(&mut self) -> u64 {
        match self.throttle.retry_after {
            RetryAfter::Fixed(s) => s,
            RetryAfter::Between(low, high) => low + ((self.random() * (high - low + 1) as f64) as u64).min(high - low),
        }
    }

    fn answer(&mut self) -> Answer {
        let now = Instant::now();
        let t = self.throttle;
        let rate = self.rate(now);
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * rate).min(t.burst);
        self.at = now;
        self.recent.push_back(now);
        while self
            .recent
            .front()
            .is_some_and(|at| now.duration_since(*at) > usage_window())
        {
            self.recent.pop_front();
        }
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

    /// The headers of a sub-response: `Retry-After` on a 429, and Graph's throttle headers if sent.
    fn headers(&mut self, answer: &Answer) -> Map<String, Value> {
        let mut headers = Map::new();
        if matches!(answer, Answer::Throttled | Answer::Stray429) {
            headers.insert("Retry-After".into(), json!(self.retry_after().to_string()));
        }
        if !self.throttle.headers {
            return headers;
        }
        let used = self.used();
        if used >= 0.8 {
            headers.insert(
                "x-ms-throttle-limit-percentage".into(),
                json!(format!("{:.1}", used.min(1.8))),
            );
        }
        match answer {
            Answer::Throttled => {
                headers.insert("x-ms-throttle-information".into(), json!("ResourceUnitLimitExceeded"));
            }
            // Half of Graph's stray 429s say the service is loaded, half say nothing.
            Answer::Stray429 if self.random() < 0.5 => {
                headers.insert("x-ms-throttle-information".into(), json!("CPULimitExceeded"));
            }
            _ => {}
        }
        headers
    }
}

#[derive(Debug, Default, Clone)]
pub struct Report {
    pub seconds: f64,
    /// Sub-requests sent (answered or not).
    pub attempts: u64,
    /// 429s (the bucket's and stray ones) per simulated second.
    pub throttled: Vec<u32>,
    /// Answers that took a token, per simulated second.
    pub tokens: Vec<u32>,
    /// IDs handed back transient (and queued again).
    pub handed_back: u64,
    /// IDs that ended neither accepted nor handed back.
    pub lost: u64,
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

/// Graph's share of the limit used is counted over this window (`SIM_USAGE_WINDOW=n` seconds, by hand:
/// Graph's real window is not documented).
const USAGE_WINDOW: Duration = Duration::from_secs(2);

fn usage_window() -> Duration {
    static WINDOW: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *WINDOW.get_or_init(|| {
        std::env::var("SIM_USAGE_WINDOW")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(USAGE_WINDOW, Duration::from_secs)
    })
}
const LATENCY: Duration = Duration::from_millis(50);
/// The learned attempt timeout's floor: a hung batch is given up after this long.
const HUNG: Duration = crate::graph::latency::FLOOR;
const BATCH: usize = 20;
/// An invocation's time budget (the queue's).
const BUDGET: Duration = Duration::from_secs(230);
const MAX_ATTEMPTS: u32 = 5;

/// One instance's view of the simulated Graph: its own limiter and health, the shared bucket.
struct SimGraph {
    limiter: Arc<Limiter>,
    health: Arc<Health>,
    bucket: Arc<Mutex<Bucket>>,
    report: Arc<Mutex<Report>>,
    start: Instant,
    refund: bool,
}

impl BatchSender for SimGraph {
    async fn send(&self, requests: &[SubRequest], _: &Guid, deadline: Instant) -> Result<Envelope, SendError> {
        let n = requests.len();
        let Some(permit) = self.limiter.acquire(deadline, n as u32).await else {
            return Err(SendError::OutOfTime { gate_wait: None });
        };
        self.report.lock().unwrap().attempts += n as u64;
        let (roll, jitter) = {
            let mut bucket = self.bucket.lock().unwrap();
            (bucket.random(), bucket.random())
        };
        let t = self.bucket.lock().unwrap().throttle;
        if roll < t.hung_batches + t.reset_batches {
            if roll < t.hung_batches {
                tokio::time::sleep(HUNG).await;
            }
            self.health.record(true);
            if self.refund {
                self.limiter.refund(n as u32);
            }
            return Err(SendError::Transient("no answer".into()));
        }
        // Graph's answer times vary a little (0–20 ms over the base latency), so runs with another seed
        // differ even without faults.
        tokio::time::sleep(LATENCY + Duration::from_secs_f64(jitter * 0.02)).await;
        drop(permit);
        let whole = roll - t.hung_batches - t.reset_batches;
        if whole < t.whole_429 + t.whole_503 {
            let status = if whole < t.whole_429 { 429 } else { 503 };
            let retry_after = self.bucket.lock().unwrap().retry_after();
            self.health.record(status >= 500);
            // A whole-request fault carries no throttling information, with or without `headers`.
            self.limiter.record_answer(status, &Signals::default());
            return Ok(Envelope::Whole {
                status,
                retry_after: Some(Duration::from_secs(retry_after)),
                signals: Signals::default(),
                body: Bytes::new(),
            });
        }
        self.health.record(false);
        let mut responses = Vec::with_capacity(n);
        for position in 1..=n {
            let mut bucket = self.bucket.lock().unwrap();
            let answer = bucket.answer();
            let headers = bucket.headers(&answer);
            drop(bucket);
            let mut report = self.report.lock().unwrap();
            let second = self.start.elapsed().as_secs() as usize;
            if !matches!(answer, Answer::Throttled) {
                Report::count(&mut report.tokens, second);
            }
            let status = match answer {
                Answer::Done => 202,
                Answer::Failed => [503, 504][position % 2],
                Answer::Throttled | Answer::Stray429 => {
                    Report::count(&mut report.throttled, second);
                    429
                }
            };
            responses.push(SubResponse {
                id: position.to_string(),
                status,
                headers,
                body: Value::Null,
            });
        }
        Ok(Envelope::Parts {
            request_id: None,
            responses,
        })
    }

    fn record(&self, sub: &SubResponse) {
        self.limiter.record_answer(sub.status, &sub.signals());
    }

    fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    fn graph_in_trouble(&self) -> bool {
        self.health.in_trouble()
    }

    fn max_attempts(&self) -> u32 {
        MAX_ATTEMPTS
    }
}

/// `ids` IDs in messages of 20, `invocations` at once per instance, `instances` limiters sharing one
/// bucket. Must run on a paused-time runtime.
pub async fn run(throttle: Throttle, ids: usize, instances: usize, invocations: usize) -> Report {
    let start = Instant::now();
    // `SIM_NO_REFUND=1`: hung and reset batches keep their pacing slot, to compare.
    let refund = std::env::var_os("SIM_NO_REFUND").is_none();
    let seed = (throttle.seed + std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0))
        .wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        | 1;
    // The retry waits' jitter too: paused-time tests run every task on this thread.
    fastrand::seed(seed);
    let bucket = Arc::new(Mutex::new(Bucket {
        throttle,
        start,
        tokens: throttle.burst,
        at: start,
        recent: VecDeque::new(),
        rng: seed,
    }));
    let messages: Arc<Mutex<VecDeque<Vec<usize>>>> = Arc::new(Mutex::new(
        (0..ids)
            .collect::<Vec<_>>()
            .chunks(BATCH)
            .map(<[usize]>::to_vec)
            .collect(),
    ));
    // IDs not yet accepted: an invocation ends once none are left (redelivered ones included).
    let open = Arc::new(Mutex::new(ids));
    let report = Arc::new(Mutex::new(Report::default()));
    let mut tasks = Vec::new();
    let mut limiters = Vec::new();
    for _ in 0..instances {
        let graph = Arc::new(SimGraph {
            limiter: Arc::new(Limiter::new(16)),
            health: Arc::new(Health::default()),
            bucket: bucket.clone(),
            report: report.clone(),
            start,
            refund,
        });
        limiters.push(graph.limiter.clone());
        for _ in 0..invocations {
            let (graph, messages, open, report) = (graph.clone(), messages.clone(), open.clone(), report.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let next = messages.lock().unwrap().pop_front();
                    let Some(message) = next else {
                        if *open.lock().unwrap() == 0 {
                            return;
                        }
                        // Others still hold IDs that may come back: look again shortly.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    let requests: Vec<SubRequest> = message
                        .iter()
                        .map(|id| SubRequest {
                            method: Method::Post,
                            url: format!("/r/{id}"),
                        })
                        .collect();
                    let deadline = Instant::now() + BUDGET;
                    let finished = batch::run(
                        graph.as_ref(),
                        &requests,
                        |_, sub| sub.classify(),
                        &Guid::new_random(),
                        deadline,
                        "sim",
                    )
                    .await;
                    let mut again = Vec::new();
                    for (id, f) in message.into_iter().zip(finished) {
                        match f.result {
                            Ok(Outcome::Accepted) => done(&open, &report, start),
                            Err(Outcome::Transient { .. }) => again.push(id),
                            _ => {
                                report.lock().unwrap().lost += 1;
                                done(&open, &report, start);
                            }
                        }
                    }
                    if !again.is_empty() {
                        report.lock().unwrap().handed_back += again.len() as u64;
                        messages.lock().unwrap().push_back(again);
                    }
                }
            }));
        }
    }
    if std::env::var_os("SIM_TRACE").is_some() {
        trace(limiters, open.clone(), bucket.clone(), report.clone(), start);
    }
    for task in tasks {
        task.await.expect("simulated invocation");
    }
    report.lock().unwrap().clone()
}

/// `SIM_TRACE=1`: every instance's pace and ceiling, Graph's share of the limit used and the 429s, each
/// simulated second.
fn trace(
    limiters: Vec<Arc<Limiter>>,
    open: Arc<Mutex<usize>>,
    bucket: Arc<Mutex<Bucket>>,
    report: Arc<Mutex<Report>>,
    start: Instant,
) {
    tokio::spawn(async move {
        while *open.lock().unwrap() > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let second = start.elapsed().as_secs() as usize;
            let used = bucket.lock().unwrap().used();
            let (throttled, tokens) = {
                let r = report.lock().unwrap();
                let at = second.wrapping_sub(1);
                (r.throttled.get(at).copied(), r.tokens.get(at).copied())
            };
            let paces: Vec<String> = limiters
                .iter()
                .map(|l| {
                    format!(
                        "{:>3}/{:<3}",
                        l.rate().unwrap_or(0.0) as u32,
                        l.ceiling().unwrap_or(0.0) as u32
                    )
                })
                .collect();
            eprintln!(
                "t={second:>3} used={used:.3} tokens={:>3} 429s={:>3} pace/ceiling {}",
                tokens.unwrap_or(0),
                throttled.unwrap_or(0),
                paces.join(" ")
            );
        }
    });
}

/// One ID is done; the run's time is when the last one was.
fn done(open: &Mutex<usize>, report: &Mutex<Report>, start: Instant) {
    let mut open = open.lock().unwrap();
    *open -= 1;
    if *open == 0 {
        report.lock().unwrap().seconds = start.elapsed().as_secs_f64();
    }
}

#[cfg(test)]
#[path = "sim_tests.rs"]
mod tests;
