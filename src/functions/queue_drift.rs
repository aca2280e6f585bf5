//! The queue function's drift half: `{"detectDriftFor":{"accessPackageIds":[…]}}`.
//!
//! Several packages (or a package plus other work) are split into one message each first. One package
//! is checked (`crate::drift::detect`) and its drifted assignments are reprocessed in the same
//! invocation through the shared reprocessor (limiter, `$batch`, retries); more than `HTTP_SYNC_MAX_IDS`
//! go out as ID messages instead. IDs still transient are re-enqueued like any reprocess remainder. The
//! result — per drifted assignment the resource and role it lacks and what the reprocess answered — is
//! logged as one `drift detected` event and one line in the host's `Logs`. Transient listing failures
//! re-enqueue the message; missing permissions and refusals dead-letter it with the reason.
//! Every reprocessed assignment gets its audit record (`crate::audit`, with the queue message and the
//! caller carried in `origin`), and the results go to the operation's record when the message is
//! tracked (`queue_track`).

use super::bindings::queue as b;
use crate::audit::{AuditRecord, Invocation};
use crate::catalog_scope::check_packages;
use crate::domain::{CorrelationId, ItemResult, Scope, Target, Targets};
use crate::drift;
use crate::host::InvokeResponse;
use crate::message::{self, DeadLetter, DeadLetterSource, ReprocessRequest};
use crate::state::AppState;
use serde_json::json;
use tokio::time::Instant;

