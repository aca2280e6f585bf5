//! Drift detection: a delivered assignment whose target lacks a role its access package grants.
//!
//! For one package: read the roles it grants (one call), list its delivered assignments (the fan-out's
//! listing, page by page), and for every distinct group or service principal among the checkable roles
//! list who holds it (`$select=id`, up to 999 a page), the listings side by side. The comparison is in
//! memory, so the Graph calls are proportional to pages, never one per user. Roles that cannot be checked are reported with the
//! reason (`roles`). Reprocessing the drifted assignments is the caller's (`functions::queue_drift`),
//! through the shared transport and limiter; a dry run only reports them.

pub mod roles;

use crate::domain::{AccessPackageId, AppRoleId, AssignmentId, Guid, Scope};
use crate::graph::GraphClient;
use crate::graph::directory::{holders_page, package_roles};
use crate::graph::list::{self, ListError};
use crate::graph::paths::Holders;
use roles::{Check, NotChecked, RoleRef, classify};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use tokio::time::Instant;

/// A drifted assignment and every granted role its target lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drifted {
    pub assignment_id: AssignmentId,
    pub user_id: String,
    pub missing: Vec<RoleRef>,
}

/// A checked role and how many principals hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Checked {
    #[serde(flatten)]
    pub role: RoleRef,
    pub holders: usize,
}

/// What drift detection found for one package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageDrift {
    pub access_package_id: AccessPackageId,
    /// False when Graph says the package does not exist.
    pub found: bool,
    pub delivered_assignments: usize,
    pub checked: Vec<Checked>,
    pub not_checked: Vec<NotChecked>,
    pub drifted: Vec<Drifted>,
    /// Graph reads this detection made (pages and the package itself).
    pub graph_reads: usize,
}

impl PackageDrift {
    pub fn drifted_assignments(&self) -> Vec<AssignmentId> {
        self.drifted.iter().map(|d| d.assignment_id).collect()
    }
}

/// Detects drift for `package` before `deadline`.
pub async fn detect(
    graph: &GraphClient,
    package: AccessPackageId,
    deadline: Instant,
) -> Result<PackageDrift, ListError> {
    let mut reads = 1;
    let Some(granted) = package_roles(graph, &package, deadline).await? else {
        return Ok(PackageDrift {
            access_package_id: package,
            found: false,
            delivered_assignments: 0,
            checked: Vec::new(),
            not_checked: Vec::new(),
            drifted: Vec::new(),
            graph_reads: reads,
        });
    };
    let classified = classify(&granted);

    // Delivered assignments and who holds each distinct resource (one listing per group or service
    // principal, not per role), listed side by side: each listing pages one nextLink after another.
    let mut distinct: Vec<Holders> = Vec::new();
    for (check, _) in &classified.checks {
        if !distinct.contains(&check.holders()) {
            distinct.push(check.holders());
        }
    }
    let holders = futures_util::future::try_join_all(distinct.iter().map(|h| list_holders(graph, *h, deadline)));
    let ((assignments, assignment_reads), listed) =
        futures_util::future::try_join(list_delivered(graph, package, deadline), holders).await?;
    reads += assignment_reads + listed.iter().map(|(_, r)| r).sum::<usize>();
    let held: HashMap<Holders, HashSet<(Guid, Option<AppRoleId>)>> = distinct
        .into_iter()
        .zip(listed.into_iter().map(|(set, _)| set))
        .collect();

    let checked = classified
        .checks
        .iter()
        .map(|(check, role)| Checked {
            role: role.clone(),
            holders: held.get(&check.holders()).map_or(0, |set| count_holding(check, set)),
        })
        .collect();
    let drifted = assignments
        .iter()
        .filter_map(|(id, target)| {
            let missing: Vec<RoleRef> = classified
                .checks
                .iter()
                .filter(|(check, _)| match (target, held.get(&check.holders())) {
                    (Some(user), Some(set)) => !check.held_by(user, set),
                    _ => false,
                })
                .map(|(_, role)| role.clone())
                .collect();
            (!missing.is_empty()).then(|| Drifted {
                assignment_id: *id,
                user_id: target.map(|t| t.to_string()).unwrap_or_default(),
                missing,
            })
        })
        .collect();
    Ok(PackageDrift {
        access_package_id: package,
        found: true,
        delivered_assignments: assignments.len(),
        checked,
        not_checked: classified.not_checked,
        drifted,
        graph_reads: reads,
    })
}

/// Every delivered assignment of `package` with its target, through the fan-out's own listing and
/// checks; and the pages read.
async fn list_delivered(
    graph: &GraphClient,
    package: AccessPackageId,
    deadline: Instant,
) -> Result<(Vec<(AssignmentId, Option<Guid>)>, usize), ListError> {
    let scope = Scope::AccessPackage(package);
    let mut assignments = Vec::new();
    let mut reads = 0;
    let mut url = list::page_url(graph, &scope, None)?;
    loop {
        let page = list::fetch_page(graph, &scope, &url, deadline).await?;
        reads += 1;
        assignments.extend(page.items.iter().map(|a| {
            let target = a
                .target
                .as_ref()
                .and_then(|t| t.get("objectId"))
                .and_then(|v| v.as_str());
            (a.id, target.and_then(|t| Guid::parse(t).ok()))
        }));
        match page.next_link {
            Some(next) => url = next,
            None => return Ok((assignments, reads)),
        }
    }
}

/// Everyone `holders` lists, over all pages; and the pages read.
async fn list_holders(
    graph: &GraphClient,
    holders: Holders,
    deadline: Instant,
) -> Result<(HashSet<(Guid, Option<AppRoleId>)>, usize), ListError> {
    let mut set = HashSet::new();
    let mut reads = 0;
    let mut next = None;
    loop {
        let page = holders_page(graph, &holders, next.as_ref(), deadline).await?;
        reads += 1;
        set.extend(page.principals);
        match page.next_link {
            Some(link) => next = Some(link),
            None => return Ok((set, reads)),
        }
    }
}

fn count_holding(check: &Check, set: &HashSet<(Guid, Option<AppRoleId>)>) -> usize {
    match check {
        Check::AppRole(_, role) => set.iter().filter(|(_, r)| *r == Some(*role)).count(),
        _ => set.len(),
    }
}

/// The Graph app roles drift detection needs beyond reprocess (least privilege, from the permission
/// tables of `group-list-members.md`, `group-list-owners.md`, `serviceprincipal-list-approleassignedto.md`).
pub const REQUIRED_READ_ROLES: [&str; 2] = [
    crate::graph::directory::GROUP_MEMBER_READ,
    crate::graph::directory::APPLICATION_READ,
];

/// Why a drift request is refused while `DRIFT_DETECTION_ENABLED` is not set.
pub fn off_reason() -> String {
    format!(
        "drift detection is off: it reads group memberships and app-role assignments, which need the Graph app roles {} and {} beyond {}. Grant them with the infra parameter enableDriftDetection=true, which also sets DRIFT_DETECTION_ENABLED=true",
        REQUIRED_READ_ROLES[0],
        REQUIRED_READ_ROLES[1],
        crate::domain::outcome::REQUIRED_APP_ROLE
    )
}
