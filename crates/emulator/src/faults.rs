//! Faults the emulated Graph can be told to produce: per-ID scripts (e.g. 429 then 503 then success),
//! random faults drawn from a mix (e.g. [`transient_mix`]) and a process-wide throttle that answers 429
//! with `Retry-After` once a token bucket is empty.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Graph's identity-service throttling is a token bucket (`concepts/throttling-limits.md`).
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    /// Requests in the last second (taken or refused), for the share of the limit in use.
    arrivals: VecDeque<Instant>,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            last: Instant::now(),
            arrivals: VecDeque::new(),
        }
    }

    /// The share of the limit the caller uses: requests asked for in the last second over the rate.
    /// Graph reports it as `x-ms-throttle-limit-percentage` once it reaches 0.8 (1.0: at the limit;
    /// 1.2: a fifth of the requests throttled; at most 1.8).
    pub fn usage(&mut self) -> f64 {
        let now = Instant::now();
        while self
            .arrivals
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1))
        {
            self.arrivals.pop_front();
        }
        self.arrivals.len() as f64 / self.rate
    }

    /// Takes a token, or answers the whole seconds until one is available (at least 1, as Graph sends).
    pub fn take(&mut self) -> Result<(), u64> {
        let now = Instant::now();
        self.arrivals.push_back(now);
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - self.tokens) / self.rate).ceil() as u64).max(1))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and Graph's error body; `retry_after` adds the header.
    Status { status: u16, retry_after: Option<u64> },
    /// 429 for a loaded service, not for the caller's own limit: `x-ms-throttle-information:
    /// CPULimitExceeded` and `Retry-After`, as Graph's identity services send.
    Busy { retry_after: u64 },
    /// Hold the request this long, then answer 504 (a client with a shorter timeout sees a hang).
    Hang(Duration),
    /// Do the work, then answer this status anyway (a gateway timing out after the backend acted):
    /// the client cannot tell, retries, and the work happens twice.
    ExecutedThen(u16),
}

impl Fault {
    /// 429 with `Retry-After: seconds`, as Graph throttles.
    pub const fn throttled(retry_after: u64) -> Self {
        Self::Status {
            status: 429,
            retry_after: Some(retry_after),
        }
    }

    /// This status with Graph's error body and no `Retry-After`.
    pub const fn status(status: u16) -> Self {
        Self::Status {
            status,
            retry_after: None,
        }
    }
}

/// The transient answers Graph gives under load, each retryable: 429 with `Retry-After: 1`, 503, 504.
/// The benchmark's and the tests' random faults are drawn from it.
pub fn transient_mix() -> Vec<Fault> {
    vec![Fault::throttled(1), Fault::status(503), Fault::status(504)]
}

#[derive(Debug, Default)]
pub struct FaultPlan {
    scripted: Mutex<HashMap<String, VecDeque<Fault>>>,
    /// When set, every request gets this fault (an outage), before any script.
    always: Mutex<Option<Fault>>,
    /// A share of requests that get one of these faults at random.
    random: Mutex<Option<(f64, Vec<Fault>)>>,
    /// Faults for whole `$batch` requests, in order.
    batches: Mutex<VecDeque<Fault>>,
    /// A share of whole `$batch` requests that get one of these faults at random.
    random_batches: Mutex<Option<(f64, Vec<Fault>)>>,
    /// How many `ExecutedThen` and `Hang` faults were injected: the only ways work can happen twice.
    executed_then: std::sync::atomic::AtomicUsize,
    hangs: std::sync::atomic::AtomicUsize,
}

impl FaultPlan {
    /// The next requests for `id` get these faults, in order; later requests succeed normally.
    pub fn script(&self, id: &str, faults: impl IntoIterator<Item = Fault>) {
        self.scripted
            .lock()
            .expect("fault lock")
            .entry(id.to_ascii_lowercase())
            .or_default()
            .extend(faults);
    }

    /// Every request gets this fault until cleared (e.g. a Graph outage).
    pub fn set_always(&self, fault: Option<Fault>) {
        *self.always.lock().expect("fault lock") = fault;
    }

    /// The next `$batch` requests get these faults as a whole, in order.
    pub fn script_batches(&self, faults: impl IntoIterator<Item = Fault>) {
        self.batches.lock().expect("fault lock").extend(faults);
    }

    /// `share` (0..1) of whole `$batch` requests get a fault drawn from `mix`.
    pub fn set_random_batches(&self, share: f64, mix: Vec<Fault>) {
        *self.random_batches.lock().expect("fault lock") = (share > 0.0 && !mix.is_empty()).then_some((share, mix));
    }

    pub(super) fn next_for_batch(&self) -> Option<Fault> {
        if let Some(fault) = self.batches.lock().expect("fault lock").pop_front() {
            return Some(fault);
        }
        let random = self.random_batches.lock().expect("fault lock");
        let (share, mix) = random.as_ref()?;
        let fault = (fastrand::f64() < *share).then(|| mix[fastrand::usize(..mix.len())])?;
        if let Fault::Hang(_) = fault {
            self.hangs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Some(fault)
    }

    /// `share` (0..1) of requests get a fault drawn from `mix`.
    pub fn set_random(&self, share: f64, mix: Vec<Fault>) {
        *self.random.lock().expect("fault lock") = (share > 0.0 && !mix.is_empty()).then_some((share, mix));
    }

    /// `(ExecutedThen faults, Hang faults)` injected so far.
    pub fn injected_duplicate_risks(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::SeqCst;
        (self.executed_then.load(SeqCst), self.hangs.load(SeqCst))
    }

    pub(super) fn next_for(&self, id: &str) -> Option<Fault> {
        let fault = self.pick_for(id);
        match fault {
            Some(Fault::ExecutedThen(_)) => self.executed_then.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
            Some(Fault::Hang(_)) => self.hangs.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
            _ => 0,
        };
        fault
    }

    fn pick_for(&self, id: &str) -> Option<Fault> {
        if let Some(f) = *self.always.lock().expect("fault lock") {
            return Some(f);
        }
        if let Some((share, mix)) = self.random.lock().expect("fault lock").as_ref() {
            if fastrand::f64() < *share {
                return Some(mix[fastrand::usize(..mix.len())]);
            }
        }
        self.scripted
            .lock()
            .expect("fault lock")
            .get_mut(&id.to_ascii_lowercase())
            .and_then(VecDeque::pop_front)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_the_last_seconds_requests_over_the_rate() {
        let mut bucket = TokenBucket::new(10.0, 10.0);
        assert_eq!(bucket.usage(), 0.0);
        for _ in 0..8 {
            assert!(bucket.take().is_ok());
        }
        assert!((bucket.usage() - 0.8).abs() < 1e-9);
        // Past the burst: refused, and still counted, as Graph counts what the caller asked for.
        for _ in 0..4 {
            let _ = bucket.take();
        }
        assert!((bucket.usage() - 1.2).abs() < 1e-9);
    }
}