/// Returns the reprocess results of this invocation, for the operation's record (`queue_track`): the
/// messages it enqueues (split, ID messages, retries) are recorded as its children there.
pub(super) async fn handle(
    state: &AppState,
    request: &ReprocessRequest,
    correlation_id: &CorrelationId,
    invocation: &Invocation,
    source: DeadLetterSource,
    response: &mut InvokeResponse,
) -> Vec<ItemResult> {
    let settings = &state.settings;
    if !settings.drift_detection {
        let record = DeadLetter::work(drift::off_reason(), request.clone(), Vec::new(), source);
        response.enqueue(b::DEAD_LETTER, record.into_texts());
        response.log(drift::off_reason());
        return Vec::new();
    }
    let others = !request.targets.is_empty() || !request.scopes.is_empty();
    let [package] = request.drift_packages.as_slice() else {
        split(request, correlation_id, response);
        return Vec::new();
    };
    if others {
        split(request, correlation_id, response);
        return Vec::new();
    }
    let package = *package;
    let deadline = Instant::now() + settings.queue_budget;
    let services = state.services().await;
    // The catalog scope, checked again before any read (whoever put the message there), as the
    // fan-out's expansion does: a package outside it is dropped with a log line and an audit record.
    if let Some(allowed) = settings.allowed.as_ref() {
        let verdict = check_packages(&services.graph, allowed, &[package], deadline)
            .await
            .remove(0);
        if let Some(reason) = verdict.reason(&package) {
            if verdict.is_transient() && request.attempt + 1 < settings.queue_max_attempts {
                let attempt = request.attempt + 1;
                let retry = ReprocessRequest::drift(package, correlation_id)
                    .with_origin(request.origin.as_ref())
                    .requeued(attempt, None);
                response.enqueue(b::ENQUEUE, retry.to_texts());
                response.log(format!("{reason}; re-enqueued as attempt {attempt}"));
                return Vec::new();
            }
            tracing::warn!(access_package_id = %package, reason = %reason, "drift detection refused: out of scope");
            services.recorder.record(vec![AuditRecord::fan_out_refused(
                invocation,
                &Scope::AccessPackage(package),
                &reason,
            )]);
            response.log(format!("drift detection refused: {reason}"));
            return Vec::new();
        }
    }
    let result = match drift::detect(&services.graph, package, deadline).await {
        Ok(result) => result,
        Err(e) if e.is_transient() && request.attempt + 1 < settings.queue_max_attempts => {
            let attempt = request.attempt + 1;
            let retry = ReprocessRequest::drift(package, correlation_id)
                .with_origin(request.origin.as_ref())
                .requeued(attempt, e.retry_after_seconds());
            response.enqueue(b::ENQUEUE, retry.to_texts());
            response.log(format!(
                "drift detection for {package} failed ({e}); re-enqueued as attempt {attempt}"
            ));
            return Vec::new();
        }
        Err(e) => {
            tracing::error!(access_package_id = %package, correlation_id = %correlation_id, error = %e, "drift detection dead-lettered");
            let mut work = ReprocessRequest::drift(package, correlation_id).with_origin(request.origin.as_ref());
            work.attempt = request.attempt;
            let reason = format!("drift detection for access package {package} failed: {e}");
            response.enqueue(
                b::DEAD_LETTER,
                DeadLetter::work(reason, work, Vec::new(), source).into_texts(),
            );
            response.log(format!("drift detection dead-lettered: {e}"));
            return Vec::new();
        }
    };
    let targets = Targets::from_items(result.drifted_assignments().into_iter().map(Target::Assignment));
    let mut outcomes = serde_json::Map::new();
    let mut enqueued = 0;
    let mut results = Vec::new();
    if targets.len() > settings.http_sync_max_ids {
        let messages = message::id_messages(&targets, correlation_id);
        enqueued = messages.len();
        response.enqueue(
            b::ENQUEUE,
            messages
                .into_iter()
                .map(|m| m.with_origin(request.origin.as_ref()).to_text()),
        );
    } else if !targets.is_empty() {
        let report = services.reprocessor.run(&targets, deadline).await;
        services.recorder.reprocessed(invocation, &report);
        for r in &report.results {
            outcomes.insert(r.id.clone(), json!(r));
        }
        let transient = report.transient_targets();
        if !transient.is_empty() {
            let retry = ReprocessRequest::ids(transient, correlation_id)
                .with_origin(request.origin.as_ref())
                .requeued(1, report.max_retry_after());
            response.enqueue(b::ENQUEUE, retry.to_texts());
        }
        results = report.results;
    }
    let mut body = json!(result);
    if let Some(drifted) = body["drifted"].as_array_mut() {
        for d in drifted {
            let id = d["assignmentId"].as_str().unwrap_or_default().to_owned();
            d["reprocess"] = outcomes
                .get(&id)
                .cloned()
                .unwrap_or_else(|| json!({ "outcome": "enqueued" }));
        }
    }
    tracing::info!(
        access_package_id = %package,
        correlation_id = %correlation_id,
        delivered = result.delivered_assignments,
        drifted = result.drifted.len(),
        not_checked = result.not_checked.len(),
        graph_reads = result.graph_reads,
        result = %body,
        "drift detected"
    );
    response.log(format!(
        "drift {package}: {} delivered assignments checked, {} drifted, {} reprocessed here, {enqueued} messages enqueued, {} roles not checked, {} Graph reads",
        result.delivered_assignments,
        result.drifted.len(),
        outcomes.len(),
        result.not_checked.len(),
        result.graph_reads
    ));
    results
}

/// One message per package, and the rest of the request as its own message.
fn split(request: &ReprocessRequest, correlation_id: &CorrelationId, response: &mut InvokeResponse) {
    let mut messages: Vec<ReprocessRequest> = request
        .drift_packages
        .iter()
        .map(|p| ReprocessRequest::drift(*p, correlation_id).with_origin(request.origin.as_ref()))
        .collect();
    let mut rest = request.clone();
    rest.drift_packages.clear();
    if !rest.targets.is_empty() || !rest.scopes.is_empty() {
        rest.correlation_id = Some(correlation_id.clone());
        messages.push(rest);
    }
    response.enqueue(b::ENQUEUE, messages.iter().flat_map(ReprocessRequest::to_texts));
    response.log(format!(
        "split into {} messages (one per drift package)",
        messages.len()
    ));
}
