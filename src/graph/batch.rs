//! JSON batching (`concepts/json-batching.md`): the one runner for every `POST /{version}/$batch`.
//! Callers describe their sub-requests (method and a URL relative to the version root, from `paths`)
//! and how to read one sub-response; [`run`] owns the rest, the same for every batched call:
//! - rounds: each sub-response is read on its own (they come back in any order, matched by position);
//!   only the sub-requests that were throttled or failed transiently are sent again, each after its own
//!   `Retry-After` ([`retry_wait`] when none was named), those due at the same time together; a batch
//!   answer that is itself 429/5xx (or no answer at all) is retried as a whole;
//! - under a slow pace, only [`Limiter::max_burst`] sub-requests go at once, the rest next round
//!   without spending an attempt, so a `$batch` does not overrun a small bucket in one burst;
//! - a whole batch refused with 429 or 503 and `Retry-After` waits on its own; the process-wide
//!   back-off gate closes only for the app's limit ([`Limiter::record_batch_answer`]);
//! - every sub-response feeds the shared pacing with Graph's throttling headers (`signals`);
//! - attempts per sub-request (`GRAPH_MAX_ATTEMPTS`), the invocation's deadline, one
//!   `client-request-id` across all rounds.
//!
//! [`reprocess_batch`](GraphClient::reprocess_batch) is its reprocess caller, `lookup` its reads.

use super::client::{Attempt, GraphClient, classify, log_finished, refused_before_sending, transient};
use super::limiter::Limiter;
use super::paths::{batch_url, reprocess_relative};
use super::retry::{backoff_unless_healthy, parse_retry_after};
use super::signals::{Signals, ThrottleCause};
use super::transport::{Call, GraphRequest, SendError};
use crate::domain::{Guid, ItemResult, Outcome, Target};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Deserialize)]
pub(super) struct BatchResponse {
    #[serde(default)]
    pub responses: Vec<SubResponse>,
}

#[derive(Debug, Clone, Deserialize)]
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

    pub fn retry_after(&self) -> Option<Duration> {
        self.header("retry-after").as_deref().and_then(parse_retry_after)
    }

    pub fn body_bytes(&self) -> Vec<u8> {
        if self.body.is_null() {
            Vec::new()
        } else {
            self.body.to_string().into_bytes()
        }
    }

    /// Graph's throttling headers on this sub-response.
    pub fn signals(&self) -> Signals {
        Signals::read(|name| self.header(name))
    }

    /// The usual reading: [`classify`] of its status, `Retry-After` and body.
    pub fn classify(&self) -> Attempt {
        classify(self.status, self.retry_after(), &self.body_bytes())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Get,
    Post,
}

/// One sub-request: its method and its URL relative to the version root (from `paths`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SubRequest {
    pub method: Method,
    pub url: String,
}

/// What came back for one `$batch` round trip.
#[derive(Debug)]
pub(super) enum Envelope {
    /// 200 with the documented JSON: the sub-responses, in Graph's order.
    Parts {
        request_id: Option<String>,
        responses: Vec<SubResponse>,
    },
    /// The batch as a whole was answered with something else (a 429, a 5xx, a 400 …).
    Whole {
        status: u16,
        retry_after: Option<Duration>,
        signals: Signals,
        body: Bytes,
    },
    /// 200 whose body is not the documented JSON.
    Garbled,
}

/// What the runner needs from whoever carries a `$batch` to Graph: the transport in production, a
/// simulated Graph in the limiter's simulation.
pub(super) trait BatchSender {
    /// One round trip (slot, token, timeout, headers); `Err` only when nothing was answered.
    async fn send(
        &self,
        requests: &[SubRequest],
        client_request_id: &Guid,
        deadline: Instant,
    ) -> Result<Envelope, SendError>;
    /// Feeds one sub-response to the shared pacing (Graph throttles each sub-request).
    fn record(&self, sub: &SubResponse);
    fn limiter(&self) -> &Limiter;
    /// Many recent requests failed: retries without a named wait wait longer each round.
    fn graph_in_trouble(&self) -> bool;
    fn max_attempts(&self) -> u32;
}

