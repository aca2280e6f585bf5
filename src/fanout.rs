//! Fan-out: turning "every delivered assignment of this package / user" into queue messages of at most
//! [`IDS_PER_MESSAGE`] assignment IDs, so that no invocation ever reprocesses more than a page.
//!
//! The flow is **resumable, page by page**:
//! 1. the HTTP call (or alert, or a queue message naming several scopes) enqueues one *expansion
//!    message* per package/user — `{"accessPackageIds":["…"],"correlationId":"…"}` — and answers at once;
//! 2. the queue function lists **one page** for an expansion message and, in the same reply, enqueues
//!    that page's IDs in chunks plus a *continuation* `{"accessPackageIds":["…"],"nextLink":"…"}`.
//!
//! The host commits a reply's queue outputs only when the invocation succeeds, and a failed invocation
//! is retried with the same message, so a crash half-way loses nothing: the page is listed again.
//! Duplicates are bounded by one page (a retried page can re-send its chunks); reprocessing a delivered
//! assignment twice is harmless. A transient listing failure re-enqueues the same expansion message with
//! `attempt`/`notBefore`, like transient reprocess results.
//!
//! Dry runs are synchronous: they read (never POST) and cap the listing at [`DRY_RUN_LIMIT`] items.

use crate::domain::{Scope, Target, TargetKind, Targets};
use crate::graph::GraphClient;
use crate::graph::list::{self, ListError, ListedAssignment};
use futures_util::StreamExt;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;

/// IDs per reprocess message: small enough that one message finishes quickly even when throttled.
pub const IDS_PER_MESSAGE: usize = 20;
/// Items a dry run lists in total before it stops and says `truncated`.
pub const DRY_RUN_LIMIT: usize = 1_000;
/// Concurrent reads in a dry run (the shared limiter still caps the process).
const DRY_RUN_CONCURRENCY: usize = 8;

/// Messages holding at most [`IDS_PER_MESSAGE`] IDs each, in the JSON form the queue function reads.
pub fn id_messages(targets: &Targets, correlation_id: &str) -> Vec<String> {
    targets
        .items()
        .chunks(IDS_PER_MESSAGE)
        .map(|chunk| {
            let mut message = json!({ "correlationId": correlation_id });
            let ids =
                |kind: TargetKind| -> Vec<&str> { chunk.iter().filter(|t| t.kind() == kind).map(Target::id).collect() };
            let assignments = ids(TargetKind::Assignment);
            let requests = ids(TargetKind::AssignmentRequest);
            if !assignments.is_empty() {
                message["assignmentIds"] = json!(assignments);
            }
            if !requests.is_empty() {
                message["assignmentRequestIds"] = json!(requests);
            }
            message.to_string()
        })
        .collect()
}

/// An expansion message for one scope; `next_link` resumes a listing, `retry` is `(attempt, notBefore)`.
pub fn expansion_message(
    scope: &Scope,
    next_link: Option<&str>,
    correlation_id: &str,
    retry: Option<(u32, OffsetDateTime)>,
) -> String {
    let mut message = json!({ scope.field(): [scope.id()], "correlationId": correlation_id });
    if let Some(link) = next_link {
        message["nextLink"] = json!(link);
    }
    if let Some((attempt, not_before)) = retry {
        message["attempt"] = json!(attempt);
        message["notBefore"] = json!(
            not_before
                .replace_nanosecond(0)
                .unwrap_or(not_before)
                .format(&Rfc3339)
                .unwrap_or_default()
        );
    }
    message.to_string()
}

/// Everything an HTTP call or alert hands to the queue: one expansion message per scope, then the
/// direct IDs in chunks.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub expansion_messages: Vec<String>,
    pub id_messages: Vec<String>,
}

