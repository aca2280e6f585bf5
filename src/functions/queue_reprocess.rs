//! `function-reprocess-queue`: one queue message = a bare assignment ID or the JSON object form.
//!
//! Nothing is lost and accepted IDs are not redelivered:
//! - a malformed message goes to `<queue>-poison` at once, with the reason and the original text;
//! - IDs that stay transient are re-enqueued (only those) with `attempt + 1` and a `notBefore` time,
//!   which the next invocation waits for; after `QUEUE_MAX_ATTEMPTS` they go to `<queue>-poison`;
//! - IDs refused for lack of permission go to `<queue>-poison` so they can be re-driven once the app role
//!   is granted;
//! - a message naming access packages or users is expanded page by page (`queue_expand`);
//! - the invocation succeeds (2xx) so the host deletes the original message. It fails (non-2xx, the host
//!   retries the whole message) only when the envelope itself is unusable.

use super::queue_bindings as b;
use crate::domain::{Outcome, Report, Target, TargetKind, Targets, parse_queue_message};
use crate::host::{Envelope, EnvelopeError, InvokeResponse, QueueTrigger};
use crate::startup::AppState;
use serde_json::{Value, json};
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;

/// Longest a re-enqueued message waits for its `notBefore` inside one invocation.
const MAX_NOT_BEFORE_WAIT: Duration = Duration::from_secs(120);

