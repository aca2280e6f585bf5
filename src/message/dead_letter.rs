//! The record a message (or some of its IDs) becomes on `<queue>-poison`: why, what to re-drive, what
//! Graph last answered, and where it came from. Operators read these, so every field says what it is.

use super::{FieldError, ReprocessRequest, rfc3339};
use crate::domain::ItemResult;
use serde::Serialize;
use time::OffsetDateTime;

/// Where a dead-lettered message came from: the queue trigger's metadata and this invocation.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterSource {
    pub source_queue: String,
    pub message_id: Option<String>,
    pub dequeue_count: Option<u32>,
    pub invocation_id: String,
    pub dead_lettered_at: String,
}

impl DeadLetterSource {
    pub fn now(
        source_queue: &str,
        message_id: Option<String>,
        dequeue_count: Option<u32>,
        invocation_id: &str,
    ) -> Self {
        Self {
            source_queue: source_queue.to_owned(),
            message_id,
            dequeue_count,
            invocation_id: invocation_id.to_owned(),
            dead_lettered_at: rfc3339(OffsetDateTime::now_utc()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub reason: String,
    /// Each refused field of a malformed message.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The message text exactly as it arrived, when it could not be used at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_message: Option<String>,
    /// The work to re-drive, in the queue message form (IDs or one scope with its `nextLink`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub work: Option<ReprocessRequest>,
    /// Graph's last answer for each dead-lettered ID.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<ItemResult>,
    #[serde(flatten)]
    pub source: DeadLetterSource,
}

impl DeadLetter {
    /// A message that could not be used as it is: kept whole, with the reason.
    pub fn unusable(reason: String, errors: Vec<FieldError>, original: &str, source: DeadLetterSource) -> Self {
        Self {
            reason,
            errors,
            original_message: Some(original.to_owned()),
            work: None,
            results: Vec::new(),
            source,
        }
    }

    /// Work to re-drive later, with Graph's last answers for its IDs.
    pub fn work(reason: String, work: ReprocessRequest, results: Vec<ItemResult>, source: DeadLetterSource) -> Self {
        Self {
            reason,
            errors: Vec::new(),
            original_message: None,
            work: Some(work),
            results,
            source,
        }
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a dead letter always serializes")
    }
}
