//! Catalog scope (`ALLOWED_CATALOG_IDS`, `ALLOWED_ACCESS_PACKAGE_IDS`, see `domain::allowed`): what is
//! checked where, each costing at most one Graph `$batch` of GETs per chunk of up to 20 (`graph::lookup`):
//! - assignment and request IDs, before every reprocess group ([`check_targets`], from `reprocess`):
//!   out-of-scope IDs end `out_of_scope` and are never sent to reprocess;
//! - access packages named for fan-out ([`check_packages`]): a package listed by itself needs no call;
//!   otherwise its catalog is read. HTTP calls refuse an out-of-scope package up front (400); the queue
//!   function refuses it again before listing, whoever put the message there;
//! - user fan-out keeps only listed assignments in scope ([`keep_in_scope`]): the listing already
//!   expands each assignment's package and catalog, so this costs nothing.

use crate::domain::{AccessPackageId, AllowedScope, AssignmentId, CatalogId, ItemResult, Outcome, Target};
use crate::graph::GraphClient;
use crate::graph::list::ListedAssignment;
use crate::graph::lookup::{Lookup, Subject};
use tokio::time::Instant;

/// One `$batch` of GETs for a group of targets: the targets in scope, and a final (or transient) result
/// for every other one.
pub async fn check_targets(
    graph: &GraphClient,
    allowed: &AllowedScope,
    group: &[Target],
    deadline: Instant,
) -> (Vec<Target>, Vec<ItemResult>) {
    let subjects: Vec<Subject> = group.iter().map(|t| Subject::Target(*t)).collect();
    let lookups = graph.lookup_batch(&subjects, deadline).await;
    let mut send = Vec::new();
    let mut refused = Vec::new();
    for (target, read) in group.iter().zip(lookups) {
        let outcome = match read.lookup {
            Lookup::Found(membership) if allowed.allows(&membership) => {
                send.push(*target);
                continue;
            }
            Lookup::Found(membership) => Outcome::OutOfScope {
                access_package_id: membership.access_package.map(|p| p.to_string()),
                catalog_id: membership.catalog.map(|c| c.to_string()),
            },
            Lookup::Failed(outcome) => outcome,
        };
        tracing::info!(
            id = target.id(),
            outcome = outcome.label(),
            http_status = read.http_status,
            graph_request_id = read.graph_request_id.as_deref().unwrap_or(""),
            "scope check: not reprocessed"
        );
        refused.push(ItemResult {
            kind: target.kind(),
            id: target.id().to_owned(),
            outcome,
            http_status: read.http_status,
            graph_request_id: read.graph_request_id,
            attempts: read.attempts,
            target: Some(*target),
        });
    }
    (send, refused)
}

/// Whether an access package may be fanned out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageVerdict {
    InScope,
    /// Graph placed it in this catalog (or none), which the scope does not list.
    OutOfScope {
        catalog: Option<CatalogId>,
    },
    /// Graph could not say (not found, denied, or transient: see the outcome).
    Unknown(Outcome),
}

impl PackageVerdict {
    /// Why a package is refused, for a 400 or a log line.
    pub fn reason(&self, package: &AccessPackageId) -> Option<String> {
        match self {
            PackageVerdict::InScope => None,
            PackageVerdict::OutOfScope { catalog: Some(c) } => Some(format!(
                "access package {package} is in catalog {c}, outside the scope this call may touch (ALLOWED_CATALOG_IDS, ALLOWED_ACCESS_PACKAGE_IDS, narrowed by the caller's roles in CALLER_SCOPES)"
            )),
            PackageVerdict::OutOfScope { catalog: None } => Some(format!(
                "access package {package} is outside the scope this call may touch (ALLOWED_CATALOG_IDS, ALLOWED_ACCESS_PACKAGE_IDS, narrowed by the caller's roles in CALLER_SCOPES)"
            )),
            PackageVerdict::Unknown(outcome) => Some(format!(
                "access package {package}: its catalog could not be read ({}), so it is not fanned out",
                outcome.label()
            )),
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, PackageVerdict::Unknown(o) if !o.is_final())
    }
}

/// One verdict per package, in order; packages not listed by themselves are read in `$batch`es of 20
/// (only when a catalog is listed: otherwise they cannot be in scope).
pub async fn check_packages(
    graph: &GraphClient,
    allowed: &AllowedScope,
    packages: &[AccessPackageId],
    deadline: Instant,
) -> Vec<PackageVerdict> {
    let mut verdicts: Vec<Option<PackageVerdict>> = packages
        .iter()
        .map(|p| {
            if allowed.lists_package(p) {
                Some(PackageVerdict::InScope)
            } else if !allowed.may_allow_by_catalog(p) {
                Some(PackageVerdict::OutOfScope { catalog: None })
            } else {
                None
            }
        })
        .collect();
    let unread: Vec<usize> = (0..packages.len()).filter(|&i| verdicts[i].is_none()).collect();
    for chunk in unread.chunks(graph.batch_size().max(1)) {
        let subjects: Vec<Subject> = chunk.iter().map(|&i| Subject::Package(packages[i])).collect();
        for (&i, read) in chunk.iter().zip(graph.lookup_batch(&subjects, deadline).await) {
            verdicts[i] = Some(match read.lookup {
                Lookup::Found(membership) if allowed.allows(&membership) => PackageVerdict::InScope,
                Lookup::Found(membership) => PackageVerdict::OutOfScope {
                    catalog: membership.catalog,
                },
                Lookup::Failed(outcome) => PackageVerdict::Unknown(outcome),
            });
        }
    }
    verdicts
        .into_iter()
        .map(|v| v.expect("every package has a verdict"))
        .collect()
}

/// Splits a listed page into the assignments in scope and the IDs of the others.
pub fn keep_in_scope(
    allowed: Option<&AllowedScope>,
    items: Vec<ListedAssignment>,
) -> (Vec<ListedAssignment>, Vec<AssignmentId>) {
    let Some(allowed) = allowed else {
        return (items, Vec::new());
    };
    let (keep, drop): (Vec<_>, Vec<_>) = items.into_iter().partition(|a| allowed.allows(&a.membership));
    (keep, drop.into_iter().map(|a| a.id).collect())
}
