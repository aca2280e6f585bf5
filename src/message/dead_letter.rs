//! The record a message (or some of its IDs) becomes on `<queue>-poison`: why, what to re-drive, what
//! Graph last answered, and where it came from. Operators read these, so every field says what it is.

use super::fit::{MAX_MESSAGE_TEXT, clip, longest_prefix, sha256_hex, split_to_fit};
use super::{FieldError, Fields, rfc3339};
use crate::domain::outcome::GraphError;
use crate::domain::{ItemResult, Outcome, Targets};
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
    /// The message text exactly as it arrived, when it could not be used at all (a prefix, when the
    /// whole text would not fit a queue message: then `originalMessageTruncated` is set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_message: Option<String>,
    /// Set with the original's length and SHA-256 when `originalMessage` holds only a prefix.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub original_truncated: Option<Truncated>,
    /// The work to re-drive, in the queue message form (IDs or one scope with its `nextLink`).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub work: Option<Fields>,
    /// Graph's last answer for each dead-lettered ID.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<ItemResult>,
    #[serde(flatten)]
    pub source: DeadLetterSource,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Truncated {
    pub original_message_truncated: bool,
    /// Bytes (UTF-8) of the whole original message.
    pub original_message_length: usize,
    pub original_message_sha256: String,
}

/// Longest Graph or caller text kept per field of a record; enough for any real error message.
const MAX_TEXT: usize = 1_024;

impl DeadLetter {
    /// A message that could not be used as it is: kept whole, with the reason.
    pub fn unusable(reason: String, errors: Vec<FieldError>, original: &str, source: DeadLetterSource) -> Self {
        Self {
            reason,
            errors,
            original_message: Some(original.to_owned()),
            original_truncated: None,
            work: None,
            results: Vec::new(),
            source,
        }
    }

    /// Work to re-drive later, with Graph's last answers for its IDs.
    pub fn work(reason: String, work: Fields, results: Vec<ItemResult>, source: DeadLetterSource) -> Self {
        Self {
            reason,
            errors: Vec::new(),
            original_message: None,
            original_truncated: None,
            work: Some(work),
            results,
            source,
        }
    }

    fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a dead letter always serializes")
    }

    /// The record as queue message texts, each at most [`MAX_MESSAGE_TEXT`]: long texts clipped, IDs
    /// split over several records (each ID in exactly one, with its results), and an original message
    /// too large to carry reduced to a prefix plus its length and SHA-256. Nothing is dropped silently.
    pub fn into_texts(mut self) -> Vec<String> {
        self.reason = clip(&self.reason, 4 * MAX_TEXT);
        for e in &mut self.errors {
            e.field = clip(&e.field, 256);
            e.reason = clip(&e.reason, MAX_TEXT);
        }
        for r in &mut self.results {
            clip_result(r);
        }
        let text = self.to_text();
        if text.len() <= MAX_MESSAGE_TEXT {
            return vec![text];
        }
        match &self.work {
            Some(work) if work.targets.len() > 1 => {
                let targets = work.targets.items().to_vec();
                split_to_fit(&targets, &|part| {
                    let mut record = self.clone();
                    let mut work = work.clone();
                    work.targets = Targets::from_items(part.iter().copied());
                    record.results.retain(|r| r.target.is_some_and(|t| part.contains(&t)));
                    record.work = Some(work);
                    record.to_text()
                })
            }
            _ => vec![self.with_original_prefix().to_text()],
        }
    }

    /// Keeps the longest prefix of the original message that lets the record fit.
    fn with_original_prefix(mut self) -> Self {
        let Some(original) = self.original_message.take() else {
            return self;
        };
        self.original_truncated = Some(Truncated {
            original_message_truncated: true,
            original_message_length: original.len(),
            original_message_sha256: sha256_hex(&original),
        });
        let fits = |prefix: &str| {
            let mut probe = self.clone();
            probe.original_message = Some(prefix.to_owned());
            probe.to_text().len() <= MAX_MESSAGE_TEXT
        };
        let keep = longest_prefix(&original, &fits);
        self.original_message = Some(original[..keep].to_owned());
        self
    }
}

fn clip_error(e: &mut GraphError) {
    e.code = clip(&e.code, 128);
    e.message = clip(&e.message, MAX_TEXT);
}

fn clip_result(r: &mut ItemResult) {
    r.graph_request_id = r.graph_request_id.as_deref().map(|id| clip(id, 64));
    match &mut r.outcome {
        Outcome::NotFound { error: Some(e) }
        | Outcome::Rejected { error: e }
        | Outcome::PermissionDenied { error: e, .. } => clip_error(e),
        Outcome::Transient { reason, .. } => *reason = clip(reason, MAX_TEXT),
        Outcome::NotFound { error: None } | Outcome::Accepted | Outcome::OutOfScope { .. } => {}
    }
}

#[cfg(test)]
#[path = "dead_letter_tests.rs"]
mod tests;
