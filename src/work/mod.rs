//! Work: what one queue message asks for, as one typed enum, and how each kind runs.
//!
//! Each kind lives in its own file with its parse (from the message's [`Fields`]), its write (back to
//! them) and its run: [`reprocess`] IDs, [`expand`] one access package or user page by page, [`drift`]
//! detection for one package, one [`heal`] listing page, and [`split`] for a message naming several of
//! these (no Graph call: one message per kind). Running returns a [`Step`]; [`settle`] applies the one
//! rule every kind shares (transient and attempts left → re-enqueue with `attempt`/`notBefore`, else
//! dead-letter with the reason) and turns the step into typed messages and dead letters. Messages stay
//! typed ([`QueueMessage`]) until the trigger function writes them.

pub mod drift;
pub mod expand;
pub mod heal;
pub mod reprocess;
mod settle;
pub mod split;

pub use settle::{Settled, settle};

use crate::audit::Invocation;
use crate::config::Settings;
use crate::domain::heal::HealListing;
use crate::domain::{AccessPackageId, AllowedScope, CorrelationId, ItemResult, MessageKey, Scope, Targets};
pub use crate::message::Meta;
use crate::message::fit::{MAX_MESSAGE_TEXT, MESSAGE_KEY_ROOM, split_parts};
use crate::message::{FieldError, Fields, MAX_NOT_BEFORE_WAIT, RequestError, field, requeue_delay};
use crate::operations::ListedPage;
use crate::state::Services;
use time::OffsetDateTime;
use tokio::time::Instant;

/// One kind of work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// Reprocess these assignments and assignment requests.
    Reprocess(Targets),
    /// List one page of a package's or user's delivered assignments (from the start or `next_link`).
    Expand { scope: Scope, next_link: Option<String> },
    /// Detect drift in one package's delivered assignments and reprocess the drifted ones.
    Drift(AccessPackageId),
    /// One page of a scheduled heal listing.
    Heal {
        listing: HealListing,
        next_link: Option<String>,
    },
    /// Several of the above in one message: split into one message each.
    Split(split::Split),
}

/// A queue message: one kind of work and its bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub work: Work,
    pub meta: Meta,
}

impl Work {
    /// The kind a parsed message names. `dryRun` is refused: nobody reads a queue message's answer.
    pub fn from_fields(fields: Fields) -> Result<(Work, Meta), RequestError> {
        if fields.dry_run {
            return Err(RequestError::fields(vec![FieldError {
                field: field::DRY_RUN.into(),
                reason: "dryRun is only for HTTP calls: nobody reads a queue message's answer".into(),
            }]));
        }
        let meta = fields.meta.clone();
        let work = heal::parse(&fields)
            .or_else(|| drift::parse(&fields))
            .or_else(|| expand::parse(&fields))
            .or_else(|| reprocess::parse(&fields))
            .unwrap_or_else(|| Work::Split(split::parse(fields)));
        Ok((work, meta))
    }

    /// The fields that name this work on the wire.
    pub fn to_fields(&self) -> Fields {
        match self {
            Work::Reprocess(targets) => reprocess::write(targets),
            Work::Expand { scope, next_link } => expand::write(*scope, next_link.as_deref()),
            Work::Drift(package) => drift::write(*package),
            Work::Heal { listing, next_link } => heal::write(*listing, next_link.as_deref()),
            Work::Split(split) => split.write(),
        }
    }

    /// Runs the work within `ctx`'s deadline.
    pub async fn run(self, ctx: &Ctx<'_>) -> Step {
        match self {
            Work::Reprocess(targets) => reprocess::run(ctx, targets).await,
            Work::Expand { scope, next_link } => expand::run(ctx, scope, next_link).await,
            Work::Drift(package) => drift::run(ctx, package).await,
            Work::Heal { listing, next_link } => heal::run(ctx, listing, next_link).await,
            Work::Split(split) => split.run(),
        }
    }
}

impl QueueMessage {
    /// A message for new work with the same correlation and caller as `meta`, at its first attempt.
    pub fn child(work: Work, meta: &Meta) -> Self {
        Self {
            work,
            meta: Meta {
                correlation_id: meta.correlation_id.clone(),
                origin: meta.origin.clone(),
                scope: meta.scope.clone(),
                ..Meta::default()
            },
        }
    }

    /// Reads a queue message's text: a bare assignment ID or the JSON object form.
    pub fn parse(text: &str, max_ids: usize) -> Result<Self, RequestError> {
        let fields = crate::message::parse_queue_message(text, max_ids)?;
        let (work, meta) = Work::from_fields(fields)?;
        Ok(Self { work, meta })
    }

    /// The same work as attempt `attempt`, not before the queue's back-off (or Graph's `Retry-After`).
    pub fn requeued(mut self, attempt: u32, retry_after_seconds: Option<u64>) -> Self {
        self.meta.attempt = attempt;
        self.meta.not_before = Some(OffsetDateTime::now_utc() + requeue_delay(attempt, retry_after_seconds));
        self
    }

    /// The wire form.
    pub fn to_fields(&self) -> Fields {
        Fields {
            meta: self.meta.clone(),
            ..self.work.to_fields()
        }
    }

    pub fn to_text(&self) -> String {
        self.to_fields().to_text()
    }

    /// The message as messages that each fit one queue message with room left for a `messageKey`: one
    /// unless its IDs must be split (every ID in exactly one, the rest of the message repeated).
    pub fn fitted(self) -> Vec<QueueMessage> {
        let Work::Reprocess(targets) = &self.work else {
            return vec![self];
        };
        let items = targets.items();
        let with = |part: &[crate::domain::Target]| QueueMessage {
            work: Work::Reprocess(Targets::from_items(part.iter().copied())),
            meta: self.meta.clone(),
        };
        let fits = |part: &[crate::domain::Target]| with(part).to_text().len() <= MAX_MESSAGE_TEXT - MESSAGE_KEY_ROOM;
        split_parts(items, &fits).into_iter().map(with).collect()
    }

