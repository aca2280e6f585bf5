//! The one way a request reaches Graph. [`Transport::send_once`] takes a slot from the shared limiter
//! (a `$batch` of 20 weighs 20), a token, the per-attempt timeout (never past the invocation's
//! deadline) and our `client-request-id`, and brings back the status, Graph's `request-id`,
//! `Retry-After` and the body, read under the same timeout. [`Transport::send`] repeats it while the
//! answer is worth retrying ([`StatusClass::Retryable`]), honouring `Retry-After` for that request only
//! or backing off (`retry`), until the attempt cap or the deadline. Each request carries its caller's
//! `x-ms-throttle-priority`, and Graph's throttling headers feed the pacing (`signals`).
//! Reprocess, reads and listing use `send`; the `$batch` runner (`batch::run`) retries per sub-request
//! around `send_once`, with the same wait rule (`retry`).

use super::credential::TokenProvider;
use super::health::Health;
use super::latency::AdaptiveTimeout;
use super::limiter::Limiter;
use super::retry::{backoff_unless_healthy, parse_retry_after};
use super::signals::{PRIORITY, Priority, Signals};
use super::status::{StatusClass, retry_reason};
use crate::config::GraphSettings;
use crate::domain::Guid;
use crate::setting::is_loopback;
use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("refusing to send tokens over plain http to {0}: use https (loopback is the only exception)")]
    InsecureBaseUrl(String),
    #[error("could not build the HTTP client: {0}")]
    Build(String),
}

/// The connection pool, the token provider and the process-wide limiter, with the configured origin
/// (the only place a token may go) and the per-attempt limits.
#[derive(Debug)]
pub(super) struct Transport {
    http: reqwest::Client,
    base_url: Url,
    tokens: TokenProvider,
    limiter: Arc<Limiter>,
    /// Per-attempt timeout from observed answer times, `GRAPH_ATTEMPT_TIMEOUT_SECONDS` its ceiling.
    timeouts: AdaptiveTimeout,
    /// Whether recent requests failed often enough that retries must wait longer each time.
    health: Health,
    max_attempts: u32,
}

/// What is sent; it decides the method, the body and how the answer feeds the shared pacing.
#[derive(Debug, Clone, Copy)]
pub(super) enum Call<'a> {
    /// `POST …/reprocess` with an empty body.
    Reprocess,
    /// `POST /$batch` with this JSON body, weighing `weight` requests (Graph throttles each sub-request;
    /// their answers feed the pacing one by one, so the envelope's own 200 does not).
    Batch { body: &'a str, weight: u32 },
    /// `GET` of a collection page or an item.
    Read,
}

pub(super) struct GraphRequest<'a> {
    pub call: Call<'a>,
    pub url: &'a Url,
    /// Kept across retries so Graph's logs can join them.
    pub client_request_id: &'a Guid,
    /// `x-ms-throttle-priority`: who Graph throttles first.
    pub priority: Priority,
}

/// Graph's answer to one attempt.
#[derive(Debug)]
pub(super) struct Answer {
    pub status: u16,
    pub request_id: Option<String>,
    pub retry_after: Option<Duration>,
    /// Graph's throttling headers (`signals`).
    pub signals: Signals,
    pub body: Bytes,
}

/// Why one attempt brought back no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum SendError {
    /// No slot before the deadline: Graph's back-off (or the pace) outlasts the invocation's budget.
    #[error("the invocation's time budget ran out while Graph asked us to back off")]
    OutOfTime { gate_wait: Option<Duration> },
    #[error("refusing to send a token to {0}: not the configured Graph origin")]
    ForeignOrigin(String),
    #[error("the credential returned a token that is not a valid header value")]
    InvalidToken,
    /// The token endpoint, a timeout, the connection or an unreadable answer: worth another attempt.
    #[error("{0}")]
    Transient(String),
}

/// What [`Transport::send`] ended with, and what the attempts saw on the way.
#[derive(Debug)]
pub(super) struct Exchange {
    pub attempts: u32,
    /// The last status and `request-id` Graph answered with, even when retries gave up.
    pub last_status: Option<u16>,
    pub last_request_id: Option<String>,
    pub result: Result<Answer, GaveUp>,
}

#[derive(Debug)]
pub(super) enum GaveUp {
    /// Still transient at the attempt cap or the deadline; `wait` is what Graph (or back-off) asked for.
    Transient { reason: String, wait: Option<Duration> },
    /// Not worth retrying (a foreign URL, an unusable token).
    Final(SendError),
}

impl Transport {
    pub fn new(settings: &GraphSettings, tokens: TokenProvider, limiter: Arc<Limiter>) -> Result<Self, ClientError> {
        let loopback = is_loopback(&settings.base_url);
        if settings.base_url.scheme() != "https" && !loopback {
            return Err(ClientError::InsecureBaseUrl(settings.base_url.to_string()));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("reprocess-handler/", env!("CARGO_PKG_VERSION")))
            .https_only(!loopback)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(Self {
            http,
            base_url: settings.base_url.clone(),
            tokens,
            limiter,
            timeouts: AdaptiveTimeout::new(settings.attempt_timeout),
            health: Health::default(),
            max_attempts: settings.max_attempts,
        })
    }

    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// More than a quarter of the recent requests got no answer or a 5xx: Graph is failing, not unlucky.
    pub fn graph_in_trouble(&self) -> bool {
        self.health.in_trouble()
    }

