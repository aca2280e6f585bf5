//! The JSON wire form of work, read and written in this one module:
//! - [`ReprocessRequest`]: an HTTP body or a queue message (`assignmentIds`, `accessPackageIds`, …,
//!   `nextLink`, `attempt`, `notBefore`, `correlationId`). [`parse`] reads it; `Serialize` writes it, so
//!   every message the handler enqueues parses back through the same rules (unknown fields refused).
//! - [`Plan`]: the messages an HTTP call, an alert or a multi-scope message hands to the queue.
//! - [`DeadLetter`]: the record a message or ID becomes on `<queue>-poison`.
//! - [`accepted`]: the 202 bodies that tell a caller what was enqueued.
//! - [`fit`]: every text written fits one queue message (48 KiB before base64), split or clipped if not.
//!
//! Field names avoid the host's queue metadata keys (`Id`, `DequeueCount`, `InsertionTime`, …): the host
//! copies a JSON message's top-level properties over those keys (`Utility.ApplyBindingData`). Messages
//! go out as elements of an array output (`host::InvokeResponse::enqueue`), never as a top-level string
//! the host could mistake for base64.

pub mod accepted;
mod dead_letter;
pub mod fit;
mod parse;

pub use dead_letter::{DeadLetter, DeadLetterSource};
pub use parse::{FieldError, MAX_LISTED_FIELD_ERRORS, RequestError, parse_json_request, parse_queue_message};

use crate::domain::heal::HealListing;
use crate::domain::{AccessPackageId, Caller, CorrelationId, MessageKey, Scope, Target, TargetKind, Targets};
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// IDs per reprocess message: one Graph `$batch`, small enough to finish quickly even when throttled.
pub const IDS_PER_MESSAGE: usize = 20;

/// Longest a re-enqueued message waits for its `notBefore` inside one invocation, and the longest
/// wait between queue attempts.
pub const MAX_NOT_BEFORE_WAIT: Duration = Duration::from_secs(120);

/// The JSON field names, for the parser and the writer alike.
pub(crate) mod field {
    pub const ASSIGNMENT_IDS: &str = "assignmentIds";
    pub const ASSIGNMENT_ID: &str = "assignmentId";
    pub const ASSIGNMENT_REQUEST_IDS: &str = "assignmentRequestIds";
    pub const ASSIGNMENT_REQUEST_ID: &str = "assignmentRequestId";
    pub const ACCESS_PACKAGE_IDS: &str = "accessPackageIds";
    pub const ACCESS_PACKAGE_ID: &str = "accessPackageId";
    pub const USER_IDS: &str = "userIds";
    pub const USER_ID: &str = "userId";
    pub const DRY_RUN: &str = "dryRun";
    pub const NEXT_LINK: &str = "nextLink";
    pub const ATTEMPT: &str = "attempt";
    pub const NOT_BEFORE: &str = "notBefore";
    pub const CORRELATION_ID: &str = "correlationId";
    /// Who asked (`domain::Caller`), carried from the HTTP call or alert through every queue message.
    pub const ORIGIN: &str = "origin";
    pub const MESSAGE_KEY: &str = "messageKey";
    /// `{"detectDriftFor":{"accessPackageIds":[…]}}`: drift detection for these packages (`crate::drift`).
    pub const DETECT_DRIFT_FOR: &str = "detectDriftFor";
    /// `{"heal":"requests:deliveryFailed"}`: one listing of the scheduled heal, resumed at `nextLink`.
    pub const HEAL: &str = "heal";

    /// Everything the JSON forms accept; anything else is refused so a typo is not silently ignored.
    pub const KNOWN_FIELDS: &[&str] = &[
        ASSIGNMENT_IDS,
        ASSIGNMENT_REQUEST_IDS,
        ASSIGNMENT_ID,
        ASSIGNMENT_REQUEST_ID,
        ACCESS_PACKAGE_IDS,
        ACCESS_PACKAGE_ID,
        USER_IDS,
        USER_ID,
        DRY_RUN,
        NEXT_LINK,
        ATTEMPT,
        NOT_BEFORE,
        CORRELATION_ID,
        ORIGIN,
        MESSAGE_KEY,
        DETECT_DRIFT_FOR,
        HEAL,
    ];
}

/// The list field a scope is named in (`accessPackageIds` / `userIds`).
pub fn scope_field(scope: &Scope) -> &'static str {
    match scope {
        Scope::AccessPackage(_) => field::ACCESS_PACKAGE_IDS,
        Scope::User(_) => field::USER_IDS,
    }
}

