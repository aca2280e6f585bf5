//! The queue function's bookkeeping for tracked operations (`crate::operations`): after a message's work
//! is settled, give each message it enqueues its key (derived from this message's key), and record the
//! results, dead letters, listed page and children — children as pending before this message is marked
//! done. A failure to record fails the invocation (non-2xx): the host retries the message, which
//! rewrites the same rows, so the state never claims work that was not confirmed.

use crate::domain::{CorrelationId, Guid, Scope, Target};
use crate::host::EnvelopeError;
use crate::message::DeadLetter;
use crate::operations::{DeadEntry, Recorded};
use crate::state::AppState;
use crate::work::{Meta, Settled, keyed};

pub(super) async fn record(
    state: &AppState,
    meta: &Meta,
    correlation_id: &CorrelationId,
    mut settled: Settled,
) -> Result<Settled, EnvelopeError> {
    let Some(own) = &meta.message_key else {
        return Ok(settled);
    };
    let Some(store) = &state.services().await.operations else {
        return Ok(settled);
    };
    settled.enqueue = keyed(std::mem::take(&mut settled.enqueue), own.as_str());
    let children = settled
        .enqueue
        .iter()
        .filter_map(|m| m.meta.message_key.clone())
        .collect();
    let recorded = Recorded {
        results: &settled.results,
        dead: settled.dead_letters.iter().flat_map(dead_entries).collect(),
        listed: settled.listed.take(),
        children,
    };
    if let Err(e) = store.record(correlation_id, own, &recorded).await {
        tracing::error!(error = %e, correlation_id = %correlation_id, "could not record the operation's progress; the host will retry the message");
        return Err(EnvelopeError::State(e.to_string()));
    }
    Ok(settled)
}

/// The IDs (or listing scope, or drift package) of one dead letter, with its reason.
fn dead_entries(record: &DeadLetter) -> Vec<DeadEntry> {
    let Some(work) = &record.work else {
        return Vec::new();
    };
    let entry = |id: &str, kind: &'static str| DeadEntry {
        id: id.to_owned(),
        kind,
        reason: record.reason.clone(),
    };
    let targets = work.targets.items().iter().map(|t| match t {
        Target::Assignment(id) => entry(id.as_str(), "assignment"),
        Target::AssignmentRequest(id) => entry(id.as_str(), "assignmentRequest"),
    });
    let scopes = work.scopes.iter().map(|s| match s {
        Scope::AccessPackage(id) => entry(id.as_str(), "accessPackage"),
        Scope::User(id) => entry(id.as_str(), "user"),
    });
    let drift = work.drift_packages.iter().map(|p| entry(p.as_str(), "accessPackage"));
    // Only GUIDs reach a row key; every one here was parsed as one.
    drift
        .chain(targets)
        .chain(scopes)
        .filter(|e| Guid::parse(&e.id).is_ok())
        .collect()
}
