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

use super::bindings::queue as b;
use crate::domain::CorrelationId;
use crate::fanout;
use crate::host::InvokeResponse;
use crate::message::{DeadLetter, DeadLetterSource, Plan, ReprocessRequest, scope_field};
use crate::operations::ListedPage;
use crate::state::AppState;
use tokio::time::Instant;

pub(super) async fn handle(
    state: &AppState,
    request: &ReprocessRequest,
    correlation_id: &CorrelationId,
    source: DeadLetterSource,
    response: &mut InvokeResponse,
) -> Option<ListedPage> {
    let settings = &state.settings;
    let [scope] = request.scopes.as_slice() else {
        let plan = Plan::new(&request.targets, &request.scopes, correlation_id);
        response.enqueue(b::ENQUEUE, plan.texts());
        response.log(format!(
            "split into {} expansion and {} ID messages",
            plan.expansion_messages.len(),
            plan.id_messages.len()
        ));
        return None;
    };
    if !request.targets.is_empty() {
        let plan = Plan::new(&request.targets, &request.scopes, correlation_id);
        response.enqueue(b::ENQUEUE, plan.texts());
        response.log(format!("split into {} messages", plan.len()));
        return None;
    }

    let scope = *scope;
    let deadline = Instant::now() + settings.queue_budget;
    let next_link = request.next_link.as_deref();
    let graph = &state.services().await.graph;
    match fanout::expand_one_page(graph, scope, next_link, correlation_id, deadline).await {
        Ok(page) => {
            let more = page.continuation.is_some();
            let chunks = page.id_messages.len();
            let texts = page
                .id_messages
                .iter()
                .chain(&page.continuation)
                .map(ReprocessRequest::to_text);
            response.enqueue(b::ENQUEUE, texts);
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
                scope_field(&scope),
                scope.id(),
                page.listed,
                if more {
                    ", continuation enqueued"
                } else {
                    ", listing complete"
                }
            ));
            Some(ListedPage {
                scope_kind: match scope {
                    crate::domain::Scope::AccessPackage(_) => "accessPackage",
                    crate::domain::Scope::User(_) => "user",
                },
                scope_id: scope.id().to_owned(),
                ids_found: page.listed,
            })
        }
        Err(e) if e.is_transient() && request.attempt + 1 < settings.queue_max_attempts => {
            let attempt = request.attempt + 1;
            let retry = ReprocessRequest::expansion(scope, next_link, correlation_id)
                .requeued(attempt, e.retry_after_seconds());
            response.enqueue(b::ENQUEUE, retry.to_texts());
            tracing::warn!(scope = scope.id(), attempt, error = %e, "listing failed; re-enqueued");
            response.log(format!(
                "listing {} failed ({e}); re-enqueued as attempt {attempt}",
                scope.id()
            ));
            None
        }
        Err(e) => {
            tracing::error!(scope = scope.id(), error = %e, "listing dead-lettered");
            let reason = format!("listing {} {} failed: {e}", scope_field(&scope), scope.id());
            let mut work = ReprocessRequest::expansion(scope, next_link, correlation_id);
            work.attempt = request.attempt;
            let record = DeadLetter::work(reason, work, Vec::new(), source);
            response.enqueue(b::DEAD_LETTER, record.into_texts());
            response.log(format!("listing dead-lettered: {e}"));
            None
        }
    }
}
