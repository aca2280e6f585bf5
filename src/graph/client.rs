//! The Graph client: its settings and shared parts (HTTP connection pool, token provider, limiter), and
//! the reprocess of one target. Each answer becomes a per-ID [`Outcome`]: 202 accepted · 404 not found ·
//! 400 (and other 4xx) rejected with Graph's code and message · 401/403 permission denied naming the app
//! role · 429/5xx/timeouts/connection errors retried (`transport`), then reported transient.

use super::credential::TokenProvider;
use super::limiter::Limiter;
use super::paths::reprocess_url;
use super::transport::{Call, GaveUp, GraphRequest, SendError, StatusClass, retry_reason};
use crate::config::{ApiVersion, GraphSettings, is_loopback};
use crate::domain::outcome::{GraphError, REQUIRED_APP_ROLE};
use crate::domain::{Guid, ItemResult, Outcome, Target};
use reqwest::header::HeaderValue;
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

#[derive(Debug)]
pub struct GraphClient {
    http: reqwest::Client,
    base_url: Url,
    version: ApiVersion,
    tokens: TokenProvider,
    limiter: Arc<Limiter>,
    attempt_timeout: Duration,
    max_attempts: u32,
    batch_size: usize,
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

    pub(super) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Attempts per request (`GRAPH_MAX_ATTEMPTS`).
    pub(super) fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Reprocesses one target, retrying transient failures until `deadline` or the attempt cap.
    pub async fn reprocess(&self, target: Target, deadline: Instant) -> ItemResult {
        let started = Instant::now();
        let client_request_id = Guid::new_random();
        let url = reprocess_url(&self.base_url, self.version, &target);
        let request = GraphRequest {
            call: Call::Reprocess,
            url: &url,
            client_request_id: &client_request_id,
        };
        let exchange = self.send(&request, deadline).await;
        let outcome = match exchange.result {
            Ok(answer) => match classify(answer.status, answer.retry_after, &answer.body) {
                Attempt::Final(outcome) => outcome,
                Attempt::Retry { reason, wait } => transient(&reason, wait),
            },
            Err(GaveUp::Transient { reason, wait }) => transient(&reason, wait),
            Err(GaveUp::Final(e)) => refused_before_sending(e),
        };
        let result = ItemResult {
            kind: target.kind(),
            id: target.id().to_owned(),
            outcome,
            http_status: exchange.last_status,
            graph_request_id: exchange.last_request_id,
            attempts: exchange.attempts,
            target: Some(target),
        };
        log_finished(&result, &client_request_id, started, false);
        result
    }

    /// The `Authorization` header value, marked sensitive so it never shows in `Debug` output.
    pub(super) async fn authorization(&self) -> Result<HeaderValue, SendError> {
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

/// The one log line per reprocessed ID (its outcome, Graph's `request-id`, our `client-request-id`).
pub(super) fn log_finished(result: &ItemResult, client_request_id: &Guid, started: Instant, batched: bool) {
    tracing::info!(
        id = %result.id,
        kind = ?result.kind,
        outcome = result.outcome.label(),
        http_status = result.http_status,
        graph_request_id = result.graph_request_id.as_deref().unwrap_or(""),
        client_request_id = %client_request_id,
        attempts = result.attempts,
        duration_ms = started.elapsed().as_millis() as u64,
        batched,
        "reprocess finished"
    );
}

/// Turns one Graph answer (a response or a `$batch` sub-response) into a final outcome or a retry.
pub(super) fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Attempt {
    match StatusClass::of(status) {
        StatusClass::Success => Attempt::Final(Outcome::Accepted),
        StatusClass::NotFound => Attempt::Final(Outcome::NotFound {
            error: parse_graph_error(body),
        }),
        StatusClass::Denied => {
            let error = parse_graph_error(body).unwrap_or_else(|| GraphError {
                code: status.to_string(),
                message: "Graph refused the token".into(),
            });
            Attempt::Final(Outcome::PermissionDenied {
                error,
                missing_app_role: REQUIRED_APP_ROLE,
            })
        }
        StatusClass::Retryable => Attempt::Retry {
            reason: retry_reason(status, body),
            wait: retry_after,
        },
        StatusClass::Refused => Attempt::Final(Outcome::Rejected {
            error: graph_error_or_text(status, body),
        }),
    }
}

/// Graph's error, or for a body that is not one, `Http{status}` and the start of the text.
pub(super) fn graph_error_or_text(status: u16, body: &[u8]) -> GraphError {
    parse_graph_error(body).unwrap_or_else(|| GraphError {
        code: format!("Http{status}"),
        message: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
    })
}

/// The outcome when a request could not even be sent: an unusable token is a permission problem.
pub(super) fn refused_before_sending(e: SendError) -> Outcome {
    match e {
        SendError::InvalidToken => Outcome::PermissionDenied {
            error: GraphError {
                code: "InvalidToken".into(),
                message: e.to_string(),
            },
            missing_app_role: REQUIRED_APP_ROLE,
        },
        other => Outcome::Rejected {
            error: GraphError {
                code: "NotSent".into(),
                message: other.to_string(),
            },
        },
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
