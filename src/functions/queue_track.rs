//! The queue function's bookkeeping for tracked operations (`crate::operations`): after a message's work
//! is done and its outputs are built, give each enqueued message its key (derived from this message's
//! key), and record the results, dead letters, listed page and children — children as pending before
//! this message is marked done. A failure to record fails the invocation (non-2xx): the host retries the
//! message, which rewrites the same rows, so the state never claims work that was not confirmed.

use super::bindings::queue as b;
use crate::domain::{CorrelationId, ItemResult, MessageKey};
use crate::host::{EnvelopeError, InvokeResponse};
use crate::message::{ReprocessRequest, with_message_keys};
use crate::operations::{DeadEntry, ListedPage, Recorded};
use crate::state::AppState;
use serde_json::Value;

/// What a queue invocation did, to record when its message belongs to a tracked operation.
#[derive(Debug)]
pub struct Done {
    pub message_key: Option<MessageKey>,
    pub correlation_id: CorrelationId,
    pub results: Vec<ItemResult>,
    pub listed: Option<ListedPage>,
}

impl Done {
    pub fn new(request: &ReprocessRequest, correlation_id: &CorrelationId) -> Self {
        Self {
            message_key: request.message_key.clone(),
            correlation_id: correlation_id.clone(),
            results: Vec::new(),
            listed: None,
        }
    }
}

pub async fn record(state: &AppState, done: Done, response: &mut InvokeResponse) -> Result<(), EnvelopeError> {
    let Some(own) = done.message_key else {
        return Ok(());
    };
    let Some(store) = &state.services().await.operations else {
        return Ok(());
    };
    let texts = take_strings(response, b::ENQUEUE);
    let keyed = with_message_keys(texts, own.as_str());
    let children: Vec<MessageKey> = keyed.iter().map(|(k, _)| k.clone()).collect();
    let dead = response
        .outputs
        .get(b::DEAD_LETTER)
        .and_then(Value::as_array)
        .map(|texts| texts.iter().filter_map(Value::as_str).flat_map(dead_entries).collect())
        .unwrap_or_default();
    let recorded = Recorded {
        results: &done.results,
        dead,
        listed: done.listed,
        children,
    };
    if let Err(e) = store.record(&done.correlation_id, &own, &recorded).await {
        tracing::error!(error = %e, correlation_id = %done.correlation_id, "could not record the operation's progress; the host will retry the message");
        return Err(EnvelopeError::State(e.to_string()));
    }
    response.enqueue(b::ENQUEUE, keyed.into_iter().map(|(_, t)| t));
    Ok(())
}

fn take_strings(response: &mut InvokeResponse, binding: &str) -> Vec<String> {
    match response.outputs.remove(binding) {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The IDs (or listing scope) of one dead-letter record, with its reason.
fn dead_entries(text: &str) -> Vec<DeadEntry> {
    let Ok(record) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    let reason = record["reason"].as_str().unwrap_or("").to_owned();
    let mut entries = Vec::new();
    // A dead-lettered drift message names its package under `detectDriftFor`.
    let drift = &record["detectDriftFor"]["accessPackageIds"];
    for id in drift.as_array().into_iter().flatten().filter_map(Value::as_str) {
        if crate::domain::Guid::parse(id).is_ok() {
            entries.push(DeadEntry {
                id: id.to_owned(),
                kind: "accessPackage",
                reason: reason.clone(),
            });
        }
    }
    for (field, kind) in [
        ("assignmentIds", "assignment"),
        ("assignmentRequestIds", "assignmentRequest"),
        ("accessPackageIds", "accessPackage"),
        ("userIds", "user"),
    ] {
        for id in record[field].as_array().into_iter().flatten().filter_map(Value::as_str) {
            // Only GUIDs reach a row key.
            if crate::domain::Guid::parse(id).is_ok() {
                entries.push(DeadEntry {
                    id: id.to_owned(),
                    kind,
                    reason: reason.clone(),
                });
            }
        }
    }
    entries
}
