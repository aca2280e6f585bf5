//! `function-reprocess-queue`: one queue message = a bare assignment ID or the JSON object form, read
//! as one kind of work (`crate::work`), run, and settled by the one shared rule.
//!
//! Nothing is lost and accepted IDs are not redelivered:
//! - a malformed message goes to `<queue>-poison` at once, with the reason and the original text;
//! - work that stays transient is re-enqueued (only what is left) with `attempt + 1` and a `notBefore`
//!   time, which the next invocation waits for; after `QUEUE_MAX_ATTEMPTS` it goes to `<queue>-poison`;
//! - a message waits for its `notBefore` at most `message::MAX_NOT_BEFORE_WAIT` (and at most half the
//!   invocation's budget); one further ahead was not written by the handler and is dead-lettered;
//! - every dead letter and re-enqueued message fits a queue message (`message::fit`);
//! - the invocation succeeds (2xx) so the host deletes the original message. It fails (non-2xx, the host
//!   retries the whole message) only when the envelope itself is unusable or a tracked operation's
//!   progress cannot be recorded.

mod track;

use super::bindings::queue as b;
use crate::audit::{Invocation, QueueMessage as AuditQueueMessage};
use crate::domain::{AllowedScope, CorrelationId};
use crate::host::{Envelope, EnvelopeError, InvokeResponse, QueueTrigger};
use crate::message::{DeadLetter, DeadLetterSource};
use crate::state::AppState;
use crate::work::{Ctx, QueueMessage, settle};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;

pub async fn handle(
    state: &AppState,
    envelope: &Envelope,
    invocation_id: &str,
) -> Result<InvokeResponse, EnvelopeError> {
    let trigger = QueueTrigger::from_envelope(envelope, b::MESSAGE)?;
    let settings = &state.settings;
    let source = DeadLetterSource::now(
        &settings.queue_name,
        trigger.message_id.clone(),
        trigger.dequeue_count,
        invocation_id,
    );
    let mut response = InvokeResponse::default();
    let parsed = QueueMessage::parse(&trigger.text, settings.max_ids_per_call)
        .and_then(|message| Ok((message.wait_before_start(OffsetDateTime::now_utc())?, message)));
    let (wait, mut message) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::warn!(error = %e, message_id = trigger.message_id.as_deref().unwrap_or(""), "malformed queue message dead-lettered");
            let record = DeadLetter::unusable(
                format!("malformed message: {e}"),
                e.field_errors().to_vec(),
                &trigger.text,
                source,
            );
            response.enqueue(b::DEAD_LETTER, record.into_texts());
            response.log(format!(
                "malformed message dead-lettered to {}-poison: {e}",
                settings.queue_name
            ));
            return Ok(response);
        }
    };
    wait_for_not_before(wait, message.meta.attempt, settings.queue_budget).await;

    // Joins every message of one request in the logs: the message's own, else the queue message ID.
    let correlation_id = message
        .meta
        .correlation_id
        .clone()
        .or_else(|| trigger.message_id.as_deref().and_then(CorrelationId::parse))
        .or_else(|| CorrelationId::parse(invocation_id))
        .unwrap_or_else(CorrelationId::new_random);
    message.meta.correlation_id = Some(correlation_id.clone());
    let invocation = Invocation {
        trigger: "queue",
        function: b::FUNCTION,
        invocation_id: invocation_id.to_owned(),
        correlation_id: Some(correlation_id.to_string()),
        caller: message.meta.origin.clone().unwrap_or_default(),
        queue: Some(AuditQueueMessage {
            message_id: trigger.message_id.clone(),
            insertion_time: trigger.insertion_time.clone(),
            dequeue_count: trigger.dequeue_count,
        }),
    };
    // A message's scope can only narrow the deployment's: both must allow.
    let allowed = AllowedScope::narrowed(settings.allowed.as_ref(), message.meta.scope.as_ref());
    let services = state.services().await;
    // Nobody waits on queue work: it asks Graph to throttle it before synchronous calls.
    let ctx = Ctx {
        settings,
        services,
        graph: &services.background.graph,
        reprocessor: &services.background.reprocessor,
        deadline: Instant::now() + settings.queue_budget,
        correlation_id: &correlation_id,
        invocation: &invocation,
        allowed: allowed.as_ref(),
    };
    let attempt = message.meta.attempt;
    let step = message.work.run(&ctx).await;
    tracing::info!(attempt, correlation_id = %correlation_id, "queue message worked");
    let settled = settle(step, &message.meta, settings.queue_max_attempts, &source);
    let settled = track::record(state, &message.meta, &correlation_id, settled).await?;
    for line in settled.logs {
        response.log(line);
    }
    response.enqueue(b::ENQUEUE, settled.enqueue.iter().map(QueueMessage::to_text));
    response.enqueue(
        b::DEAD_LETTER,
        settled.dead_letters.into_iter().flat_map(DeadLetter::into_texts),
    );
    Ok(response)
}

/// A re-enqueued message waits here for its `notBefore` (already capped at `message::MAX_NOT_BEFORE_WAIT`),
/// at most half the invocation's budget, so the work itself still has time.
async fn wait_for_not_before(wait: Duration, attempt: u32, budget: Duration) {
    let wait = wait.min(budget / 2);
    if !wait.is_zero() {
        tracing::info!(
            wait_ms = wait.as_millis() as u64,
            attempt,
            "waiting for the message's notBefore"
        );
        tokio::time::sleep(wait).await;
    }
}