/// One sub-request's end: what its caller read (`Ok`), or an outcome the runner decided (`Err`: out of
/// attempts or time, refused before sending, the whole batch refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Finished<T> {
    pub result: Result<T, Outcome>,
    pub http_status: Option<u16>,
    pub graph_request_id: Option<String>,
    pub attempts: u32,
}

/// What one round said about one sub-request.
struct Part<T> {
    attempt: Attempt<T>,
    status: Option<u16>,
    request_id: Option<String>,
}

/// One round's answer: the whole batch, or one entry per sub-request sent (same order as sent).
enum Round<T> {
    Whole { attempt: Attempt, status: Option<u16> },
    Parts(Vec<Part<T>>),
}

/// Sends `requests` through `sender` in rounds until each is read, final, or out of attempts or time.
/// `read(i, sub)` turns the sub-response to `requests[i]` into a final value or a retry; `call` names
/// the batched call in the logs.
pub(super) async fn run<S: BatchSender, T>(
    sender: &S,
    requests: &[SubRequest],
    read: impl Fn(usize, &SubResponse) -> Attempt<T>,
    client_request_id: &Guid,
    deadline: Instant,
    call: &'static str,
) -> Vec<Finished<T>> {
    let mut results: Vec<Finished<T>> = requests
        .iter()
        .map(|_| Finished {
            result: Err(transient("not sent yet", None)),
            http_status: None,
            graph_request_id: None,
            attempts: 0,
        })
        .collect();
    // Each sub-request waits its own wait: one throttled with `Retry-After: 5` does not hold back the
    // others of its round that failed without a named wait, nor those a burst split left for later.
    let mut ready_at: Vec<Instant> = vec![Instant::now(); requests.len()];
    let mut pending: Vec<usize> = (0..requests.len()).collect();
    let mut round = 0u32;
    while !pending.is_empty() {
        let now = Instant::now();
        // Under a slow pace, send part of the batch now and the rest next round (no attempt spent).
        let burst = sender.limiter().max_burst().unwrap_or(usize::MAX).max(1);
        let due: Vec<usize> = pending
            .iter()
            .copied()
            .filter(|&i| ready_at[i] <= now)
            .take(burst)
            .collect();
        if due.is_empty() {
            // Those due within [`COALESCE`] of the first go with it: fewer, fuller envelopes, and none
            // before its own wait.
            let first = pending.iter().map(|&i| ready_at[i]).min().unwrap_or(now);
            let wake = pending
                .iter()
                .map(|&i| ready_at[i])
                .filter(|&at| at <= first + COALESCE)
                .max()
                .unwrap_or(first);
            tokio::time::sleep_until(wake).await;
            continue;
        }
        pending.retain(|i| !due.contains(i));
        let sent: Vec<SubRequest> = due.iter().map(|&i| requests[i].clone()).collect();
        let answer = match sender.send(&sent, client_request_id, deadline).await {
            Err(SendError::OutOfTime { gate_wait }) => {
                let reason = SendError::OutOfTime { gate_wait }.to_string();
                for &i in due.iter().chain(&pending) {
                    results[i].result = Err(transient(&reason, gate_wait));
                }
                break;
            }
            answer => answer,
        };
        round += 1;
        for &i in &due {
            results[i].attempts += 1;
        }
        if let Ok(envelope) = &answer {
            // Only this batch waits for a whole-batch 429 or 503, unless it is the app's limit.
            let (status, wait, cause) = match envelope {
                Envelope::Whole {
                    status,
                    retry_after,
                    signals,
                    ..
                } => (*status, *retry_after, signals.cause()),
                Envelope::Parts { .. } | Envelope::Garbled => (200, None, ThrottleCause::Unknown),
            };
            sender.limiter().record_batch_answer(status, wait, cause);
        }
        let round_answer = match answer {
            Ok(envelope) => read_envelope(sender, envelope, due.len(), &read),
            Err(e) => Round::from(e),
        };

        let mut retry: Vec<(usize, String, Option<Duration>)> = Vec::new();
        let whole_batch_failed = matches!(round_answer, Round::Whole { .. });
        match round_answer {
            Round::Whole { attempt, status } => {
                for &i in &due {
                    if status.is_some() {
                        results[i].http_status = status;
                    }
                    match &attempt {
                        Attempt::Final(outcome) => results[i].result = Err(outcome.clone()),
                        Attempt::Retry { reason, wait } => retry.push((i, reason.clone(), *wait)),
                    }
                }
            }
            Round::Parts(parts) => {
                for (&i, part) in due.iter().zip(parts) {
                    if part.status.is_some() {
                        results[i].http_status = part.status;
                    }
                    if part.request_id.is_some() {
                        results[i].graph_request_id = part.request_id;
                    }
                    match part.attempt {
                        Attempt::Final(value) => results[i].result = Ok(value),
                        Attempt::Retry { reason, wait } => retry.push((i, reason, wait)),
                    }
                }
            }
        }
        if retry.is_empty() {
            continue;
        }
        let failure = if whole_batch_failed {
            Failure::Whole
        } else {
            Failure::Parts {
                failed: retry.len(),
                sent: sent.len(),
            }
        };
        // One wait for those Graph named none for (they go again together), each named one as named.
        let attempts = retry.iter().map(|(i, _, _)| results[*i].attempts).max().unwrap_or(1);
        let unnamed = retry_wait(None, failure, sender.graph_in_trouble(), attempts);
        let longest = retry
            .iter()
            .map(|(_, _, w)| w.unwrap_or(unnamed))
            .max()
            .unwrap_or(unnamed);
        tracing::warn!(
            call,
            retrying = retry.len(),
            round,
            reason = %retry[0].1,
            wait_ms = longest.as_millis() as u64,
            "transient Graph failures in a batch"
        );
        let now = Instant::now();
        for (i, reason, named) in retry {
            let wait = named.unwrap_or(unnamed);
            if now + wait >= deadline || results[i].attempts >= sender.max_attempts() {
                results[i].result = Err(transient(&reason, Some(wait)));
            } else {
                ready_at[i] = now + wait;
                pending.push(i);
            }
        }
        pending.sort_unstable();
    }
    results
}

