//! `function-reprocess-queue`: one queue message = a bare assignment ID or the JSON object form
//! (`crate::message`).
//!
//! Nothing is lost and accepted IDs are not redelivered:
//! - a malformed message goes to `<queue>-poison` at once, with the reason and the original text;
//! - IDs that stay transient are re-enqueued (only those) with `attempt + 1` and a `notBefore` time,
//!   which the next invocation waits for; after `QUEUE_MAX_ATTEMPTS` they go to `<queue>-poison`;
//! - IDs refused for lack of permission go to `<queue>-poison` so they can be re-driven once the app role
//!   is granted;
//! - a message naming access packages or users is expanded page by page (`queue_expand`);
//! - every dead letter and re-enqueued message fits a queue message (`message::fit`): split over
//!   several records rather than lost when too large;
//! - the invocation succeeds (2xx) so the host deletes the original message. It fails (non-2xx, the host
//!   retries the whole message) only when the envelope itself is unusable.

use super::bindings::queue as b;
use crate::audit::{Invocation, QueueMessage};
use crate::domain::outcome::REQUIRED_APP_ROLE;
use crate::domain::{CorrelationId, Outcome, Report, Target};
use crate::host::{Envelope, EnvelopeError, InvokeResponse, QueueTrigger};
use crate::message::{DeadLetter, DeadLetterSource, MAX_NOT_BEFORE_WAIT, ReprocessRequest, parse_queue_message};
use crate::state::AppState;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;

pub async fn handle(
    state: &AppState,
    envelope: &Envelope,
    invocation_id: &str,
) -> Result<InvokeResponse, EnvelopeError> {
    let trigger = QueueTrigger::from_envelope(envelope, b::MESSAGE)?;
    let mut response = InvokeResponse::default();
    let done = work(state, &trigger, invocation_id, &mut response).await;
    if let Some(tracked) = done {
        super::queue_track::record(state, tracked, &mut response).await?;
    }
    Ok(response)
}

