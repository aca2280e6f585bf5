//! Fan-out: turning "every delivered assignment of this package / user" into queue messages of at most
//! `message::IDS_PER_MESSAGE` assignment IDs, so that no invocation ever reprocesses more than a page.
//!
//! The flow is **resumable, page by page**:
//! 1. the HTTP call (or alert, or a queue message naming several scopes) enqueues one *expansion
//!    message* per package/user (`work::plan`) and answers at once;
//! 2. the queue function lists **one page** for an expansion message ([`expand_one_page`], run by
//!    `work::expand`) and, in the same reply, enqueues that page's IDs in chunks plus a *continuation*
//!    carrying Graph's `nextLink`.
//!
//! The host commits a reply's queue outputs only when the invocation succeeds, and a failed invocation
//! is retried with the same message, so a crash half-way loses nothing: the page is listed again.
//! Duplicates are bounded by one page (a retried page can re-send its chunks); reprocessing a delivered
//! assignment twice is harmless. A transient listing failure re-enqueues the same expansion message with
//! `attempt`/`notBefore`, like transient reprocess results.

use crate::catalog_scope::keep_in_scope;
use crate::domain::{AllowedScope, AssignmentId, Scope, Target, Targets};
use crate::graph::GraphClient;
use crate::graph::list::{self, ListError};
use tokio::time::Instant;

/// What listing one page produced.
#[derive(Debug, Clone)]
pub struct PageOutcome {
    /// The page's delivered assignments in scope, to reprocess.
    pub targets: Targets,
    pub dropped: usize,
    /// Listed but outside the catalog scope: not enqueued.
    pub out_of_scope: Vec<AssignmentId>,
    /// Where the next page starts, if there is one.
    pub next_link: Option<String>,
}

/// Lists one page of `scope` (from the start, or from a nextLink that must be on the Graph origin) and
/// returns its assignments and the next page's link. With a catalog scope, only the assignments in it
/// are enqueued.
pub async fn expand_one_page(
    graph: &GraphClient,
    allowed: Option<&AllowedScope>,
    scope: Scope,
    next_link: Option<&str>,
    deadline: Instant,
) -> Result<PageOutcome, ListError> {
    let url = list::page_url(graph, &scope, next_link)?;
    let page = list::fetch_page(graph, &scope, &url, deadline).await?;
    let (items, out_of_scope) = keep_in_scope(allowed, page.items);
    Ok(PageOutcome {
        targets: Targets::from_items(items.iter().map(|a| Target::Assignment(a.id))),
        dropped: page.dropped,
        out_of_scope,
        next_link: page.next_link.map(String::from),
    })
}