impl Plan {
    pub fn new(targets: &Targets, scopes: &[Scope], correlation_id: &str) -> Self {
        Self {
            expansion_messages: scopes
                .iter()
                .map(|s| expansion_message(s, None, correlation_id, None))
                .collect(),
            id_messages: id_messages(targets, correlation_id),
        }
    }
    pub fn messages(&self) -> impl Iterator<Item = String> + '_ {
        self.expansion_messages.iter().chain(&self.id_messages).cloned()
    }
    pub fn len(&self) -> usize {
        self.expansion_messages.len() + self.id_messages.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What listing one page produced.
#[derive(Debug, Clone)]
pub struct PageOutcome {
    pub listed: usize,
    pub dropped: usize,
    pub id_messages: Vec<String>,
    /// The expansion message for the next page, if there is one.
    pub continuation: Option<String>,
}

/// Lists one page of `scope` (from the start, or from a nextLink that must be on the Graph origin) and
/// turns it into chunk messages plus a continuation.
pub async fn expand_one_page(
    graph: &GraphClient,
    scope: &Scope,
    next_link: Option<&str>,
    correlation_id: &str,
    deadline: Instant,
) -> Result<PageOutcome, ListError> {
    let url = match next_link {
        Some(link) => list::checked_next_link(graph.base_url(), graph.api_version(), link)?,
        None => list::first_page_url(graph.base_url(), graph.api_version(), scope),
    };
    let page = list::fetch_page(graph, &url, deadline).await?;
    let targets = Targets::from_items(page.items.iter().map(|a| Target::Assignment(a.id)));
    Ok(PageOutcome {
        listed: targets.len(),
        dropped: page.dropped,
        id_messages: id_messages(&targets, correlation_id),
        continuation: page
            .next_link
            .map(|link| expansion_message(scope, Some(link.as_str()), correlation_id, None)),
    })
}

/// Reads what a request would touch, without reprocessing anything.
pub async fn dry_run(graph: &GraphClient, targets: &Targets, scopes: &[Scope], deadline: Instant) -> Value {
    let items: Vec<Value> = futures_util::stream::iter(targets.items().iter().copied())
        .map(|target| async move { describe(graph, target, deadline).await })
        .buffered(DRY_RUN_CONCURRENCY)
        .collect()
        .await;
    let would = items.iter().filter(|i| i["wouldReprocess"] == true).count();
    let mut budget = DRY_RUN_LIMIT.saturating_sub(items.len());
    let mut expansions = Vec::new();
    let mut truncated = false;
    let mut listed_total = 0;
    for scope in scopes {
        let (assignments, scope_truncated, error) = list_capped(graph, scope, &mut budget, deadline).await;
        truncated |= scope_truncated;
        listed_total += assignments.len();
        let mut entry = json!({
            scope.field().trim_end_matches('s'): scope.id(),
            "count": assignments.len(),
            "truncated": scope_truncated,
            "assignments": assignments.iter().map(ListedAssignment::to_json).collect::<Vec<_>>(),
        });
        if let Some(e) = error {
            entry["error"] = json!(e.to_string());
        }
        expansions.push(entry);
    }
    json!({
        "dryRun": true,
        "summary": { "ids": items.len(), "idsWouldReprocess": would, "listedAssignments": listed_total },
        "truncated": truncated,
        "limit": DRY_RUN_LIMIT,
        "items": items,
        "expansions": expansions,
    })
}

async fn list_capped(
    graph: &GraphClient,
    scope: &Scope,
    budget: &mut usize,
    deadline: Instant,
) -> (Vec<ListedAssignment>, bool, Option<ListError>) {
    let mut out = Vec::new();
    let mut url = list::first_page_url(graph.base_url(), graph.api_version(), scope);
    loop {
        if *budget == 0 {
            return (out, true, None);
        }
        let page = match list::fetch_page(graph, &url, deadline).await {
            Ok(page) => page,
            Err(e) => return (out, false, Some(e)),
        };
        let take = page.items.len().min(*budget);
        *budget -= take;
        let cut = take < page.items.len();
        out.extend(page.items.into_iter().take(take));
        match page.next_link {
            _ if cut => return (out, true, None),
            Some(next) => url = next,
            None => return (out, false, None),
        }
    }
}

async fn describe(graph: &GraphClient, target: Target, deadline: Instant) -> Value {
    let mut entry = json!({ "kind": target.kind(), "id": target.id() });
    match list::get_item(graph, &target, deadline).await {
        Ok(None) => {
            entry["found"] = json!(false);
            entry["wouldReprocess"] = json!(false);
            entry["reason"] = json!("Graph answered 404: not in this tenant");
        }
        Ok(Some(summary)) => {
            let (would, reason) = verdict(target.kind(), &summary);
            entry["found"] = json!(true);
            if let (Value::Object(e), Value::Object(s)) = (&mut entry, summary) {
                e.extend(s);
            }
            entry["wouldReprocess"] = json!(would);
            if let Some(reason) = reason {
                entry["reason"] = json!(reason);
            }
        }
        Err(e) => {
            entry["wouldReprocess"] = json!(null);
            entry["error"] = json!(e.to_string());
        }
    }
    entry
}

/// Graph's preconditions for reprocess (`accessPackageAssignment: reprocess`,
/// `accessPackageAssignmentRequest: reprocess`): a Delivered assignment; a request in DeliveryFailed
/// or PartiallyDelivered completed within 14 days.
pub fn verdict(kind: TargetKind, summary: &Value) -> (bool, Option<String>) {
    let state = summary["state"].as_str().unwrap_or("");
    match kind {
        TargetKind::Assignment if state.eq_ignore_ascii_case("delivered") => (true, None),
        TargetKind::Assignment => (
            false,
            Some(format!(
                "state is '{state}'; only delivered assignments can be reprocessed"
            )),
        ),
        TargetKind::AssignmentRequest => {
            if !["deliveryFailed", "partiallyDelivered"]
                .iter()
                .any(|s| s.eq_ignore_ascii_case(state))
            {
                return (
                    false,
                    Some(format!(
                        "state is '{state}'; only deliveryFailed or partiallyDelivered requests can be reprocessed"
                    )),
                );
            }
            let completed = summary["completedDateTime"]
                .as_str()
                .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok());
            match completed {
                Some(at) if OffsetDateTime::now_utc() - at > time::Duration::days(14) => {
                    (false, Some("completed more than 14 days ago".into()))
                }
                _ => (true, None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccessPackageId, AssignmentId, AssignmentRequestId};

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

    #[test]
    fn chunks_hold_at_most_twenty_ids_and_lose_none() {
        let targets = ids(45);
        let messages = id_messages(&targets, "c");
        assert_eq!(messages.len(), 3);
        let mut seen = Vec::new();
        for m in &messages {
            let v: Value = serde_json::from_str(m).unwrap();
            let n = ["assignmentIds", "assignmentRequestIds"]
                .iter()
                .map(|k| v[k].as_array().map_or(0, Vec::len))
                .sum::<usize>();
            assert!(n <= IDS_PER_MESSAGE);
            assert_eq!(v["correlationId"], "c");
            for k in ["assignmentIds", "assignmentRequestIds"] {
                seen.extend(
                    v[k].as_array()
                        .into_iter()
                        .flatten()
                        .map(|x| x.as_str().unwrap().to_owned()),
                );
            }
            // Each chunk parses back as a valid queue message.
            assert!(crate::domain::parse_queue_message(m, 1000).is_ok());
        }
        seen.sort();
        let mut want: Vec<String> = targets.items().iter().map(|t| t.id().to_owned()).collect();
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn expansion_messages_round_trip() {
        let scope = Scope::AccessPackage(AccessPackageId::parse("9a1d6e2c-3b4f-4c5d-8e6f-7a8b9c0d1e2f").unwrap());
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let text = expansion_message(&scope, Some("https://graph.microsoft.com/x"), "c", Some((2, at)));
        let parsed = crate::domain::parse_queue_message(&text, 1000).unwrap();
        assert_eq!(parsed.scopes, [scope]);
        assert_eq!(parsed.next_link.as_deref(), Some("https://graph.microsoft.com/x"));
        assert_eq!((parsed.attempt, parsed.not_before), (2, Some(at)));
    }

    #[test]
    fn verdicts_follow_graph_s_preconditions() {
        let v = |kind, s: Value| verdict(kind, &s).0;
        assert!(v(TargetKind::Assignment, json!({ "state": "Delivered" })));
        assert!(!v(TargetKind::Assignment, json!({ "state": "expired" })));
        assert!(v(TargetKind::AssignmentRequest, json!({ "state": "deliveryFailed" })));
        let old = (OffsetDateTime::now_utc() - time::Duration::days(20))
            .format(&Rfc3339)
            .unwrap();
        assert!(!v(
            TargetKind::AssignmentRequest,
            json!({ "state": "deliveryFailed", "completedDateTime": old })
        ));
        assert!(!v(TargetKind::AssignmentRequest, json!({ "state": "delivered" })));
    }
}