/// Reads one answered round: the whole batch's status, or each of the `sent` sub-responses by position.
fn read_envelope<S: BatchSender, T>(
    sender: &S,
    envelope: Envelope,
    sent: usize,
    read: &impl Fn(usize, &SubResponse) -> Attempt<T>,
) -> Round<T> {
    let (batch_request_id, responses) = match envelope {
        Envelope::Whole {
            status,
            retry_after,
            body,
            ..
        } => {
            return Round::Whole {
                attempt: classify(status, retry_after, &body),
                status: Some(status),
            };
        }
        Envelope::Garbled => {
            let reason = "Graph's batch answer was not the documented JSON".to_owned();
            return Round::Whole {
                attempt: Attempt::Retry { reason, wait: None },
                status: None,
            };
        }
        Envelope::Parts { request_id, responses } => (request_id, responses),
    };
    Round::Parts(
        (1..=sent)
            .map(|position| {
                // Sub-request ids are positions, so answers in any order map back without trusting Graph's text.
                let Some(sub) = responses.iter().find(|r| r.id.trim() == position.to_string()) else {
                    let reason = "Graph's batch answer had no response for this request".to_owned();
                    return Part {
                        attempt: Attempt::Retry { reason, wait: None },
                        status: None,
                        request_id: batch_request_id.clone(),
                    };
                };
                sender.record(sub);
                Part {
                    attempt: read(position - 1, sub),
                    status: Some(sub.status),
                    request_id: sub.request_id().or_else(|| batch_request_id.clone()),
                }
            })
            .collect(),
    )
}

impl<T> From<SendError> for Round<T> {
    /// No answer at all: a transport failure is retried as a whole, a refusal ends every sub-request.
    fn from(e: SendError) -> Self {
        let attempt = match e {
            SendError::Transient(reason) => Attempt::Retry { reason, wait: None },
            SendError::OutOfTime { gate_wait } => Attempt::Retry {
                reason: e.to_string(),
                wait: gate_wait,
            },
            other => Attempt::Final(refused_before_sending(other)),
        };
        Round::Whole { attempt, status: None }
    }
}