pub async fn handle(
    state: &AppState,
    envelope: &Envelope,
    invocation_id: &str,
) -> Result<InvokeResponse, EnvelopeError> {
    let trigger = QueueTrigger::from_envelope(envelope, b::MESSAGE)?;
    let mut response = InvokeResponse::default();
    let settings = &state.settings;
    let dead_letter_base = || {
        json!({
            "sourceQueue": settings.queue_name,
            "messageId": trigger.message_id,
            "dequeueCount": trigger.dequeue_count,
            "invocationId": invocation_id,
            "deadLetteredAt": now_rfc3339(),
        })
    };

    let request = match parse_queue_message(&trigger.text, settings.max_ids_per_call) {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(error = %e, message_id = trigger.message_id.as_deref().unwrap_or(""), "malformed queue message dead-lettered");
            let mut record = dead_letter_base();
            record["reason"] = json!(format!("malformed message: {e}"));
            record["errors"] = json!(e.field_errors());
            record["originalMessage"] = json!(trigger.text);
            response.enqueue(b::DEAD_LETTER, [record.to_string()]);
            response.log(format!(
                "malformed message dead-lettered to {}-poison: {e}",
                settings.queue_name
            ));
            return Ok(response);
        }
    };

    if request.dry_run {
        let mut record = dead_letter_base();
        record["reason"] = json!("dryRun is only for HTTP calls: nobody reads a queue message's answer");
        record["originalMessage"] = json!(trigger.text);
        response.enqueue(b::DEAD_LETTER, [record.to_string()]);
        response.log("dry-run message dead-lettered: dry runs are HTTP only");
        return Ok(response);
    }

    if let Some(not_before) = request.not_before {
        let wait = (not_before - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
        let wait = Duration::try_from(wait)
            .unwrap_or_default()
            .min(MAX_NOT_BEFORE_WAIT)
            .min(settings.queue_budget / 2);
        if !wait.is_zero() {
            tracing::info!(
                wait_ms = wait.as_millis() as u64,
                attempt = request.attempt,
                "waiting for the message's notBefore"
            );
            tokio::time::sleep(wait).await;
        }
    }

    if !request.scopes.is_empty() {
        super::queue_expand::handle(state, &request, dead_letter_base(), invocation_id, &mut response).await;
        return Ok(response);
    }

    let deadline = Instant::now() + settings.queue_budget;
    let report = state.services().await.reprocessor.run(&request.targets, deadline).await;
    response.log(report.one_line());
    tracing::info!(summary = ?report.summary, attempt = request.attempt, "queue reprocess finished");

    let correlation_id = request
        .correlation_id
        .clone()
        .or_else(|| {
            trigger
                .message_id
                .clone()
                .filter(|id| id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        })
        .unwrap_or_else(|| invocation_id.to_owned());

    let denied = targets_with(&report, |o| matches!(o, Outcome::PermissionDenied { .. }));
    if !denied.is_empty() {
        let mut record = dead_letter_base();
        record["reason"] = json!(
            "permission denied: grant the Function App's identity the Graph app role EntitlementManagement.ReadWrite.All, then re-drive these IDs"
        );
        add_ids(&mut record, &denied);
        record["results"] = results_for(&report, &denied);
        record["correlationId"] = json!(correlation_id);
        response.enqueue(b::DEAD_LETTER, [record.to_string()]);
        response.log(format!("{} IDs dead-lettered: permission denied", denied.len()));
    }

    let transient = report.transient_targets();
    if !transient.is_empty() {
        let next_attempt = request.attempt + 1;
        if next_attempt >= settings.queue_max_attempts {
            let mut record = dead_letter_base();
            record["reason"] = json!(format!(
                "still transient after {next_attempt} attempts (QUEUE_MAX_ATTEMPTS)"
            ));
            add_ids(&mut record, &transient);
            record["results"] = results_for(&report, &transient);
            record["correlationId"] = json!(correlation_id);
            response.enqueue(b::DEAD_LETTER, [record.to_string()]);
            response.log(format!(
                "{} IDs dead-lettered after {next_attempt} attempts",
                transient.len()
            ));
        } else {
            let delay = retry_delay(next_attempt, report.max_retry_after());
            let not_before = OffsetDateTime::now_utc() + delay;
            let message = retry_message(&transient, next_attempt, not_before, &correlation_id);
            response.enqueue(b::ENQUEUE, [message]);
            response.log(format!(
                "{} transient IDs re-enqueued as attempt {next_attempt}, not before {}",
                transient.len(),
                format_time(not_before)
            ));
        }
    }
    Ok(response)
}

/// Waits between queue attempts: 10 s, 20 s, 40 s … capped at 120 s, or Graph's Retry-After if longer.
pub(super) fn retry_delay(attempt: u32, retry_after: Option<u64>) -> Duration {
    let ours =
        Duration::from_secs(10u64.saturating_mul(1 << attempt.saturating_sub(1).min(4))).min(MAX_NOT_BEFORE_WAIT);
    ours.max(Duration::from_secs(retry_after.unwrap_or(0)))
        .min(MAX_NOT_BEFORE_WAIT)
}

/// The re-enqueued remainder, in the same JSON form callers use. Field names avoid the host's queue
/// metadata keys (`Id`, `DequeueCount`, …), which JSON message properties would overwrite.
pub fn retry_message(targets: &[Target], attempt: u32, not_before: OffsetDateTime, correlation_id: &str) -> String {
    let mut message =
        json!({ "attempt": attempt, "notBefore": format_time(not_before), "correlationId": correlation_id });
    add_ids(&mut message, targets);
    message.to_string()
}

fn add_ids(record: &mut Value, targets: &[Target]) {
    let targets = Targets::from_items(targets.iter().copied());
    let ids = |kind: TargetKind| -> Vec<&str> {
        targets
            .items()
            .iter()
            .filter(|t| t.kind() == kind)
            .map(Target::id)
            .collect()
    };
    let assignments = ids(TargetKind::Assignment);
    let requests = ids(TargetKind::AssignmentRequest);
    if !assignments.is_empty() {
        record["assignmentIds"] = json!(assignments);
    }
    if !requests.is_empty() {
        record["assignmentRequestIds"] = json!(requests);
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

fn results_for(report: &Report, targets: &[Target]) -> Value {
    json!(
        report
            .results
            .iter()
            .filter(|r| r.target.is_some_and(|t| targets.contains(&t)))
            .collect::<Vec<_>>()
    )
}

fn format_time(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn now_rfc3339() -> String {
    format_time(OffsetDateTime::now_utc())
}
