//! The one rule every kind of work shares, applied after it ran:
//! - new work goes out as messages with the same correlation ID and caller;
//! - work that failed transiently is re-enqueued as the next attempt, not before the queue's back-off
//!   (or Graph's `Retry-After`, if longer), until `QUEUE_MAX_ATTEMPTS`; then it is dead-lettered with
//!   the reason and Graph's last answers;
//! - refused work is dead-lettered at once with the reason;
//! - every message and dead letter fits a queue message (split, never lost).

use super::{Meta, QueueMessage, Step};
use crate::domain::ItemResult;
use crate::message::{DeadLetter, DeadLetterSource};

/// A step's queue outputs, still typed.
#[derive(Debug, Default)]
pub struct Settled {
    pub enqueue: Vec<QueueMessage>,
    pub dead_letters: Vec<DeadLetter>,
    pub results: Vec<ItemResult>,
    pub listed: Option<crate::operations::ListedPage>,
    pub logs: Vec<String>,
}

/// Applies the retry and dead-letter rule to what one message's work produced.
pub fn settle(step: Step, meta: &Meta, max_attempts: u32, source: &DeadLetterSource) -> Settled {
    let mut out = Settled {
        results: step.results,
        listed: step.listed,
        logs: step.logs,
        ..Settled::default()
    };
    let dead = |work: &super::Work, reason: String, results: Vec<ItemResult>| {
        let mut message = QueueMessage::child(work.clone(), meta);
        message.meta.attempt = meta.attempt;
        DeadLetter::work(reason, message.to_fields(), results, source.clone())
    };
    for next in step.next {
        let message = QueueMessage::child(next.work, meta);
        out.enqueue.push(match next.retry {
            Some(retry_after) => message.requeued(1, retry_after),
            None => message,
        });
    }
    if let Some(again) = step.again {
        let attempt = meta.attempt + 1;
        if attempt < max_attempts {
            let retry = QueueMessage::child(again.work, meta).requeued(attempt, again.retry_after);
            out.logs.push(format!(
                "{}; re-enqueued as attempt {attempt}, not before {}",
                again.reason,
                retry.meta.not_before.map(crate::message::rfc3339).unwrap_or_default()
            ));
            out.enqueue.push(retry);
        } else {
            let reason = format!(
                "{}; still transient after {attempt} attempts (QUEUE_MAX_ATTEMPTS)",
                again.reason
            );
            out.logs.push(format!("dead-lettered: {reason}"));
            out.dead_letters.push(dead(&again.work, reason, again.results));
        }
    }
    for refused in step.refused {
        out.dead_letters
            .push(dead(&refused.work, refused.reason, refused.results));
    }
    out.enqueue = out.enqueue.into_iter().flat_map(QueueMessage::fitted).collect();
    out
}
