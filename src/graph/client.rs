//! Calls Graph's reprocess actions and turns each answer into a per-ID [`Outcome`]:
//! 202 accepted · 404 not found · 400 (and other 4xx) rejected with Graph's code and message ·
//! 401/403 permission denied naming the app role · 429/5xx/timeouts/connection errors retried here,
//! honouring `Retry-After`, then reported transient.

use super::credential::TokenProvider;
use super::limiter::Limiter;
use super::paths::reprocess_path;
use super::retry::{backoff, parse_retry_after};
use crate::config::{ApiVersion, GraphSettings, is_loopback};
use crate::domain::outcome::{GraphError, REQUIRED_APP_ROLE};
use crate::domain::{Guid, ItemResult, Outcome, Target};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderValue};
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

/// Why [`GraphClient::authorized_get`] got no answer.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    #[error("refusing to send a token to {0}: not the configured Graph origin")]
    ForeignOrigin(String),
    #[error("{0}")]
    Token(String),
    #[error("Graph did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("connection to Graph failed: {0}")]
    Connection(String),
}

#[derive(Debug)]
pub struct GraphClient {
    pub(super) http: reqwest::Client,
    pub(super) base_url: Url,
    pub(super) version: ApiVersion,
    pub(super) tokens: TokenProvider,
    pub(super) limiter: Arc<Limiter>,
    pub(super) attempt_timeout: Duration,
    pub(super) max_attempts: u32,
    pub(super) batch_size: usize,
}

/// What one HTTP attempt produced, before we decide whether to retry.
pub(super) enum Attempt {
    Final(Outcome),
    Retry { reason: String, wait: Option<Duration> },
}

impl GraphClient {
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
            version: settings.api_version,
            tokens,
            limiter,
            attempt_timeout: settings.attempt_timeout,
            max_attempts: settings.max_attempts,
            batch_size: settings.batch_size,
        })
    }

    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// The configured Graph origin (`GRAPH_BASE_URL`): the only place a token may be sent.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    pub fn api_version(&self) -> ApiVersion {
        self.version
    }

    /// Per-attempt timeout and attempt cap, for callers that run their own retry loop (`graph::list`).
    pub fn retry_policy(&self) -> (Duration, u32) {
        (self.attempt_timeout, self.max_attempts)
    }

    /// One authenticated GET (no retries, no limiter: the caller holds a permit). Refuses any URL
    /// outside the configured origin so a token can never be sent elsewhere.
    pub async fn authorized_get(
        &self,
        url: &Url,
        client_request_id: &Guid,
        timeout: Duration,
    ) -> Result<reqwest::Response, GetError> {
        if url.origin() != self.base_url.origin() {
            return Err(GetError::ForeignOrigin(url.origin().ascii_serialization()));
        }
        let token = self.tokens.token().await.map_err(|e| GetError::Token(e.to_string()))?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", token.secret()))
            .map_err(|_| GetError::Token("the credential returned a token that is not a valid header value".into()))?;
        authorization.set_sensitive(true);
        self.http
            .get(url.clone())
            .header(AUTHORIZATION, authorization)
            .header("client-request-id", client_request_id.as_str())
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    GetError::Timeout(timeout)
                } else {
                    GetError::Connection(error_chain(&e))
                }
            })
    }

    fn url_for(&self, target: &Target) -> Url {
        let mut url = self.base_url.clone();
        url.set_path(&reprocess_path(self.version, target));
        url
    }

    /// Reprocesses one target, retrying transient failures until `deadline` or the attempt cap.
    pub async fn reprocess(&self, target: Target, deadline: Instant) -> ItemResult {
        let started = Instant::now();
        let client_request_id = Guid::new_random();
        let url = self.url_for(&target);
        let mut result = ItemResult {
            kind: target.kind(),
            id: target.id().to_owned(),
            outcome: Outcome::Accepted,
            http_status: None,
            graph_request_id: None,
            attempts: 0,
            target: Some(target),
        };
        let outcome = loop {
            let Some(permit) = self.limiter.acquire(deadline, 1).await else {
                let wait = self
                    .limiter
                    .gate_open_at()
                    .map(|at| at.saturating_duration_since(Instant::now()));
                break transient(
                    "the invocation's time budget ran out while Graph asked us to back off",
                    wait,
                );
            };
            result.attempts += 1;
            let attempt = self.attempt(&url, &client_request_id, deadline, &mut result).await;
            drop(permit);
            match attempt {
                Attempt::Final(outcome) => break outcome,
                Attempt::Retry { reason, wait } => {
                    let throttled = wait.is_some();
                    let wait = wait.unwrap_or_else(|| backoff(result.attempts));
                    if throttled {
                        // Graph named a wait: hold every invocation in this process back, not just this one.
                        self.limiter.back_off(wait);
                    }
                    tracing::warn!(id = %result.id, attempt = result.attempts, reason = %reason, wait_ms = wait.as_millis() as u64, "transient Graph failure");
                    if result.attempts >= self.max_attempts || Instant::now() + wait >= deadline {
                        break transient(&reason, Some(wait));
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        };
        result.outcome = outcome;
        tracing::info!(
            id = %result.id,
            kind = ?result.kind,
            outcome = result.outcome.label(),
            http_status = result.http_status,
            graph_request_id = result.graph_request_id.as_deref().unwrap_or(""),
            client_request_id = %client_request_id,
            attempts = result.attempts,
            duration_ms = started.elapsed().as_millis() as u64,
            "reprocess finished"
        );
        result
    }

    async fn attempt(
        &self,
        url: &Url,
        client_request_id: &Guid,
        deadline: Instant,
        result: &mut ItemResult,
    ) -> Attempt {
        let authorization = match self.authorization().await {
            Ok(value) => value,
            Err(attempt) => return attempt,
        };
        let timeout = self.timeout_before(deadline);
        let response = self
            .http
            .post(url.clone())
            .header(AUTHORIZATION, authorization)
            .header("client-request-id", client_request_id.as_str())
            .header(CONTENT_LENGTH, "0")
            .timeout(timeout)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Attempt::Retry {
                    reason: format!("Graph did not answer within {} ms", timeout.as_millis()),
                    wait: None,
                };
            }
            Err(e) => {
                return Attempt::Retry {
                    reason: format!("connection to Graph failed: {}", error_chain(&e)),
                    wait: None,
                };
            }
        };
        let status = response.status().as_u16();
        result.http_status = Some(status);
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        result.graph_request_id = header("request-id");
        let retry_after = header("retry-after").as_deref().and_then(parse_retry_after);
        let body = match tokio::time::timeout(timeout, response.bytes()).await {
            Ok(Ok(body)) => body,
            Ok(Err(e)) if (200..300).contains(&status) => {
                tracing::debug!(error = %e, "ignoring an unreadable success body");
                Default::default()
            }
            Ok(Err(e)) => {
                return Attempt::Retry {
                    reason: format!("reading Graph's {status} answer failed: {e}"),
                    wait: None,
                };
            }
            Err(_) => {
                return Attempt::Retry {
                    reason: format!("Graph's {status} answer did not finish in time"),
                    wait: None,
                };
            }
        };
        self.record_answer(status);
        classify(status, retry_after, &body)
    }

    /// The `Authorization` header value, marked sensitive so it never shows in `Debug` output.
    pub(super) async fn authorization(&self) -> Result<HeaderValue, Attempt> {
        let token = self.tokens.token().await.map_err(|e| Attempt::Retry {
            reason: e.to_string(),
            wait: None,
        })?;
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.secret())).map_err(|_| {
            Attempt::Final(Outcome::PermissionDenied {
                error: GraphError {
                    code: "InvalidToken".into(),
                    message: "the credential returned a token that is not a valid header value".into(),
                },
                missing_app_role: REQUIRED_APP_ROLE,
            })
        })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Per-attempt timeout, never past the invocation's deadline.
    pub(super) fn timeout_before(&self, deadline: Instant) -> Duration {
        self.attempt_timeout
            .min(deadline.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(100))
    }

    /// Targets per Graph request: 1 = one reprocess call each, up to 20 = JSON batching.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Feeds the shared pacing: 429 is a throttle signal, any other answer counts as accepted.
    pub(super) fn record_answer(&self, status: u16) {
        if status == 429 {
            self.limiter.record_throttled();
        } else {
            self.limiter.record_accepted(1);
        }
    }
}

