//! The Graph client: its settings and shared parts (HTTP connection pool, token provider, limiter), and
//! the reprocess of one target. Each answer becomes a per-ID [`Outcome`]: 202 accepted · 404 not found ·
//! 400 (and other 4xx) rejected with Graph's code and message · 401/403 permission denied naming the app
//! role · 429/5xx/timeouts/connection errors retried (`transport`), then reported transient.

use super::credential::TokenProvider;
use super::limiter::Limiter;
use super::paths::reprocess_url;
use super::signals::Priority;
use super::status::{StatusClass, graph_error_or_text, parse_graph_error, retry_reason};
use super::transport::{Call, ClientError, GaveUp, GraphRequest, SendError, Transport};
use crate::config::{ApiVersion, GraphSettings};
use crate::domain::outcome::{GraphError, REQUIRED_APP_ROLE};
use crate::domain::{Guid, ItemResult, Outcome, Target};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

/// Cheap to clone: clones share the connection pool, token cache, limiter and what was learned of
/// Graph's answer times and health.
#[derive(Debug, Clone)]
pub struct GraphClient {
    transport: Arc<Transport>,
    version: ApiVersion,
    batch_size: usize,
    priority: Priority,
}

/// What one HTTP attempt (or one `$batch` sub-response) produced, before we decide whether to retry:
/// a final value (by default an [`Outcome`]; a batched read's caller makes its own) or a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Attempt<T = Outcome> {
    Final(T),
    Retry { reason: String, wait: Option<Duration> },
}

impl GraphClient {
    pub fn new(settings: &GraphSettings, tokens: TokenProvider, limiter: Arc<Limiter>) -> Result<Self, ClientError> {
        Ok(Self {
            transport: Arc::new(Transport::new(settings, tokens, limiter)?),
            version: settings.api_version,
            batch_size: settings.batch_size,
            priority: Priority::Normal,
        })
    }

    /// The same client for work nobody waits on (queue messages, timers, operations in the
    /// background): every request it sends, batched or not, carries `x-ms-throttle-priority: low`, so
    /// when Graph must throttle it throttles these before the synchronous HTTP calls. The priority does
    /// not change the limits, nor the shared pacing.
    pub fn background(&self) -> GraphClient {
        self.with_priority(Priority::Low)
    }

    /// The same client sending `priority`.
    pub fn with_priority(&self, priority: Priority) -> GraphClient {
        GraphClient {
            priority,
            ..self.clone()
        }
    }

    /// The `x-ms-throttle-priority` this client sends.
    pub fn priority(&self) -> Priority {
        self.priority
    }

    pub(super) fn transport(&self) -> &Transport {
        &self.transport
    }

    pub fn limiter(&self) -> &Limiter {
        self.transport.limiter()
    }

    /// The configured Graph origin (`GRAPH_BASE_URL`): the only place a token may be sent.
    pub fn base_url(&self) -> &Url {
        self.transport.base_url()
    }

    pub fn api_version(&self) -> ApiVersion {
        self.version
    }

    /// Targets per Graph request: 1 = one reprocess call each, up to 20 = JSON batching.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Reprocesses one target, retrying transient failures until `deadline` or the attempt cap.
    pub async fn reprocess(&self, target: Target, deadline: Instant) -> ItemResult {
        let started = Instant::now();
        let client_request_id = Guid::new_random();
        let url = reprocess_url(self.base_url(), self.version, &target);
        let request = GraphRequest {
            call: Call::Reprocess,
            url: &url,
            client_request_id: &client_request_id,
            priority: self.priority,
        };
        let exchange = self.transport.send(&request, deadline).await;
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
