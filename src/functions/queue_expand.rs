//! The queue function's fan-out half: a message naming access packages or users.
//!
//! - Several scopes (or scopes plus IDs) are split into one message per scope plus ID chunks, without
//!   calling Graph, so each scope's listing retries and resumes on its own.
//! - One scope lists **one page** (from the start or from the message's `nextLink`) and enqueues the
//!   page's IDs in chunks of 20 plus a continuation with the next link. Outputs are committed with the
//!   invocation, so a failure re-lists that page only (see `crate::fanout`).
//! - A transient listing failure re-enqueues the same message with `attempt`/`notBefore`; after
//!   `QUEUE_MAX_ATTEMPTS`, permission denial, a refused nextLink or a Graph refusal the message goes to
//!   the poison queue with the reason, to be re-driven.

use super::queue_bindings as b;
use super::queue_reprocess::retry_delay;
use crate::domain::ReprocessRequest;
use crate::fanout::{self, Plan};
use crate::startup::AppState;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::time::Instant;

pub(super) async fn handle(
    state: &AppState,
    request: &ReprocessRequest,
    mut dead_letter: Value,
    invocation_id: &str,
    response: &mut crate::host::InvokeResponse,
) {
    let settings = &state.settings;
    let correlation_id = request
        .correlation_id
        .clone()
        .unwrap_or_else(|| invocation_id.to_owned());
    let [scope] = request.scopes.as_slice() else {
        let plan = Plan::new(&request.targets, &request.scopes, &correlation_id);
        response.enqueue(b::ENQUEUE, plan.messages());
        response.log(format!(
            "split into {} expansion and {} ID messages",
            plan.expansion_messages.len(),
            plan.id_messages.len()
        ));
        return;
    };
    if !request.targets.is_empty() {
        let plan = Plan::new(&request.targets, &request.scopes, &correlation_id);
        response.enqueue(b::ENQUEUE, plan.messages());
        response.log(format!("split into {} messages", plan.len()));
        return;
    }

    let deadline = Instant::now() + settings.queue_budget;
    let next_link = request.next_link.as_deref();
    match fanout::expand_one_page(
        &state.services().await.graph,
        scope,
        next_link,
        &correlation_id,
        deadline,
    )
    .await
    {
        Ok(page) => {
            let more = page.continuation.is_some();
            let chunks = page.id_messages.len();
            response.enqueue(b::ENQUEUE, page.id_messages.into_iter().chain(page.continuation));
            tracing::info!(
                scope = scope.id(),
                correlation_id = %correlation_id,
                listed = page.listed,
                dropped = page.dropped,
                chunks,
                more,
                "listed a page"
            );
            response.log(format!(
                "{} {}: listed {} delivered assignments into {chunks} messages{}",
                scope.field(),
                scope.id(),
                page.listed,
                if more {
                    ", continuation enqueued"
                } else {
                    ", listing complete"
                }
            ));
        }
        Err(e) if e.is_transient() && request.attempt + 1 < settings.queue_max_attempts => {
            let attempt = request.attempt + 1;
            let not_before = OffsetDateTime::now_utc() + retry_delay(attempt, e.retry_after_seconds());
            let retry = fanout::expansion_message(scope, next_link, &correlation_id, Some((attempt, not_before)));
            response.enqueue(b::ENQUEUE, [retry]);
            tracing::warn!(scope = scope.id(), attempt, error = %e, "listing failed; re-enqueued");
            response.log(format!(
                "listing {} failed ({e}); re-enqueued as attempt {attempt}",
                scope.id()
            ));
        }
        Err(e) => {
            tracing::error!(scope = scope.id(), error = %e, "listing dead-lettered");
            dead_letter["reason"] = json!(format!("listing {} {} failed: {e}", scope.field(), scope.id()));
            dead_letter[scope.field()] = json!([scope.id()]);
            dead_letter["correlationId"] = json!(correlation_id);
            if let Some(link) = next_link {
                dead_letter["nextLink"] = json!(link);
            }
            dead_letter["attempt"] = json!(request.attempt);
            response.enqueue(b::DEAD_LETTER, [dead_letter.to_string()]);
            response.log(format!("listing dead-lettered: {e}"));
        }
    }
}
