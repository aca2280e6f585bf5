//! The queue function's heal half: a heal listing the timer handed over (`{"heal":"requests:deliveryFailed",
//! "nextLink":…}`) lists **one page** per invocation, like the fan-out: the requests inside the 14-day
//! window go out as ID messages, failed assignments are logged (reported), and a continuation carries
//! Graph's `nextLink`. Transient failures re-enqueue the same message with `attempt`/`notBefore`; others
//! are dead-lettered with the reason.

use super::bindings::queue as b;
use crate::domain::CorrelationId;
use crate::domain::heal::HealListing;
use crate::heal::heal_one_page;
use crate::host::InvokeResponse;
use crate::message::{DeadLetter, DeadLetterSource, ReprocessRequest};
use crate::state::AppState;
use tokio::time::Instant;

pub(super) async fn handle(
    state: &AppState,
    listing: HealListing,
    request: &ReprocessRequest,
    correlation_id: &CorrelationId,
    source: DeadLetterSource,
    response: &mut InvokeResponse,
) {
    let settings = &state.settings;
    let deadline = Instant::now() + settings.queue_budget;
    let next_link = request.next_link.as_deref();
    let graph = &state.services().await.graph;
    match heal_one_page(graph, listing, next_link, correlation_id, deadline).await {
        Ok(page) => {
            let texts = page
                .id_messages
                .iter()
                .chain(&page.continuation)
                .map(ReprocessRequest::to_text);
            response.enqueue(b::ENQUEUE, texts);
            tracing::info!(
                correlation_id = %correlation_id,
                listing = %listing.name(),
                listed = page.listed,
                enqueued = page.to_reprocess.len(),
                outside_window = page.outside_window,
                failed_assignments = %serde_json::to_string(&page.failed_assignments).unwrap_or_default(),
                more = page.continuation.is_some(),
                "heal page listed"
            );
            response.log(format!(
                "heal {}: {} listed, {} enqueued for reprocess, {} outside the 14-day window, {} failed assignments reported{}",
                listing.name(),
                page.listed,
                page.to_reprocess.len(),
                page.outside_window,
                page.failed_assignments.len(),
                if page.continuation.is_some() { ", continuation enqueued" } else { "" }
            ));
        }
        Err(e) if e.is_transient() && request.attempt + 1 < settings.queue_max_attempts => {
            let attempt = request.attempt + 1;
            let retry =
                ReprocessRequest::heal(listing, next_link, correlation_id).requeued(attempt, e.retry_after_seconds());
            response.enqueue(b::ENQUEUE, retry.to_texts());
            response.log(format!(
                "heal {} failed ({e}); re-enqueued as attempt {attempt}",
                listing.name()
            ));
        }
        Err(e) => {
            tracing::error!(listing = %listing.name(), error = %e, "heal listing dead-lettered");
            let mut work = ReprocessRequest::heal(listing, next_link, correlation_id);
            work.attempt = request.attempt;
            let record = DeadLetter::work(
                format!("heal listing {} failed: {e}", listing.name()),
                work,
                Vec::new(),
                source,
            );
            response.enqueue(b::DEAD_LETTER, record.into_texts());
            response.log(format!("heal listing dead-lettered: {e}"));
        }
    }
}
