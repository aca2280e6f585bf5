//! The JSON wire form of work, read and written in this one module:
//! - [`Fields`]: every field a JSON body or queue message may carry, each parsed to its type
//!   ([`parse_queue_message`]); `Serialize` writes it back, so every message the handler enqueues parses
//!   again through the same rules (unknown fields refused). `crate::work` turns it into typed work.
//! - [`HttpBody`]: an HTTP body ([`parse_http_body`]): only the fields a caller may send; a queue-only
//!   field is refused with a 400 that names it.
//! - [`DeadLetter`]: the record a message or ID becomes on `<queue>-poison`.
//! - [`fit`]: every text written fits one queue message (48 KiB before base64), split or clipped if not.
//!
//! Field names avoid the host's queue metadata keys (`Id`, `DequeueCount`, `InsertionTime`, …): the host
//! copies a JSON message's top-level properties over those keys (`Utility.ApplyBindingData`). Messages
//! go out as elements of an array output (`host::InvokeResponse::enqueue`), never as a top-level string
//! the host could mistake for base64.

mod dead_letter;
pub mod fit;
mod parse;

pub use dead_letter::{DeadLetter, DeadLetterSource};
pub use parse::{
    FieldError, HttpBody, MAX_LISTED_FIELD_ERRORS, RequestError, parse_http_body, parse_json_request,
    parse_queue_message,
};

use crate::domain::heal::HealListing;
use crate::domain::{
    AccessPackageId, AllowedScope, Caller, CorrelationId, MessageKey, Scope, ScopeLists, Target, TargetKind, Targets,
};
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// IDs per reprocess message: one Graph `$batch`, small enough to finish quickly even when throttled.
pub const IDS_PER_MESSAGE: usize = 20;

/// Longest a re-enqueued message waits for its `notBefore` inside one invocation, and the longest
/// wait between queue attempts. The handler never writes a `notBefore` further ahead than this.
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
    /// `{"catalogIds":[…],"accessPackageIds":[…]}`: what the authenticated caller's roles narrowed the
    /// deployment's scope to, carried through every message of the call (`domain::ScopeLists`).
    pub const SCOPE: &str = "scope";
    /// `{"detectDriftFor":{"accessPackageIds":[…]}}`: drift detection for these packages (`crate::drift`).
    pub const DETECT_DRIFT_FOR: &str = "detectDriftFor";
    /// `{"heal":"requests:deliveryFailed"}`: one listing of the scheduled heal, resumed at `nextLink`.
    pub const HEAL: &str = "heal";

    /// What an HTTP caller may send.
    pub const HTTP_FIELDS: &[&str] = &[
        ASSIGNMENT_IDS,
        ASSIGNMENT_REQUEST_IDS,
        ASSIGNMENT_ID,
        ASSIGNMENT_REQUEST_ID,
        ACCESS_PACKAGE_IDS,
        ACCESS_PACKAGE_ID,
        USER_IDS,
        USER_ID,
        DRY_RUN,
        CORRELATION_ID,
        DETECT_DRIFT_FOR,
    ];

    /// The queue's bookkeeping, written by the handler on its own messages: refused over HTTP.
    pub const QUEUE_ONLY_FIELDS: &[&str] = &[NEXT_LINK, ATTEMPT, NOT_BEFORE, ORIGIN, MESSAGE_KEY, HEAL, SCOPE];
}

/// The list field a scope is named in (`accessPackageIds` / `userIds`).
pub fn scope_field(scope: &Scope) -> &'static str {
    match scope {
        Scope::AccessPackage(_) => field::ACCESS_PACKAGE_IDS,
        Scope::User(_) => field::USER_IDS,
    }
}

/// Everything a queue message's JSON form carried, each field parsed to its type; `crate::work` turns it
/// into one kind of work, and writes work back through it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pub targets: Targets,
    /// Packages and users to expand into assignment IDs, in the order first seen, without duplicates.
    pub scopes: Vec<Scope>,
    /// Report what would be reprocessed and reprocess nothing (HTTP only).
    pub dry_run: bool,
    /// Where to resume listing a single scope (a Graph `@odata.nextLink`, checked by `graph::paths`).
    pub next_link: Option<String>,
    /// Packages to check for drift (`detectDriftFor.accessPackageIds`), without duplicates.
    pub drift_packages: Vec<AccessPackageId>,
    /// A heal listing (timer continuation messages only).
    pub heal: Option<HealListing>,
    /// The queue's bookkeeping and who asked (queue only: an HTTP call's caller is read from the call).
    pub meta: Meta,
}

/// What every message carries whatever its work: the queue's bookkeeping and who asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// How many times this work has been attempted before.
    pub attempt: u32,
    /// Time before which a re-enqueued message should not be worked on.
    pub not_before: Option<OffsetDateTime>,
    /// Carried through every message of one request so its logs (and operation) can be joined.
    pub correlation_id: Option<CorrelationId>,
    /// Who asked, for the audit records of work done later by the queue function.
    pub origin: Option<Caller>,
    /// This message's key in its operation's state (`crate::operations`), set by the handler.
    pub message_key: Option<MessageKey>,
    /// What the authenticated caller's roles narrowed the deployment's scope to; carried to every
    /// message the work leads to.
    pub scope: Option<AllowedScope>,
}

impl Fields {
    /// The message text, as it goes on the queue.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a message always serializes")
    }
}

impl Serialize for Fields {
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
        if self.meta.attempt > 0 {
            map.serialize_entry(field::ATTEMPT, &self.meta.attempt)?;
        }
        if let Some(at) = self.meta.not_before {
            map.serialize_entry(field::NOT_BEFORE, &rfc3339(at))?;
        }
        if let Some(id) = &self.meta.correlation_id {
            map.serialize_entry(field::CORRELATION_ID, id)?;
        }
        if let Some(key) = &self.meta.message_key {
            map.serialize_entry(field::MESSAGE_KEY, key)?;
        }
        if self.dry_run {
            map.serialize_entry(field::DRY_RUN, &true)?;
        }
        if let Some(origin) = &self.meta.origin {
            map.serialize_entry(field::ORIGIN, origin)?;
        }
        if let Some(scope) = &self.meta.scope {
            map.serialize_entry(field::SCOPE, &ScopeLists::from_scope(scope))?;
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