/// The message's work; for a message of a tracked operation, what to record about it.
async fn work(
    state: &AppState,
    trigger: &QueueTrigger,
    invocation_id: &str,
    response: &mut InvokeResponse,
) -> Option<super::queue_track::Done> {
    use super::queue_track::Done;
    let settings = &state.settings;
    let source = || {
        DeadLetterSource::now(
            &settings.queue_name,
            trigger.message_id.clone(),
            trigger.dequeue_count,
            invocation_id,
        )
    };

    let request = match parse_queue_message(&trigger.text, settings.max_ids_per_call) {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(error = %e, message_id = trigger.message_id.as_deref().unwrap_or(""), "malformed queue message dead-lettered");
            let record = DeadLetter::unusable(
                format!("malformed message: {e}"),
                e.field_errors().to_vec(),
                &trigger.text,
                source(),
            );
            response.enqueue(b::DEAD_LETTER, record.into_texts());
            response.log(format!(
                "malformed message dead-lettered to {}-poison: {e}",
                settings.queue_name
            ));
            return None;
        }
    };

    if request.dry_run {
        let reason = "dryRun is only for HTTP calls: nobody reads a queue message's answer".to_owned();
        let record = DeadLetter::unusable(reason, Vec::new(), &trigger.text, source());
        response.enqueue(b::DEAD_LETTER, record.into_texts());
        response.log("dry-run message dead-lettered: dry runs are HTTP only");
        return None;
    }

    wait_for_not_before(&request, settings.queue_budget).await;

    // Joins every message of one request in the logs: the message's own, else the queue message ID.
    let correlation_id = request
        .correlation_id
        .clone()
        .or_else(|| trigger.message_id.as_deref().and_then(CorrelationId::parse))
        .or_else(|| CorrelationId::parse(invocation_id))
        .unwrap_or_else(CorrelationId::new_random);

    let invocation = Invocation {
        trigger: "queue",
        function: b::FUNCTION,
        invocation_id: invocation_id.to_owned(),
        correlation_id: Some(correlation_id.to_string()),
        caller: request.origin.clone().unwrap_or_default(),
        queue: Some(QueueMessage {
            message_id: trigger.message_id.clone(),
            insertion_time: trigger.insertion_time.clone(),
            dequeue_count: trigger.dequeue_count,
        }),
    };

    if let Some(listing) = request.heal {
        super::queue_heal::handle(state, listing, &request, &correlation_id, source(), response).await;
        return None;
    }
    let mut done = Done::new(&request, &correlation_id);
    if !request.drift_packages.is_empty() {
        done.results =
            super::queue_drift::handle(state, &request, &correlation_id, &invocation, source(), response).await;
        return Some(done);
    }
    if !request.scopes.is_empty() {
        done.listed =
            super::queue_expand::handle(state, &request, &correlation_id, &invocation, source(), response).await;
        return Some(done);
    }

    let deadline = Instant::now() + settings.queue_budget;
    let services = state.services().await;
    let report = services.reprocessor.run(&request.targets, deadline).await;
    services.recorder.reprocessed(&invocation, &report);
    response.log(report.one_line());
    tracing::info!(summary = ?report.summary, attempt = request.attempt, "queue reprocess finished");

    let denied = targets_with(&report, |o| matches!(o, Outcome::PermissionDenied { .. }));
    if !denied.is_empty() {
        let reason = format!(
            "permission denied: grant the Function App's identity the Graph app role {REQUIRED_APP_ROLE} (or, with a catalog scope, the entitlement-management role Access package assignment manager on the IDs' catalogs), then re-drive these IDs"
        );
        let record = DeadLetter::work(
            reason,
            ReprocessRequest::ids(denied.iter().copied(), &correlation_id).with_origin(request.origin.as_ref()),
            results_for(&report, &denied),
            source(),
        );
        response.enqueue(b::DEAD_LETTER, record.into_texts());
        response.log(format!("{} IDs dead-lettered: permission denied", denied.len()));
    }

    let transient = report.transient_targets();
    if transient.is_empty() {
        done.results = report.results;
        return Some(done);
    }
    let next_attempt = request.attempt + 1;
    let remainder =
        ReprocessRequest::ids(transient.iter().copied(), &correlation_id).with_origin(request.origin.as_ref());
    if next_attempt >= settings.queue_max_attempts {
        let reason = format!("still transient after {next_attempt} attempts (QUEUE_MAX_ATTEMPTS)");
        let record = DeadLetter::work(reason, remainder, results_for(&report, &transient), source());
        response.enqueue(b::DEAD_LETTER, record.into_texts());
        response.log(format!(
            "{} IDs dead-lettered after {next_attempt} attempts",
            transient.len()
        ));
    } else {
        let retry = remainder.requeued(next_attempt, report.max_retry_after());
        response.enqueue(b::ENQUEUE, retry.to_texts());
        response.log(format!(
            "{} transient IDs re-enqueued as attempt {next_attempt}, not before {}",
            transient.len(),
            retry.not_before.map(crate::message::rfc3339).unwrap_or_default()
        ));
    }
    done.results = report.results;
    Some(done)
}

/// A re-enqueued message waits here for its `notBefore` (at most two minutes, and at most half the
/// invocation's budget, so the work itself still has time).
async fn wait_for_not_before(request: &ReprocessRequest, budget: Duration) {
    let Some(not_before) = request.not_before else {
        return;
    };
    let wait = (not_before - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
    let wait = Duration::try_from(wait)
        .unwrap_or_default()
        .min(MAX_NOT_BEFORE_WAIT)
        .min(budget / 2);
    if !wait.is_zero() {
        tracing::info!(
            wait_ms = wait.as_millis() as u64,
            attempt = request.attempt,
            "waiting for the message's notBefore"
        );
        tokio::time::sleep(wait).await;
    }
}

fn targets_with(report: &Report, pred: impl Fn(&Outcome) -> bool) -> Vec<Target> {
    report
        .results
        .iter()
        .filter(|r| pred(&r.outcome))
        .filter_map(|r| r.target)
        .collect()
}

fn results_for(report: &Report, targets: &[Target]) -> Vec<crate::domain::ItemResult> {
    report
        .results
        .iter()
        .filter(|r| r.target.is_some_and(|t| targets.contains(&t)))
        .cloned()
        .collect()
}
