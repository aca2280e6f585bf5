//! `function-heal-timer`: the scheduled heal (`schedule` from the app setting `HEAL_SCHEDULE`, hourly
//! `0 0 * * * *` by default in the infra).
//!
//! One run lists, page by page within half the queue budget, the requests in `deliveryFailed` and
//! `partiallyDelivered` (reprocessing those completed inside 14 days through the queue, in messages of
//! 20) and the assignments in those states (reported only), and enqueues one drift-detection message per
//! package in `DRIFT_PACKAGE_IDS`. A listing that runs out of time or meets throttling is handed to the
//! queue as a continuation message (resumed one page per invocation, like the fan-out). Every message
//! carries the run's correlation ID (`heal-<invocation ID>`), and the run ends with one summary event
//! (`heal run summary`) and one line in the host's `Logs`.

use super::bindings::timer as b;
use crate::domain::CorrelationId;
use crate::domain::heal::HealListing;
use crate::heal::{HealSummary, heal_one_page};
use crate::host::{Envelope, EnvelopeError, InvokeResponse, TimerTrigger};
use crate::message::DeadLetterSource;
use crate::state::AppState;
use crate::work::{Meta, Next, QueueMessage, Step, Work, settle};
use tokio::time::Instant;

pub async fn handle(
    state: &AppState,
    envelope: &Envelope,
    invocation_id: &str,
) -> Result<InvokeResponse, EnvelopeError> {
    let trigger = TimerTrigger::from_envelope(envelope, b::TIMER)?;
    let settings = &state.settings;
    let correlation_id =
        CorrelationId::parse(&format!("heal-{invocation_id}")).unwrap_or_else(CorrelationId::new_random);
    tracing::info!(
        correlation_id = %correlation_id,
        is_past_due = trigger.is_past_due,
        last = trigger.last.as_deref().unwrap_or(""),
        next = trigger.next.as_deref().unwrap_or(""),
        "heal run started"
    );
    let mut response = InvokeResponse::default();
    let mut summary = HealSummary::default();
    let started = Instant::now();
    let soft_deadline = started + settings.queue_budget / 2;
    let deadline = started + settings.queue_budget;
    // Nobody waits on the heal: it asks Graph to throttle it before synchronous calls.
    let graph = &state.services().await.background.graph;
    // The run's follow-on work, settled by the same rule as a queue message's.
    let mut step = Step::default();

    for listing in HealListing::ALL {
        let mut next: Option<String> = None;
        loop {
            let this = Work::Heal {
                listing,
                next_link: next.clone(),
            };
            if Instant::now() >= soft_deadline {
                step.next.push(Next::now(this));
                summary.continued.push(listing.name());
                break;
            }
            match heal_one_page(graph, listing, next.as_deref(), deadline).await {
                Ok(page) => {
                    summary.add(listing, &page);
                    let (chunks, _) = crate::work::heal::follow_on(listing, &page);
                    step.next.extend(chunks.into_iter().map(Next::now));
                    match page.next_link {
                        Some(link) => next = Some(link),
                        None => break,
                    }
                }
                Err(e) if e.is_transient() => {
                    step.next.push(Next::retry(this, e.retry_after_seconds()));
                    summary.continued.push(listing.name());
                    tracing::warn!(listing = %listing.name(), error = %e, "heal listing continued on the queue");
                    break;
                }
                Err(e) => {
                    tracing::error!(listing = %listing.name(), error = %e, "heal listing failed");
                    summary.errors.push(format!("{}: {e}", listing.name()));
                    break;
                }
            }
        }
    }
    if settings.drift_detection {
        for package in &settings.drift_package_ids {
            step.next.push(Next::now(Work::Drift(*package)));
            summary.drift_packages_enqueued += 1;
        }
    }
    let meta = Meta {
        correlation_id: Some(correlation_id.clone()),
        ..Meta::default()
    };
    // Nothing is refused or retried above, so the timer needs no dead-letter output.
    let source = DeadLetterSource::now(&settings.queue_name, None, None, invocation_id);
    let settled = settle(step, &meta, settings.queue_max_attempts, &source);
    response.enqueue(b::ENQUEUE, settled.enqueue.iter().map(QueueMessage::to_text));
    let line = summary.one_line();
    tracing::info!(
        correlation_id = %correlation_id,
        summary = %serde_json::to_string(&summary).unwrap_or_default(),
        requests_enqueued = summary.requests_enqueued,
        requests_outside_window = summary.requests_outside_window,
        failed_assignments = summary.failed_assignment_count,
        drift_packages = summary.drift_packages_enqueued,
        errors = summary.errors.len(),
        "heal run summary"
    );
    response.log(format!("{line} (correlation {correlation_id})"));
    Ok(response)
}
