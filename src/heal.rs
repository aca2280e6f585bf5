//! The scheduled heal: requests in `deliveryFailed` / `partiallyDelivered` completed inside Graph's
//! 14-day window are reprocessed through the queue (as `assignmentRequestIds` messages of at most 20,
//! so the queue function's limits, retries and dead letters apply); assignments in those states are
//! reported only (Graph reprocesses an assignment only when it is Delivered).
//!
//! Graph filters the state (`state eq '…'`, beta `requestState eq '…'`); it documents no `$filter` on
//! `completedDateTime`, so the window is applied here, page by page (see `graph::paths::heal_first_page`).
//! A request without a completion time is not reprocessed: Graph's rule cannot be checked for it.
//! Listing is one page at a time, resumable like the fan-out: a continuation carries Graph's
//! `nextLink`, checked against the listing's first page before it is followed.

use crate::domain::AssignmentRequestId;
use crate::domain::heal::{HealListing, REPROCESS_WINDOW};
use crate::graph::GraphClient;
use crate::graph::directory::heal_page;
use crate::graph::list::ListError;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::time::Instant;

/// What one page of a heal listing produced.
#[derive(Debug, Clone, Default)]
pub struct HealPageOutcome {
    pub listed: usize,
    /// Requests inside the window, to be reprocessed through the queue.
    pub to_reprocess: Vec<AssignmentRequestId>,
    /// Requests completed over 14 days ago (or with no completion time): not reprocessed.
    pub outside_window: usize,
    /// Failed assignments, reported without reprocessing.
    pub failed_assignments: Vec<Value>,
    /// Where the listing's next page starts, if there is one.
    pub next_link: Option<String>,
}

pub async fn heal_one_page(
    graph: &GraphClient,
    listing: HealListing,
    next_link: Option<&str>,
    deadline: Instant,
) -> Result<HealPageOutcome, ListError> {
    let page = heal_page(graph, &listing, next_link, deadline).await?;
    let now = OffsetDateTime::now_utc();
    let mut out = HealPageOutcome {
        listed: page.items.len(),
        next_link: page.next_link.map(String::from),
        ..HealPageOutcome::default()
    };
    match listing {
        HealListing::Requests(_) => {
            for item in &page.items {
                let inside = item.completed.is_some_and(|at| now - at <= REPROCESS_WINDOW);
                match AssignmentRequestId::parse(item.id.as_str()) {
                    Ok(id) if inside => out.to_reprocess.push(id),
                    _ => out.outside_window += 1,
                }
            }
        }
        HealListing::Assignments(_) => {
            out.failed_assignments = page
                .items
                .iter()
                .map(|a| json!({ "id": a.id.as_str(), "state": a.state, "accessPackage": a.access_package, "targetObjectId": a.target }))
                .collect();
        }
    }
    Ok(out)
}

/// Failed assignments listed by name in one summary event; the rest are counted.
pub const MAX_REPORTED: usize = 200;

/// A heal run's totals, logged as one summary event.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealSummary {
    pub pages: usize,
    pub requests_listed: usize,
    pub requests_enqueued: usize,
    pub requests_outside_window: usize,
    pub failed_assignment_count: usize,
    /// The first [`MAX_REPORTED`] failed assignments (the count has them all).
    pub failed_assignments: Vec<Value>,
    pub drift_packages_enqueued: usize,
    /// Listings handed to the queue to finish (budget ran out or Graph was throttling).
    pub continued: Vec<String>,
    pub errors: Vec<String>,
}

impl HealSummary {
    pub fn add(&mut self, listing: HealListing, page: &HealPageOutcome) {
        self.pages += 1;
        if matches!(listing, HealListing::Requests(_)) {
            self.requests_listed += page.listed;
        }
        self.requests_enqueued += page.to_reprocess.len();
        self.requests_outside_window += page.outside_window;
        self.failed_assignment_count += page.failed_assignments.len();
        let room = MAX_REPORTED.saturating_sub(self.failed_assignments.len());
        self.failed_assignments
            .extend(page.failed_assignments.iter().take(room).cloned());
    }

    pub fn one_line(&self) -> String {
        format!(
            "heal: {} failed requests listed, {} enqueued for reprocess, {} outside the 14-day window (not reprocessed), {} failed assignments reported, {} drift checks enqueued, {} listings continued on the queue, {} errors",
            self.requests_listed,
            self.requests_enqueued,
            self.requests_outside_window,
            self.failed_assignment_count,
            self.drift_packages_enqueued,
            self.continued.len(),
            self.errors.len()
        )
    }
}
