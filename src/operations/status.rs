//! Reading an operation's state for `GET /api/operations/{correlationId}`: running while any message
//! row is pending; when finished, the summary over every ID's latest result (computed once over all
//! results with `$select=outcome`, then kept in the `op` row until the state changes), one page of
//! results (at most the page size, in ID order, resumed after the last ID of the previous page with
//! `$top`, so a page costs one page of reads), the dead-lettered IDs and scopes, and the listing progress.

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
    /// The verified caller that started the operation (its object ID), when one did: only it may poll.
    pub owner: Option<String>,
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

const OUTCOMES: [&str; 8] = [
    "accepted",
    "not_found",
    "rejected",
    "permission_denied",
    "out_of_scope",
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
            owner: header.str("owner").map(str::to_owned),
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

        // Finished. The counts need every result, so they are computed once and kept in the `op` row
        // with the state they describe: the message rows and their server timestamps (any later write,
        // e.g. a redelivery, changes it and the counts are computed again).
        let signature = format!(
            "{}|{}",
            messages.len(),
            messages.iter().filter_map(|m| m.str("Timestamp")).max().unwrap_or("")
        );
        let cached = header
            .str("summaryOf")
            .filter(|s| *s == signature)
            .and_then(|_| header.str("summary"))
            .and_then(|t| serde_json::from_str::<Map<String, Value>>(t).ok());
        let counts = match cached {
            Some(counts) => counts,
            None => {
                let mut counts = view.summary.clone();
                let bump = |counts: &mut Map<String, Value>, name: &str| {
                    let n = counts.get(name).and_then(Value::as_u64).unwrap_or(0);
                    counts.insert(name.to_owned(), json!(n + 1));
                };
                let outcomes = self
                    .client
                    .query_up_to(table, &rows(RESULT_ROWS), usize::MAX, &["outcome"])
                    .await?;
                for row in &outcomes {
                    if let Some(outcome) = row.str("outcome") {
                        bump(&mut counts, outcome);
                    }
                }
                let dead = self
                    .client
                    .query_up_to(table, &rows(DEAD_ROWS), usize::MAX, &["kind"])
                    .await?;
                counts.insert("dead_lettered".into(), json!(dead.len()));
                let cache = crate::storage::Entity::new(pk.clone(), key(OP_ROW))
                    .with("summary", Value::Object(counts.clone()).to_string())
                    .with("summaryOf", signature.as_str());
                self.client
                    .upsert(table, &cache, crate::storage::UpsertMode::Merge)
                    .await?;
                counts
            }
        };
        // One page of results, after the previous page's last ID; one more row tells if more follow.
        let mut page_filter = rows(RESULT_ROWS);
        if let Some(after) = after {
            page_filter = page_filter.rows_after(&key(&format!("{RESULT_ROWS}{after}")));
        }
        let mut page = self
            .client
            .query_up_to(table, &page_filter, self.page_size + 1, &["result"])
            .await?;
        if page.len() > self.page_size {
            page.truncate(self.page_size);
            view.next_after = page
                .last()
                .and_then(|row| row.row_key.as_str().strip_prefix(RESULT_ROWS))
                .and_then(|id| Guid::parse(id).ok());
        }
        view.results = page
            .iter()
            .map(|row| {
                row.str("result")
                    .and_then(|t| serde_json::from_str::<Value>(t).ok())
                    .unwrap_or(Value::Null)
            })
            .collect();
        let dead = self
            .client
            .query_up_to(table, &rows(DEAD_ROWS), MAX_DEAD_LETTERED_LISTED, &[])
            .await?;
        view.dead_lettered = dead
            .iter()
            .map(|row| {
                json!({
                    "id": row.row_key.as_str().strip_prefix(DEAD_ROWS).unwrap_or(""),
                    "kind": row.str("kind").unwrap_or(""),
                    "reason": row.str("reason").unwrap_or(""),
                })
            })
            .collect();
        let count = |name: &str| counts.get(name).and_then(Value::as_u64).unwrap_or(0);
        // An ID refused by the catalog scope was not reprocessed: a trouble like a refusal by Graph.
        let troubles = [
            "not_found",
            "rejected",
            "permission_denied",
            "out_of_scope",
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
