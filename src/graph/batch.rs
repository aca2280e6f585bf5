//! JSON batching (`concepts/json-batching.md`): up to 20 reprocess calls in one `POST /{version}/$batch`.
//! Each sub-response is read on its own (they come back in any order); only the sub-requests that were
//! throttled or failed transiently are sent again, after the longest `Retry-After` among them. A batch
//! answer that is itself 429/5xx (or a connection failure) is retried as a whole.

use super::client::{Attempt, GraphClient, classify, log_finished, refused_before_sending, transient};
use super::paths::{batch_url, reprocess_relative};
use super::retry::{backoff_unless_healthy, parse_retry_after};
use super::transport::{Call, GraphRequest, SendError};
use crate::domain::{Guid, ItemResult, Outcome, Target};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Deserialize)]
pub(super) struct BatchResponse {
    #[serde(default)]
    pub responses: Vec<SubResponse>,
}

#[derive(Deserialize)]
pub(super) struct SubResponse {
    pub id: String,
    pub status: u16,
    #[serde(default)]
    pub headers: Map<String, Value>,
    #[serde(default)]
    pub body: Value,
}

impl SubResponse {
    /// A sub-response header, case-insensitively (Graph writes numbers for some).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
    }

    /// Graph's `request-id` for this sub-request: its header, else its error body's `innerError`.
    pub fn request_id(&self) -> Option<String> {
        self.header("request-id").or_else(|| {
            self.body["error"]["innerError"]["request-id"]
                .as_str()
                .map(str::to_owned)
        })
    }

    pub fn body_bytes(&self) -> Vec<u8> {
        if self.body.is_null() {
            Vec::new()
        } else {
            self.body.to_string().into_bytes()
        }
    }
}

/// One round's answer: the whole batch, or one entry per pending sub-request (same order as sent).
enum Round {
    Whole(Attempt),
    Parts(Vec<(Attempt, u16, Option<String>)>),
}