    /// How long to wait before attempt `attempts + 1` of something that failed without a named wait:
    /// soon while Graph is healthy (a stray failure), longer each time while it is in trouble.
    pub fn retry_backoff(&self, attempts: u32) -> Duration {
        backoff_unless_healthy(attempts, self.graph_in_trouble())
    }

    /// Attempts per request (`GRAPH_MAX_ATTEMPTS`).
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The `Authorization` header value, marked sensitive so it never shows in `Debug` output.
    async fn authorization(&self) -> Result<HeaderValue, SendError> {
        let token = self
            .tokens
            .token()
            .await
            .map_err(|e| SendError::Transient(e.to_string()))?;
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", token.secret())).map_err(|_| SendError::InvalidToken)?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Per-attempt timeout, never past the invocation's deadline.
    fn timeout_before(&self, deadline: Instant) -> Duration {
        self.timeouts
            .current()
            .min(deadline.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(100))
    }

    /// Feeds the shared pacing ([`Limiter::record_answer`]).
    pub fn record_answer(&self, status: u16, signals: &Signals) {
        self.limiter.record_answer(status, signals);
    }

    /// The request for one attempt, without its token: method, body, our headers, the timeout.
    fn request(&self, request: &GraphRequest<'_>, timeout: Duration) -> reqwest::RequestBuilder {
        let url = request.url.clone();
        let mut builder = match request.call {
            Call::Reprocess => self.http.post(url).header(CONTENT_LENGTH, "0"),
            Call::Batch { body, .. } => self
                .http
                .post(url)
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_owned()),
            Call::Read => self.http.get(url),
        };
        if let Some(priority) = request.priority.header() {
            builder = builder.header(PRIORITY, priority);
        }
        builder
            .header("client-request-id", request.client_request_id.as_str())
            .header(ACCEPT, "application/json")
            .timeout(timeout)
    }

    /// One attempt: slot, token, timeout, headers, answer. Never retries.
    pub async fn send_once(&self, request: &GraphRequest<'_>, deadline: Instant) -> Result<Answer, SendError> {
        let url = request.url;
        if url.origin() != self.base_url.origin() {
            return Err(SendError::ForeignOrigin(url.origin().ascii_serialization()));
        }
        let weight = match request.call {
            Call::Batch { weight, .. } => weight.max(1),
            Call::Reprocess | Call::Read => 1,
        };
        let Some(permit) = self.limiter.acquire(deadline, weight).await else {
            let gate_wait = self
                .limiter()
                .gate_open_at()
                .map(|at| at.saturating_duration_since(Instant::now()));
            return Err(SendError::OutOfTime { gate_wait });
        };
        // The token endpoint can hang too: waiting for it counts against the invocation's deadline.
        let authorization = tokio::time::timeout_at(deadline, self.authorization())
            .await
            .map_err(|_| {
                SendError::Transient("the token endpoint did not answer before the invocation's deadline".into())
            })??;
        let timeout = self.timeout_before(deadline);
        let sent_at = Instant::now();
        let response = self
            .request(request, timeout)
            .header(AUTHORIZATION, authorization)
            .send()
            .await
            .map_err(|e| {
                self.health.record(true);
                // No answer: Graph most likely never counted it, so its pacing slot goes to the next request.
                self.limiter.refund(weight);
                SendError::Transient(if e.is_timeout() {
                    self.timeouts.record_timeout();
                    format!("Graph did not answer within {} ms", timeout.as_millis())
                } else {
                    format!("connection to Graph failed: {}", error_chain(&e))
                })
            })?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let request_id = header("request-id");
        let retry_after = header("retry-after").as_deref().and_then(parse_retry_after);
        let signals = Signals::read(header);
        let body = match tokio::time::timeout(timeout, response.bytes()).await {
            Ok(Ok(body)) => body,
            // A reprocess is done once Graph said 2xx; its (empty) body is not worth a second reprocess.
            Ok(Err(e))
                if matches!(request.call, Call::Reprocess) && StatusClass::of(status) == StatusClass::Success =>
            {
                tracing::debug!(error = %e, "ignoring an unreadable success body");
                Bytes::new()
            }
            Ok(Err(e)) => {
                self.health.record(true);
                return Err(SendError::Transient(format!(
                    "reading Graph's {status} answer failed: {e}"
                )));
            }
            Err(_) => {
                self.timeouts.record_timeout();
                self.health.record(true);
                return Err(SendError::Transient(format!(
                    "Graph's {status} answer did not finish in time"
                )));
            }
        };
        self.timeouts.record(sent_at.elapsed());
        self.health.record(status >= 500);
        drop(permit);
        if !(matches!(request.call, Call::Batch { .. }) && status == 200) {
            self.record_answer(status, &signals);
        }
        tracing::debug!(
            method = match request.call {
                Call::Read => "GET",
                _ => "POST",
            },
            path = url.path(),
            query = url.query().unwrap_or(""),
            status,
            graph_request_id = request_id.as_deref().unwrap_or(""),
            client_request_id = %request.client_request_id,
            "Graph answered"
        );
        Ok(Answer {
            status,
            request_id,
            retry_after,
            signals,
            body,
        })
    }

