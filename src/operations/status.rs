//! Reading an operation's state for `GET /api/operations/{correlationId}`: running while any message
//! row is pending; when finished, the summary over every ID's latest result, one page of results
//! ([`RESULTS_PAGE_SIZE`], in ID order, resumed after the last ID of the previous page), the
//! dead-lettered IDs and scopes, and the listing progress.

use super::{DEAD_ROWS, LISTING_ROWS, MESSAGE_ROWS, OP_ROW, OperationStore, PENDING, RESULT_ROWS, key, partition};
use crate::domain::{CorrelationId, Guid};
use crate::storage::{Filter, StorageError};
use serde::Serialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Per-ID results per status page (the default of `OPERATIONS_RESULTS_PAGE_SIZE`, also its maximum);
/// `nextLink` leads to the next page.
pub const RESULTS_PAGE_SIZE: usize = 1000;
/// Dead-lettered entries listed in one answer (the summary counts all of them).
pub const MAX_DEAD_LETTERED_LISTED: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StatusKind {
    Running,
    Succeeded,
    Failed,
    CompletedWithErrors,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListingProgress {
    pub scopes: u64,
    pub pages_listed: u64,
    pub ids_found: u64,
}

/// What the status function shows (it adds the URLs).
#[derive(Debug, Clone)]
pub struct OperationView {
    pub status: StatusKind,
    pub created_at: String,
    pub updated_at: String,
    /// Messages still queued or running.
    pub pending_messages: usize,
    pub summary: Map<String, Value>,
    pub listing: ListingProgress,
    pub results: Vec<Value>,
    pub dead_lettered: Vec<Value>,
    /// Set when more results follow: the last ID of this page, where the next one starts.
    pub next_after: Option<Guid>,
}

const OUTCOMES: [&str; 7] = [
    "accepted",
    "not_found",
    "rejected",
    "permission_denied",
    "transient",
    "dead_lettered",
    "dry_run",
];

impl OperationStore {
    /// `None` for an unknown or expired operation. `after` resumes the results after that ID.
    pub async fn view(&self, op: &CorrelationId, after: Option<&Guid>) -> Result<Option<OperationView>, StorageError> {
        let table = self.table().await?;
        let pk = partition(op);
        let Some(header) = self.client.get(table, &pk, &key(OP_ROW)).await? else {
            return Ok(None);
        };
        let expired = header
            .str("expiresAt")
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .is_none_or(|t| t <= OffsetDateTime::now_utc());
        if expired {
            return Ok(None);
        }
        let created_at = header.str("createdAt").unwrap_or_default().to_owned();
        let rows = |prefix: &str| Filter::partition(&pk).row_prefix(&key(prefix));
        let messages = self.client.query_all(table, &rows(MESSAGE_ROWS)).await?;
        let pending_messages = messages.iter().filter(|m| m.str("state") == Some(PENDING)).count();
        let updated_at = messages
            .iter()
            .filter_map(|m| m.str("updatedAt"))
            .max()
            .unwrap_or(&created_at)
            .to_owned();
        let pages = self.client.query_all(table, &rows(LISTING_ROWS)).await?;
        let listing = ListingProgress {
            scopes: header.u64("scopes").unwrap_or(0),
            pages_listed: pages.len() as u64,
            ids_found: pages.iter().filter_map(|p| p.u64("idsFound")).sum(),
        };
        let mut view = OperationView {
            status: StatusKind::Running,
            created_at,
            updated_at,
            pending_messages,
            summary: OUTCOMES.iter().map(|o| (o.to_string(), json!(0))).collect(),
            listing,
            results: Vec::new(),
            dead_lettered: Vec::new(),
            next_after: None,
        };
        if pending_messages > 0 {
            return Ok(Some(view));
        }

        // Finished: one pass over every result for the counts, keeping the requested page.
        let mut counts: Map<String, Value> = view.summary.clone();
        let bump = |counts: &mut Map<String, Value>, name: &str| {
            let n = counts.get(name).and_then(Value::as_u64).unwrap_or(0);
            counts.insert(name.to_owned(), json!(n + 1));
        };
        let results = self.client.query_all(table, &rows(RESULT_ROWS)).await?;
        let after_key = after.map(|g| format!("{RESULT_ROWS}{g}"));
        for row in &results {
            if let Some(outcome) = row.str("outcome") {
                bump(&mut counts, outcome);
            }
            let in_page = after_key.as_deref().is_none_or(|a| row.row_key.as_str() > a);
            if in_page && view.results.len() < self.page_size {
                let value = row
                    .str("result")
                    .and_then(|t| serde_json::from_str::<Value>(t).ok())
                    .unwrap_or(Value::Null);
                view.results.push(value);
                if view.results.len() == self.page_size {
                    view.next_after = row
                        .row_key
                        .as_str()
                        .strip_prefix(RESULT_ROWS)
                        .and_then(|id| Guid::parse(id).ok());
                }
            }
        }
        // A full page followed by nothing more has no next page.
        if let Some(last) = &view.next_after {
            let last_key = format!("{RESULT_ROWS}{last}");
            if !results.iter().any(|r| r.row_key.as_str() > last_key.as_str()) {
                view.next_after = None;
            }
        }
        let dead = self.client.query_all(table, &rows(DEAD_ROWS)).await?;
        for row in &dead {
            bump(&mut counts, "dead_lettered");
            if view.dead_lettered.len() < MAX_DEAD_LETTERED_LISTED {
                view.dead_lettered.push(json!({
                    "id": row.row_key.as_str().strip_prefix(DEAD_ROWS).unwrap_or(""),
                    "kind": row.str("kind").unwrap_or(""),
                    "reason": row.str("reason").unwrap_or(""),
                }));
            }
        }
        let count = |name: &str| counts.get(name).and_then(Value::as_u64).unwrap_or(0);
        let troubles = [
            "not_found",
            "rejected",
            "permission_denied",
            "transient",
            "dead_lettered",
        ]
        .iter()
        .map(|n| count(n))
        .sum::<u64>();
        view.status = if troubles == 0 {
            StatusKind::Succeeded
        } else if count("accepted") == 0 && count("dry_run") == 0 {
            StatusKind::Failed
        } else {
            StatusKind::CompletedWithErrors
        };
        view.summary = counts;
        Ok(Some(view))
    }
}