impl GraphClient {
    /// Reprocesses up to 20 targets through `$batch`, retrying per sub-request until `deadline`.
    pub async fn reprocess_batch(&self, targets: &[Target], deadline: Instant) -> Vec<ItemResult> {
        let started = Instant::now();
        let client_request_id = Guid::new_random();
        let mut results: Vec<ItemResult> = targets
            .iter()
            .map(|t| ItemResult {
                kind: t.kind(),
                id: t.id().to_owned(),
                outcome: Outcome::Accepted,
                http_status: None,
                graph_request_id: None,
                attempts: 0,
                target: Some(*t),
            })
            .collect();
        let mut pending: Vec<usize> = (0..targets.len()).collect();
        let mut round = 0u32;
        while !pending.is_empty() {
            // Under a slow pace, send part of the batch now and the rest next round (no attempt spent).
            let (now, later) = pending.split_at(self.limiter().max_burst().unwrap_or(usize::MAX).min(pending.len()));
            let (now, later) = (now.to_vec(), later.to_vec());
            pending = now;
            let pending_targets: Vec<Target> = pending.iter().map(|&i| targets[i]).collect();
            let answer = match self.send_batch(&pending_targets, &client_request_id, deadline).await {
                Err(SendError::OutOfTime { gate_wait }) => {
                    for &i in pending.iter().chain(&later) {
                        results[i].outcome = transient(&SendError::OutOfTime { gate_wait }.to_string(), gate_wait);
                    }
                    break;
                }
                answer => answer,
            };
            round += 1;
            let sent = pending.len();
            for &i in &pending {
                results[i].attempts += 1;
            }

            let mut retry: Vec<(usize, String, Option<Duration>)> = Vec::new();
            let answer = answer.unwrap_or_else(Round::from);
            // Graph refused the whole batch with a named wait: the app as a whole must wait.
            let whole_batch_throttled = matches!(answer, Round::Whole(Attempt::Retry { wait: Some(_), .. }));
            let whole_batch_failed = matches!(answer, Round::Whole(_));
            match answer {
                Round::Whole(Attempt::Final(outcome)) => {
                    for &i in &pending {
                        results[i].outcome = outcome.clone();
                    }
                }
                Round::Whole(Attempt::Retry { reason, wait }) => {
                    retry.extend(pending.iter().map(|&i| (i, reason.clone(), wait)));
                }
                Round::Parts(parts) => {
                    for (&i, (attempt, status, request_id)) in pending.iter().zip(parts) {
                        results[i].http_status = Some(status);
                        results[i].graph_request_id = request_id;
                        match attempt {
                            Attempt::Final(outcome) => results[i].outcome = outcome,
                            Attempt::Retry { reason, wait } => retry.push((i, reason, wait)),
                        }
                    }
                }
            }
            pending = retry.iter().map(|(i, _, _)| *i).collect();
            if pending.is_empty() {
                pending = later;
                continue;
            }
            let named_wait = retry.iter().filter_map(|(_, _, w)| *w).max();
            let failure = if whole_batch_failed {
                Failure::Whole
            } else {
                Failure::Parts {
                    failed: retry.len(),
                    sent,
                }
            };
            let wait = retry_wait(named_wait, failure, self.transport().graph_in_trouble(), round);
            if whole_batch_throttled {
                self.limiter().back_off(wait);
            }
            tracing::warn!(
                retrying = pending.len(),
                round,
                reason = %retry[0].1,
                wait_ms = wait.as_millis() as u64,
                "transient Graph failures in a batch"
            );
            let exhausted: Vec<usize> = retry
                .iter()
                .filter(|(i, _, _)| results[*i].attempts >= self.transport().max_attempts())
                .map(|(i, _, _)| *i)
                .collect();
            let out_of_time = Instant::now() + wait >= deadline;
            for (i, reason, _) in &retry {
                if out_of_time || exhausted.contains(i) {
                    results[*i].outcome = transient(reason, Some(wait));
                }
            }
            if out_of_time {
                for &i in &later {
                    results[i].outcome = transient("the invocation's time budget ran out", Some(wait));
                }
                break;
            }
            pending.retain(|i| !exhausted.contains(i));
            pending.extend(later);
            if pending.is_empty() {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        for r in &results {
            log_finished(r, &client_request_id, started, true);
        }
        results
    }

    /// One `$batch` round trip through the transport; `Err` only when nothing was answered.
    async fn send_batch(
        &self,
        targets: &[Target],
        client_request_id: &Guid,
        deadline: Instant,
    ) -> Result<Round, SendError> {
        // Sub-request ids are positions, so answers in any order map back without trusting Graph's text.
        let requests: Vec<Value> = targets
            .iter()
            .enumerate()
            .map(|(i, t)| json!({ "id": (i + 1).to_string(), "method": "POST", "url": reprocess_relative(self.api_version(), t) }))
            .collect();
        let body = json!({ "requests": requests }).to_string();
        let url = batch_url(self.base_url(), self.api_version());
        let request = GraphRequest {
            call: Call::Batch {
                body: &body,
                weight: targets.len() as u32,
            },
            url: &url,
            client_request_id,
        };
        let answer = self.transport().send_once(&request, deadline).await?;
        let (status, batch_request_id, body) = (answer.status, answer.request_id, answer.body);
        if status != 200 {
            return Ok(Round::Whole(classify(status, answer.retry_after, &body)));
        }
        let Ok(parsed) = serde_json::from_slice::<BatchResponse>(&body) else {
            let reason = "Graph's batch answer was not the documented JSON".to_owned();
            return Ok(Round::Whole(Attempt::Retry { reason, wait: None }));
        };
        let parts = (1..=targets.len())
            .map(|position| {
                let Some(sub) = parsed.responses.iter().find(|r| r.id.trim() == position.to_string()) else {
                    let reason = "Graph's batch answer had no response for this request".to_owned();
                    return (Attempt::Retry { reason, wait: None }, 0, batch_request_id.clone());
                };
                self.transport().record_answer(sub.status);
                let wait = sub.header("retry-after").as_deref().and_then(parse_retry_after);
                let request_id = sub.request_id().or_else(|| batch_request_id.clone());
                (classify(sub.status, wait, &sub.body_bytes()), sub.status, request_id)
            })
            .collect();
        Ok(Round::Parts(parts))
    }
}

impl From<SendError> for Round {
    /// No answer at all: a transport failure is retried as a whole, a refusal ends every sub-request.
    fn from(e: SendError) -> Self {
        match e {
            SendError::Transient(reason) => Round::Whole(Attempt::Retry { reason, wait: None }),
            SendError::OutOfTime { gate_wait } => Round::Whole(Attempt::Retry {
                reason: e.to_string(),
                wait: gate_wait,
            }),
            other => Round::Whole(Attempt::Final(refused_before_sending(other))),
        }
    }
}

/// What failed in a `$batch` round.
#[derive(Debug, Clone, Copy)]
enum Failure {
    /// The whole request: no answer, or a 429/5xx for the envelope.
    Whole,
    /// `failed` of the `sent` sub-requests.
    Parts { failed: usize, sent: usize },
}

/// How long a batch waits before sending its failed sub-requests again: Graph's `Retry-After` when it
/// named one. Otherwise Graph's everyday noise (a few failed sub-requests, or a whole request reset or
/// hung while most requests succeed) is retried soon: growing waits would keep the invocation asleep
/// while the budget goes unused, and the last IDs of a job would wait longest. When most of the batch
/// failed, or many recent requests did (`graph_in_trouble`), Graph is failing: longer each round.
fn retry_wait(named: Option<Duration>, failure: Failure, graph_in_trouble: bool, round: u32) -> Duration {
    let most_failed = matches!(failure, Failure::Parts { failed, sent } if failed * 2 >= sent);
    named.unwrap_or_else(|| backoff_unless_healthy(round, graph_in_trouble || most_failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sporadic_failures_are_retried_soon_whatever_the_round() {
        for round in 1..=5 {
            let few = Failure::Parts { failed: 1, sent: 3 };
            assert!(retry_wait(None, few, false, round) <= Duration::from_secs(1));
            // A reset or hung request while Graph answers the rest is noise too.
            assert!(retry_wait(None, Failure::Whole, false, round) <= Duration::from_secs(1));
        }
    }

    #[test]
    fn failing_graph_or_mostly_failed_batches_back_off_more_each_round() {
        assert!(retry_wait(None, Failure::Whole, true, 4) >= Duration::from_secs(4));
        let few = Failure::Parts { failed: 1, sent: 20 };
        assert!(retry_wait(None, few, true, 4) >= Duration::from_secs(4));
        let most = Failure::Parts { failed: 15, sent: 20 };
        assert!(retry_wait(None, most, false, 4) >= Duration::from_secs(4));
    }

    #[test]
    fn a_named_wait_wins() {
        let named = Some(Duration::from_secs(7));
        let few = Failure::Parts { failed: 1, sent: 20 };
        assert_eq!(retry_wait(named, few, false, 1), Duration::from_secs(7));
        assert_eq!(retry_wait(named, Failure::Whole, true, 5), Duration::from_secs(7));
    }
}
