//! One limiter per process, shared by every concurrent invocation: a cap on in-flight Graph requests,
//! and a back-off gate so that once Graph answers 429, every caller waits instead of piling on.

use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

#[derive(Debug)]
pub struct Limiter {
    in_flight: Semaphore,
    gate: Mutex<Option<Instant>>,
}

impl Limiter {
    pub fn new(max_in_flight: usize) -> Self {
        Self {
            in_flight: Semaphore::new(max_in_flight),
            gate: Mutex::new(None),
        }
    }

    /// Waits for the back-off gate and a free slot. Returns `None` if that cannot happen before `deadline`.
    pub async fn acquire(&self, deadline: Instant) -> Option<SemaphorePermit<'_>> {
        loop {
            let open_at = *self.gate.lock().expect("gate lock");
            match open_at {
                Some(at) if at > Instant::now() => {
                    if at >= deadline {
                        return None;
                    }
                    tokio::time::sleep_until(at).await;
                }
                _ => break,
            }
        }
        let permit = tokio::time::timeout_at(deadline, self.in_flight.acquire())
            .await
            .ok()?
            .ok()?;
        // The gate may have closed while we queued for a slot; honour it before sending.
        let open_at = *self.gate.lock().expect("gate lock");
        if let Some(at) = open_at.filter(|at| *at > Instant::now()) {
            if at >= deadline {
                return None;
            }
            tokio::time::sleep_until(at).await;
        }
        Some(permit)
    }

    /// Graph asked everyone from this app to wait: close the gate for `wait` (never shortening it).
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn gate_holds_everyone_back() {
        let limiter = Limiter::new(2);
        limiter.back_off(Duration::from_secs(5));
        let start = Instant::now();
        let permit = limiter.acquire(start + Duration::from_secs(60)).await;
        assert!(permit.is_some());
        assert!(Instant::now() - start >= Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_when_the_gate_outlasts_the_deadline() {
        let limiter = Limiter::new(1);
        limiter.back_off(Duration::from_secs(30));
        assert!(
            limiter
                .acquire(Instant::now() + Duration::from_secs(10))
                .await
                .is_none()
        );
    }
}
