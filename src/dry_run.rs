//! Dry runs: read what a request would touch and reprocess nothing (no POST reaches Graph). For each
//! assignment or request, Graph's state, package and target (a GET with `$expand`) and whether Graph's
//! preconditions for reprocess hold; for each package/user, the delivered assignments listed. Dry runs
//! are synchronous, so the listing is capped at [`DRY_RUN_LIMIT`] items (`"truncated": true`).
//! With a catalog scope, items outside it say `"wouldReprocess": false, "outcome": "out_of_scope"`
//! (the reads already expand each package's catalog, so this costs nothing) and listings keep only
//! what is in scope (`outOfScope` counts the rest).

use crate::catalog_scope::keep_in_scope;
use crate::domain::{AllowedScope, Scope, Target, TargetKind, Targets};
use crate::graph::GraphClient;
use crate::graph::list::{self, ListError, ListedAssignment};
use crate::graph::lookup::membership_of;
use crate::message::field;
use futures_util::StreamExt;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;

/// Items a dry run lists in total before it stops and says `truncated`.
pub const DRY_RUN_LIMIT: usize = 1_000;
/// Concurrent reads in a dry run (the shared limiter still caps the process).
const DRY_RUN_CONCURRENCY: usize = 8;

/// Reads what a request would touch, without reprocessing anything.
pub async fn report(
    graph: &GraphClient,
    allowed: Option<&AllowedScope>,
    targets: &Targets,
    scopes: &[Scope],
    deadline: Instant,
) -> Value {
    let items: Vec<Value> = futures_util::stream::iter(targets.items().iter().copied())
        .map(|target| async move { describe(graph, allowed, target, deadline).await })
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
        let (assignments, out_of_scope) = keep_in_scope(allowed, assignments);
        truncated |= scope_truncated;
        listed_total += assignments.len();
        let key = match scope {
            Scope::AccessPackage(_) => field::ACCESS_PACKAGE_ID,
            Scope::User(_) => field::USER_ID,
        };
        let mut entry = json!({
            key: scope.id(),
            "count": assignments.len(),
            "outOfScope": out_of_scope.len(),
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
    let mut url = match list::page_url(graph, scope, None) {
        Ok(url) => url,
        Err(e) => return (out, false, Some(e)),
    };
    loop {
        if *budget == 0 {
            return (out, true, None);
        }
        let page = match list::fetch_page(graph, scope, &url, deadline).await {
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

async fn describe(graph: &GraphClient, allowed: Option<&AllowedScope>, target: Target, deadline: Instant) -> Value {
    let mut entry = json!({ "kind": target.kind(), "id": target.id() });
    match list::get_item(graph, &target, deadline).await {
        Ok(Some((summary, raw))) if allowed.is_some_and(|a| !a.allows(&membership_of(false, &raw))) => {
            entry["found"] = json!(true);
            if let (Value::Object(e), Value::Object(s)) = (&mut entry, summary) {
                e.extend(s);
            }
            entry["wouldReprocess"] = json!(false);
            entry["outcome"] = json!("out_of_scope");
            entry["reason"] = json!(
                "outside the catalog scope this call may touch (ALLOWED_CATALOG_IDS, ALLOWED_ACCESS_PACKAGE_IDS, narrowed by the caller's roles in CALLER_SCOPES)"
            );
        }
        Ok(None) => {
            entry["found"] = json!(false);
            entry["wouldReprocess"] = json!(false);
            entry["reason"] = json!("Graph answered 404: not in this tenant");
        }
        Ok(Some((summary, _))) => {
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