/// Turns one Graph answer (a response or a `$batch` sub-response) into a final outcome or a retry.
pub(super) fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Attempt {
    match status {
        200..=299 => Attempt::Final(Outcome::Accepted),
        404 => Attempt::Final(Outcome::NotFound {
            error: parse_graph_error(body),
        }),
        401 | 403 => {
            let error = parse_graph_error(body).unwrap_or_else(|| GraphError {
                code: status.to_string(),
                message: "Graph refused the token".into(),
            });
            Attempt::Final(Outcome::PermissionDenied {
                error,
                missing_app_role: REQUIRED_APP_ROLE,
            })
        }
        408 | 424 | 429 | 500 | 502 | 503 | 504 => {
            let detail = parse_graph_error(body)
                .map(|e| format!(" ({}: {})", e.code, e.message))
                .unwrap_or_default();
            Attempt::Retry {
                reason: format!("Graph answered {status}{detail}"),
                wait: retry_after,
            }
        }
        _ => {
            let error = parse_graph_error(body).unwrap_or_else(|| GraphError {
                code: format!("Http{status}"),
                message: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
            });
            Attempt::Final(Outcome::Rejected { error })
        }
    }
}

pub(super) fn transient(reason: &str, wait: Option<Duration>) -> Outcome {
    Outcome::Transient {
        reason: reason.to_owned(),
        retry_after_seconds: wait.map(|w| w.as_secs() + u64::from(w.subsec_nanos() > 0)),
    }
}

/// Graph's error body: `{"error":{"code":"…","message":"…","innerError":{…}}}` (`concepts/errors.md`).
pub fn parse_graph_error(body: &[u8]) -> Option<GraphError> {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let body: Body = serde_json::from_slice(body).ok()?;
    Some(GraphError {
        code: body.error.code,
        message: body.error.message,
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