/// An HTTP body or a queue message: what to reprocess or expand, and the queue's bookkeeping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReprocessRequest {
    pub targets: Targets,
    /// Packages and users to expand into assignment IDs, in the order first seen, without duplicates.
    pub scopes: Vec<Scope>,
    /// Report what would be reprocessed and reprocess nothing (HTTP only).
    pub dry_run: bool,
    /// Where to resume listing a single scope (a Graph `@odata.nextLink`, checked by `graph::paths`).
    pub next_link: Option<String>,
    /// How many times this work has been attempted before (queue re-enqueue bookkeeping).
    pub attempt: u32,
    /// Time before which a re-enqueued message should not be worked on.
    pub not_before: Option<OffsetDateTime>,
    /// Carried through every message of one request so its logs can be joined.
    pub correlation_id: Option<CorrelationId>,
    /// Who asked, carried through every message of one request for the audit records (queue only:
    /// an HTTP call's caller is read from the call itself).
    pub origin: Option<Caller>,
    /// This message's key in its operation's state (`crate::operations`); set by the handler on the
    /// messages it enqueues for a tracked operation, absent on messages put on the queue by hand.
    pub message_key: Option<MessageKey>,
    /// Packages to check for drift (`detectDriftFor.accessPackageIds`), without duplicates.
    pub drift_packages: Vec<AccessPackageId>,
    /// A heal listing (timer continuation messages only).
    pub heal: Option<HealListing>,
}

impl ReprocessRequest {
    /// A message carrying reprocess targets (at most [`IDS_PER_MESSAGE`] when built by [`Plan`]).
    pub fn ids(targets: impl IntoIterator<Item = Target>, correlation_id: &CorrelationId) -> Self {
        Self {
            targets: Targets::from_items(targets),
            correlation_id: Some(correlation_id.clone()),
            ..Self::default()
        }
    }

    /// An expansion message for one scope, from the start or resuming at Graph's `nextLink`.
    pub fn expansion(scope: Scope, next_link: Option<&str>, correlation_id: &CorrelationId) -> Self {
        Self {
            scopes: vec![scope],
            next_link: next_link.map(str::to_owned),
            correlation_id: Some(correlation_id.clone()),
            ..Self::default()
        }
    }

    /// The same message, carrying who asked.
    pub fn with_origin(mut self, origin: Option<&Caller>) -> Self {
        self.origin = origin.cloned();
        self
    }

    /// A drift-detection message for one package.
    pub fn drift(package: AccessPackageId, correlation_id: &CorrelationId) -> Self {
        Self {
            drift_packages: vec![package],
            correlation_id: Some(correlation_id.clone()),
            ..Self::default()
        }
    }

    /// A heal listing message, from the start or resuming at Graph's `nextLink`.
    pub fn heal(listing: HealListing, next_link: Option<&str>, correlation_id: &CorrelationId) -> Self {
        Self {
            heal: Some(listing),
            next_link: next_link.map(str::to_owned),
            correlation_id: Some(correlation_id.clone()),
            ..Self::default()
        }
    }

    /// The same work as attempt `attempt`, not to be started before the queue's back-off for that
    /// attempt (or Graph's `Retry-After`, if longer) has passed.
    pub fn requeued(mut self, attempt: u32, retry_after_seconds: Option<u64>) -> Self {
        self.attempt = attempt;
        self.not_before = Some(OffsetDateTime::now_utc() + requeue_delay(attempt, retry_after_seconds));
        self
    }

    /// The message text, as it goes on the queue.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a message always serializes")
    }

    /// The message as texts that each fit a queue message: one text unless its IDs must be split
    /// (every ID in exactly one text, the rest of the message repeated in each).
    pub fn to_texts(&self) -> Vec<String> {
        let targets = self.targets.items().to_vec();
        fit::split_to_fit(&targets, &|part| {
            let mut message = self.clone();
            message.targets = Targets::from_items(part.iter().copied());
            message.to_text()
        })
    }
}

