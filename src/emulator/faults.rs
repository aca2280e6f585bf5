//! Faults the emulated Graph can be told to produce: per-ID scripts (e.g. 429 then 503 then success)
//! and a process-wide throttle that answers 429 with `Retry-After` once a token bucket is empty.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and Graph's error body; `retry_after` adds the header.
    Status { status: u16, retry_after: Option<u64> },
    /// Hold the request this long, then answer 504 (a client with a shorter timeout sees a hang).
    Hang(Duration),
}

#[derive(Debug, Default)]
pub struct FaultPlan {
    scripted: Mutex<HashMap<String, VecDeque<Fault>>>,
    /// When set, every request gets this fault (an outage), before any script.
    always: Mutex<Option<Fault>>,
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

    pub(super) fn next_for(&self, id: &str) -> Option<Fault> {
        if let Some(f) = *self.always.lock().expect("fault lock") {
            return Some(f);
        }
        self.scripted
            .lock()
            .expect("fault lock")
            .get_mut(&id.to_ascii_lowercase())
            .and_then(VecDeque::pop_front)
    }
}