    /// Attempts until Graph's answer is not [`StatusClass::Retryable`], the attempt cap
    /// (`GRAPH_MAX_ATTEMPTS`) or `deadline`.
    pub async fn send(&self, request: &GraphRequest<'_>, deadline: Instant) -> Exchange {
        let mut exchange = Exchange {
            attempts: 0,
            last_status: None,
            last_request_id: None,
            result: Err(GaveUp::Transient {
                reason: String::new(),
                wait: None,
            }),
        };
        loop {
            let attempt = self.send_once(request, deadline).await;
            let (reason, named_wait) = match attempt {
                Err(SendError::OutOfTime { gate_wait }) => {
                    exchange.result = Err(GaveUp::Transient {
                        reason: SendError::OutOfTime { gate_wait }.to_string(),
                        wait: gate_wait,
                    });
                    return exchange;
                }
                Err(SendError::Transient(reason)) => {
                    exchange.attempts += 1;
                    (reason, None)
                }
                Err(e) => {
                    exchange.attempts += 1;
                    exchange.result = Err(GaveUp::Final(e));
                    return exchange;
                }
                Ok(answer) => {
                    exchange.attempts += 1;
                    exchange.last_status = Some(answer.status);
                    exchange.last_request_id.clone_from(&answer.request_id);
                    if StatusClass::of(answer.status) != StatusClass::Retryable {
                        exchange.result = Ok(answer);
                        return exchange;
                    }
                    (retry_reason(answer.status, &answer.body), answer.retry_after)
                }
            };
            // Graph named a wait for this request: it waits it out; the pace keeps the others under the limit.
            let wait = named_wait.unwrap_or_else(|| self.retry_backoff(exchange.attempts));
            tracing::warn!(
                path = request.url.path(),
                attempt = exchange.attempts,
                reason = %reason,
                wait_ms = wait.as_millis() as u64,
                "transient Graph failure"
            );
            if exchange.attempts >= self.max_attempts || Instant::now() + wait >= deadline {
                exchange.result = Err(GaveUp::Transient {
                    reason,
                    wait: Some(wait),
                });
                return exchange;
            }
            tokio::time::sleep(wait).await;
        }
    }
}

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiVersion;
    use crate::graph::GraphClient;

    fn settings() -> GraphSettings {
        GraphSettings {
            base_url: Url::parse("https://graph.microsoft.com").unwrap(),
            api_version: ApiVersion::V1,
            scope: "https://graph.microsoft.com/.default".into(),
            max_concurrency: 4,
            attempt_timeout: Duration::from_secs(30),
            max_attempts: 5,
            batch_size: 20,
        }
    }

    fn tokens() -> TokenProvider {
        TokenProvider::managed_identity(None, "https://graph.microsoft.com/.default").unwrap()
    }

    #[tokio::test]
    async fn only_low_priority_requests_carry_the_priority_header() {
        let transport = Transport::new(&settings(), tokens(), Arc::new(Limiter::new(4))).unwrap();
        let id = Guid::new_random();
        let url = Url::parse("https://graph.microsoft.com/v1.0/$batch").unwrap();
        for call in [Call::Batch { body: "{}", weight: 2 }, Call::Reprocess, Call::Read] {
            for (priority, expected) in [(Priority::Low, Some("low")), (Priority::Normal, None)] {
                let request = GraphRequest {
                    call,
                    url: &url,
                    client_request_id: &id,
                    priority,
                };
                let built = transport.request(&request, Duration::from_secs(1)).build().unwrap();
                let header = |name: &str| built.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
                assert_eq!(header("x-ms-throttle-priority").as_deref(), expected, "{call:?}");
                assert_eq!(header("client-request-id").as_deref(), Some(id.as_str()));
            }
        }
    }

    #[tokio::test]
    async fn a_background_client_is_the_same_client_at_low_priority() {
        let client = GraphClient::new(&settings(), tokens(), Arc::new(Limiter::new(4))).unwrap();
        let background = client.background();
        assert_eq!(
            (client.priority(), background.priority()),
            (Priority::Normal, Priority::Low)
        );
        assert!(
            std::ptr::eq(client.limiter(), background.limiter()),
            "one shared pacing"
        );
        assert_eq!(background.with_priority(Priority::Normal).priority(), Priority::Normal);
    }
}