impl Serialize for ReprocessRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let by_kind = |kind: TargetKind| -> Vec<&str> {
            self.targets
                .items()
                .iter()
                .filter(|t| t.kind() == kind)
                .map(Target::id)
                .collect()
        };
        let scopes = |f: &str| -> Vec<&str> {
            self.scopes
                .iter()
                .filter(|s| scope_field(s) == f)
                .map(Scope::id)
                .collect()
        };
        let mut map = serializer.serialize_map(None)?;
        for (name, ids) in [
            (field::ASSIGNMENT_IDS, by_kind(TargetKind::Assignment)),
            (field::ASSIGNMENT_REQUEST_IDS, by_kind(TargetKind::AssignmentRequest)),
            (field::ACCESS_PACKAGE_IDS, scopes(field::ACCESS_PACKAGE_IDS)),
            (field::USER_IDS, scopes(field::USER_IDS)),
        ] {
            if !ids.is_empty() {
                map.serialize_entry(name, &ids)?;
            }
        }
        if !self.drift_packages.is_empty() {
            let ids: Vec<&str> = self.drift_packages.iter().map(AccessPackageId::as_str).collect();
            map.serialize_entry(
                field::DETECT_DRIFT_FOR,
                &serde_json::json!({ field::ACCESS_PACKAGE_IDS: ids }),
            )?;
        }
        if let Some(listing) = &self.heal {
            map.serialize_entry(field::HEAL, &listing.name())?;
        }
        if let Some(link) = &self.next_link {
            map.serialize_entry(field::NEXT_LINK, link)?;
        }
        if self.attempt > 0 {
            map.serialize_entry(field::ATTEMPT, &self.attempt)?;
        }
        if let Some(at) = self.not_before {
            map.serialize_entry(field::NOT_BEFORE, &rfc3339(at))?;
        }
        if let Some(id) = &self.correlation_id {
            map.serialize_entry(field::CORRELATION_ID, id)?;
        }
        if let Some(key) = &self.message_key {
            map.serialize_entry(field::MESSAGE_KEY, key)?;
        }
        if self.dry_run {
            map.serialize_entry(field::DRY_RUN, &true)?;
        }
        if let Some(origin) = &self.origin {
            map.serialize_entry(field::ORIGIN, origin)?;
        }
        map.end()
    }
}

/// Waits between queue attempts: 2 s, then 10 s, 20 s, 40 s … capped at 120 s, or Graph's Retry-After if
/// longer. The first is short: the invocation already retried each ID `GRAPH_MAX_ATTEMPTS` times, and IDs
/// left over from scattered faults would otherwise hold the end of a batch job for 10 s; if Graph is in
/// real trouble, the next waits spread out.
pub fn requeue_delay(attempt: u32, retry_after_seconds: Option<u64>) -> Duration {
    let ours = if attempt <= 1 {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(10u64.saturating_mul(1 << (attempt - 2).min(4))).min(MAX_NOT_BEFORE_WAIT)
    };
    ours.max(Duration::from_secs(retry_after_seconds.unwrap_or(0)))
        .min(MAX_NOT_BEFORE_WAIT)
}

/// Messages of at most [`IDS_PER_MESSAGE`] targets each.
pub fn id_messages(targets: &Targets, correlation_id: &CorrelationId) -> Vec<ReprocessRequest> {
    targets
        .items()
        .chunks(IDS_PER_MESSAGE)
        .map(|chunk| ReprocessRequest::ids(chunk.iter().copied(), correlation_id))
        .collect()
}

/// Everything an HTTP call, an alert or a multi-scope message hands to the queue: one expansion
/// message per scope (listed page by page later), then the direct IDs in chunks.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub expansion_messages: Vec<ReprocessRequest>,
    pub id_messages: Vec<ReprocessRequest>,
}

impl Plan {
    pub fn new(targets: &Targets, scopes: &[Scope], correlation_id: &CorrelationId) -> Self {
        Self {
            expansion_messages: scopes
                .iter()
                .map(|s| ReprocessRequest::expansion(*s, None, correlation_id))
                .collect(),
            id_messages: id_messages(targets, correlation_id),
        }
    }
    /// Every message carrying who asked.
    pub fn with_origin(mut self, origin: Option<&Caller>) -> Self {
        for m in self.expansion_messages.iter_mut().chain(&mut self.id_messages) {
            m.origin = origin.cloned();
        }
        self
    }

    pub fn messages(&self) -> impl Iterator<Item = &ReprocessRequest> {
        self.expansion_messages.iter().chain(&self.id_messages)
    }
    /// The message texts, in the order they are enqueued.
    pub fn texts(&self) -> impl Iterator<Item = String> + '_ {
        self.messages().map(ReprocessRequest::to_text)
    }
    pub fn len(&self) -> usize {
        self.expansion_messages.len() + self.id_messages.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Each message text with its `messageKey` (derived from `parent` and its position), for a tracked
/// operation. Texts are the JSON objects this module writes; [`fit::split_to_fit`] leaves room for the key.
pub fn with_message_keys(texts: impl IntoIterator<Item = String>, parent: &str) -> Vec<(MessageKey, String)> {
    texts
        .into_iter()
        .enumerate()
        .map(|(index, text)| {
            let key = MessageKey::derive(parent, index);
            let text = match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(serde_json::Value::Object(mut map)) => {
                    map.insert(field::MESSAGE_KEY.into(), serde_json::json!(key.as_str()));
                    serde_json::Value::Object(map).to_string()
                }
                _ => text,
            };
            (key, text)
        })
        .collect()
}