    /// How long this message must still wait for its `notBefore`, or why it cannot be used: the handler
    /// never writes a `notBefore` more than [`MAX_NOT_BEFORE_WAIT`] ahead, so a later one is refused
    /// instead of holding an invocation slot.
    pub fn wait_before_start(&self, now: OffsetDateTime) -> Result<std::time::Duration, RequestError> {
        let Some(not_before) = self.meta.not_before else {
            return Ok(std::time::Duration::ZERO);
        };
        let ahead = std::time::Duration::try_from(not_before - now).unwrap_or_default();
        // A little clock skew between instances is tolerated.
        if ahead > MAX_NOT_BEFORE_WAIT + std::time::Duration::from_secs(30) {
            return Err(RequestError::fields(vec![FieldError {
                field: field::NOT_BEFORE.into(),
                reason: format!(
                    "is {} s ahead; the handler writes at most {} s ahead, so this message was not written by it",
                    ahead.as_secs(),
                    MAX_NOT_BEFORE_WAIT.as_secs()
                ),
            }]));
        }
        Ok(ahead.min(MAX_NOT_BEFORE_WAIT))
    }
}

/// Each message with its `messageKey`, derived from `parent` (the enqueuing message's key, or the
/// invocation ID) and its position, so a redelivery makes the same keys (`crate::operations`).
pub fn keyed(messages: Vec<QueueMessage>, parent: &str) -> Vec<QueueMessage> {
    messages
        .into_iter()
        .enumerate()
        .map(|(index, mut message)| {
            message.meta.message_key = Some(MessageKey::derive(parent, index));
            message
        })
        .collect()
}

/// Messages of at most [`crate::message::IDS_PER_MESSAGE`] targets each.
pub fn id_chunks(targets: &Targets) -> Vec<Work> {
    targets
        .items()
        .chunks(crate::message::IDS_PER_MESSAGE)
        .map(|chunk| Work::Reprocess(Targets::from_items(chunk.iter().copied())))
        .collect()
}

/// Everything a call naming packages, users and IDs hands to the queue: one expansion per scope
/// (listed page by page later), then the direct IDs in chunks.
pub fn plan(targets: &Targets, scopes: &[Scope]) -> Vec<Work> {
    scopes
        .iter()
        .map(|scope| Work::Expand {
            scope: *scope,
            next_link: None,
        })
        .chain(id_chunks(targets))
        .collect()
}

/// What a piece of work runs with.
pub struct Ctx<'a> {
    pub settings: &'a Settings,
    pub services: &'a Services,
    /// Graph at the work's priority: `services.background` for queue and timer work, the normal one
    /// when a caller waits for the answer.
    pub graph: &'a crate::graph::GraphClient,
    pub reprocessor: &'a crate::reprocess::Reprocessor,
    pub deadline: Instant,
    pub correlation_id: &'a CorrelationId,
    /// The invocation and caller, for audit records.
    pub invocation: &'a Invocation,
    /// The scope this work runs in: the deployment's, narrowed by the caller's (`None`: everything).
    pub allowed: Option<&'a AllowedScope>,
}

/// What running one piece of work produced, before the shared rules turn it into queue outputs.
#[derive(Debug, Default)]
pub struct Step {
    /// Per-ID results (final or transient), for the operation's record.
    pub results: Vec<ItemResult>,
    /// New work to enqueue now.
    pub next: Vec<Next>,
    /// This work, or what is left of it, failed transiently: retried or dead-lettered by [`settle`].
    pub again: Option<Again>,
    /// Work that cannot succeed as it is: dead-lettered at once with the reason.
    pub refused: Vec<Refused>,
    /// The page this work listed, for the operation's record.
    pub listed: Option<ListedPage>,
    /// Lines for the host's `Logs`.
    pub logs: Vec<String>,
}

/// New work, enqueued now, or as a retry of its own (attempt 1 after the queue's first back-off).
#[derive(Debug)]
pub struct Next {
    pub work: Work,
    /// `Some(retry_after)` when this is transient work handed on to the queue's retries.
    pub retry: Option<Option<u64>>,
}

impl Next {
    pub fn now(work: Work) -> Self {
        Self { work, retry: None }
    }
    pub fn retry(work: Work, retry_after: Option<u64>) -> Self {
        Self {
            work,
            retry: Some(retry_after),
        }
    }
}

/// Transient failure of (part of) the work.
#[derive(Debug)]
pub struct Again {
    pub work: Work,
    pub reason: String,
    pub retry_after: Option<u64>,
    /// Graph's last answers for the work's IDs, for a dead letter.
    pub results: Vec<ItemResult>,
}

/// Work dead-lettered at once.
#[derive(Debug)]
pub struct Refused {
    pub work: Work,
    pub reason: String,
    pub results: Vec<ItemResult>,
}

impl Step {
    pub fn log(&mut self, line: impl Into<String>) {
        self.logs.push(line.into());
    }

    pub fn refused(work: Work, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self {
            logs: vec![format!("dead-lettered: {reason}")],
            refused: vec![Refused {
                work,
                reason,
                results: Vec::new(),
            }],
            ..Self::default()
        }
    }

    pub fn again(work: Work, reason: impl Into<String>, retry_after: Option<u64>) -> Self {
        Self {
            again: Some(Again {
                work,
                reason: reason.into(),
                retry_after,
                results: Vec::new(),
            }),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests;