/// The `$batch` body: sub-request ids are their positions (1-based).
pub(super) fn batch_body(requests: &[SubRequest]) -> String {
    let requests: Vec<Value> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let method = match r.method {
                Method::Get => "GET",
                Method::Post => "POST",
            };
            json!({ "id": (i + 1).to_string(), "method": method, "url": r.url })
        })
        .collect();
    json!({ "requests": requests }).to_string()
}

impl BatchSender for GraphClient {
    async fn send(
        &self,
        requests: &[SubRequest],
        client_request_id: &Guid,
        deadline: Instant,
    ) -> Result<Envelope, SendError> {
        let body = batch_body(requests);
        let url = batch_url(self.base_url(), self.api_version());
        let request = GraphRequest {
            call: Call::Batch {
                body: &body,
                weight: requests.len() as u32,
            },
            url: &url,
            client_request_id,
            priority: self.priority(),
        };
        let answer = self.transport().send_once(&request, deadline).await?;
        if answer.status != 200 {
            return Ok(Envelope::Whole {
                status: answer.status,
                retry_after: answer.retry_after,
                signals: answer.signals,
                body: answer.body,
            });
        }
        match serde_json::from_slice::<BatchResponse>(&answer.body) {
            Ok(parsed) => Ok(Envelope::Parts {
                request_id: answer.request_id,
                responses: parsed.responses,
            }),
            Err(_) => Ok(Envelope::Garbled),
        }
    }

    fn record(&self, sub: &SubResponse) {
        self.transport().record_answer(sub.status, &sub.signals());
    }

    fn limiter(&self) -> &Limiter {
        GraphClient::limiter(self)
    }

    fn graph_in_trouble(&self) -> bool {
        self.transport().graph_in_trouble()
    }

    fn max_attempts(&self) -> u32 {
        self.transport().max_attempts()
    }
}

impl GraphClient {
    /// Reprocesses up to 20 targets through `$batch`, retrying per sub-request until `deadline`.
    pub async fn reprocess_batch(&self, targets: &[Target], deadline: Instant) -> Vec<ItemResult> {
        let started = Instant::now();
        let client_request_id = Guid::new_random();
        let requests: Vec<SubRequest> = targets
            .iter()
            .map(|t| SubRequest {
                method: Method::Post,
                url: reprocess_relative(self.api_version(), t),
            })
            .collect();
        let finished = run(
            self,
            &requests,
            |_, sub| sub.classify(),
            &client_request_id,
            deadline,
            "reprocess",
        )
        .await;
        let results: Vec<ItemResult> = targets
            .iter()
            .zip(finished)
            .map(|(t, f)| ItemResult {
                kind: t.kind(),
                id: t.id().to_owned(),
                outcome: f.result.unwrap_or_else(|outcome| outcome),
                http_status: f.http_status,
                graph_request_id: f.graph_request_id,
                attempts: f.attempts,
                target: Some(*t),
            })
            .collect();
        for r in &results {
            log_finished(r, &client_request_id, started, true);
        }
        results
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
/// `attempt` is how many times the sub-requests were sent. A retry of one or two sub-requests that
/// fails again says nothing about Graph (it is as likely as their first failure): only a batch of
/// [`MOST_FAILED_SAMPLE`] or more tells a failing Graph from noise.
fn retry_wait(named: Option<Duration>, failure: Failure, graph_in_trouble: bool, attempt: u32) -> Duration {
    let most_failed =
        matches!(failure, Failure::Parts { failed, sent } if sent >= MOST_FAILED_SAMPLE && failed * 2 >= sent);
    named.unwrap_or_else(|| backoff_unless_healthy(attempt, graph_in_trouble || most_failed))
}

/// Retries due this close together are sent in one `$batch`: a second late for a 503 beside a 429
/// with `Retry-After: 1` costs less than a second round trip and pacing slot.
const COALESCE: Duration = Duration::from_secs(1);

/// Sub-requests a batch needs for "most of them failed" to mean something.
const MOST_FAILED_SAMPLE: usize = 5;

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