/// RFC 3339 in whole seconds, as `notBefore` and `deadLetteredAt` are written.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0)
        .unwrap_or(t)
        .format(&Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccessPackageId, AssignmentId, AssignmentRequestId};
    use serde_json::Value;

    fn ids(n: usize) -> Targets {
        Targets::from_items((0..n).map(|i| {
            let id = format!("b0b0b0b0-0000-4000-8000-{:012x}", i + 1);
            if i % 5 == 4 {
                Target::AssignmentRequest(AssignmentRequestId::parse(&id).unwrap())
            } else {
                Target::Assignment(AssignmentId::parse(&id).unwrap())
            }
        }))
    }

    fn correlation() -> CorrelationId {
        CorrelationId::parse("c").unwrap()
    }

    #[test]
    fn chunks_hold_at_most_twenty_ids_and_lose_none() {
        let targets = ids(45);
        let messages = id_messages(&targets, &correlation());
        assert_eq!(messages.len(), 3);
        let mut seen = Vec::new();
        for m in &messages {
            let v: Value = serde_json::from_str(&m.to_text()).unwrap();
            let n = [field::ASSIGNMENT_IDS, field::ASSIGNMENT_REQUEST_IDS]
                .iter()
                .map(|k| v[k].as_array().map_or(0, Vec::len))
                .sum::<usize>();
            assert!(n <= IDS_PER_MESSAGE);
            assert_eq!(v["correlationId"], "c");
            // Each chunk parses back as the same targets (grouped by kind on the wire).
            let parsed = parse_queue_message(&m.to_text(), 1000).unwrap();
            let mut sent = m.targets.items().to_vec();
            let mut back = parsed.targets.items().to_vec();
            sent.sort_by_key(|t| t.id().to_owned());
            back.sort_by_key(|t| t.id().to_owned());
            assert_eq!(sent, back);
            assert_eq!(parsed.correlation_id, m.correlation_id);
            seen.extend(parsed.targets.items().iter().map(|t| t.id().to_owned()));
        }
        seen.sort();
        let mut want: Vec<String> = targets.items().iter().map(|t| t.id().to_owned()).collect();
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn expansion_messages_round_trip() {
        let scope = Scope::AccessPackage(AccessPackageId::parse("9a1d6e2c-3b4f-4c5d-8e6f-7a8b9c0d1e2f").unwrap());
        let message = ReprocessRequest::expansion(scope, Some("https://graph.microsoft.com/x"), &correlation())
            .requeued(2, Some(30));
        let parsed = parse_queue_message(&message.to_text(), 1000).unwrap();
        assert_eq!(parsed.scopes, [scope]);
        assert_eq!(parsed.next_link.as_deref(), Some("https://graph.microsoft.com/x"));
        assert_eq!(parsed.attempt, 2);
        let wait = parsed.not_before.unwrap() - OffsetDateTime::now_utc();
        assert!(
            wait > time::Duration::seconds(25) && wait <= time::Duration::seconds(30),
            "{wait}"
        );
    }

    #[test]
    fn message_keys_are_deterministic_per_parent_and_position() {
        let texts = || {
            vec![
                ReprocessRequest::ids([], &correlation()).to_text(),
                ReprocessRequest::ids([], &correlation()).to_text(),
            ]
        };
        let first = with_message_keys(texts(), "parent");
        let again = with_message_keys(texts(), "parent");
        assert_eq!(first, again, "a redelivery makes the same keys");
        assert_ne!(first[0].0, first[1].0, "siblings differ");
        assert_ne!(first[0].0, with_message_keys(texts(), "other")[0].0);
        for (key, text) in &first {
            assert!(MessageKey::parse(key.as_str()).is_some());
            let parsed = parse_queue_message(text, 1000);
            // An empty ID list is refused, but the key itself parses: the only error is "no IDs".
            assert!(matches!(parsed, Err(RequestError::NoTargets)), "{parsed:?}");
            let v: Value = serde_json::from_str(text).unwrap();
            assert_eq!(v["messageKey"], key.as_str());
        }
        assert!(MessageKey::parse("ABCDEF000000000000000000").is_none());
        assert!(MessageKey::parse("abc").is_none());
    }

    #[test]
    fn requeue_delays_double_and_honour_retry_after() {
        let secs = |attempt, retry_after| requeue_delay(attempt, retry_after).as_secs();
        assert_eq!(
            [
                secs(1, None),
                secs(2, None),
                secs(3, None),
                secs(4, None),
                secs(5, None)
            ],
            [2, 10, 20, 40, 80]
        );
        assert_eq!(secs(9, None), 120);
        assert_eq!(secs(1, Some(45)), 45);
        assert_eq!(secs(1, Some(4_000)), 120);
    }
}
