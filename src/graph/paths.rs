//! The one place a Graph URL is built. Only GUID newtypes are interpolated, and every query value is
//! percent-encoded here, so nothing a caller typed can add a path segment, a query or a fragment; a
//! `nextLink` from a message or from Graph is only followed after [`continuation_url`] checked it against
//! the scope it continues and rebuilt it from that scope's own query plus Graph's paging tokens.
//!
//! Graph facts (microsoft-graph-docs-contrib, `api-reference/{v1.0,beta}/api/`):
//! - reprocess, v1.0: `entitlementManagement/assignments/{id}/reprocess` and
//!   `assignmentRequests/{id}/reprocess` (`accesspackageassignment-reprocess.md`,
//!   `accesspackageassignmentrequest-reprocess.md`); beta: `accessPackageAssignments/{id}/reprocess` and
//!   `accessPackageAssignmentRequests/{id}/reprocess` (v1.0 has no `accessPackageAssignments`);
//! - JSON batching: `POST /{version}/$batch`, sub-request URLs relative to the version
//!   (`concepts/json-batching.md`);
//! - listing, v1.0 `GET …/assignments` with `state eq 'delivered'`, `accessPackage/id eq '…'`,
//!   `target/objectId eq '…'` (`entitlementmanagement-list-assignments.md`); beta `…/accessPackageAssignments`
//!   with `assignmentState eq 'Delivered'`, `target/objectid`; both document `$expand=target,accessPackage`;
//! - catalogs: v1.0 `accessPackage` has the relationship `catalog`, beta `accessPackageCatalog` (and a
//!   `catalogId` property, as beta assignments do); nested `$expand` as in
//!   `$expand=accessPackage($expand=accessPackageCatalog)` (the nested form the docs themselves use, in
//!   `accesspackageassignmentrequestworkflowextension-delete.md`), `GET …/accessPackages/{id}` with
//!   `$expand` of its relationships (`accesspackage-get.md`);
//! - `@odata.nextLink` is a full URL carrying every query option plus `$skiptoken` (or `$skip`); `$top`
//!   limits the page size (`concepts/paging.md`).

use crate::config::ApiVersion;
use crate::domain::heal::{FailedState, HealListing};
use crate::domain::{AccessPackageId, GroupId, Scope, ServicePrincipalId, Target};
use std::collections::HashSet;
use url::Url;

/// Query options Graph adds to a `nextLink` to move through the same result set: they page, they never
/// widen it (`concepts/paging.md`).
const PAGING_OPTIONS: &[&str] = &["$skiptoken", "$skip", "$top"];
/// Longest paging value kept; Graph's skip tokens are opaque but far shorter.
const MAX_PAGING_VALUE: usize = 4_096;

const EM: &str = "identityGovernance/entitlementManagement";

/// Why a `nextLink` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NextLinkError {
    #[error("refused a nextLink to {0}: it is not the configured Graph origin, and tokens must not go elsewhere")]
    Foreign(String),
    #[error("refused a nextLink: {0}")]
    Malformed(String),
}

/// The assignments collection each version names.
fn assignments(version: ApiVersion) -> &'static str {
    match version {
        ApiVersion::V1 => "assignments",
        ApiVersion::Beta => "accessPackageAssignments",
    }
}

fn requests(version: ApiVersion) -> &'static str {
    match version {
        ApiVersion::V1 => "assignmentRequests",
        ApiVersion::Beta => "accessPackageAssignmentRequests",
    }
}

fn collection_of(version: ApiVersion, target: &Target) -> &'static str {
    match target {
        Target::Assignment(_) => assignments(version),
        Target::AssignmentRequest(_) => requests(version),
    }
}

/// Path (from the Graph root, starting with `/`) of the reprocess action for a target.
pub fn reprocess_path(version: ApiVersion, target: &Target) -> String {
    format!("/{}{}", version.segment(), reprocess_relative(version, target))
}

/// The same path without the version segment, as a `$batch` sub-request's `url` is written.
pub fn reprocess_relative(version: ApiVersion, target: &Target) -> String {
    format!("/{EM}/{}/{}/reprocess", collection_of(version, target), target.id())
}

pub fn reprocess_url(base: &Url, version: ApiVersion, target: &Target) -> Url {
    let mut url = base.clone();
    url.set_path(&reprocess_path(version, target));
    url
}

pub fn batch_url(base: &Url, version: ApiVersion) -> Url {
    let mut url = base.clone();
    url.set_path(&format!("/{}/$batch", version.segment()));
    url
}

fn assignments_path(version: ApiVersion) -> String {
    format!("/{}/{EM}/{}", version.segment(), assignments(version))
}

/// The OData `$filter` for a scope, in the property names each API version documents.
pub fn filter(version: ApiVersion, scope: &Scope) -> String {
    let (state, target) = match version {
        ApiVersion::V1 => ("state eq 'delivered'", "target/objectId"),
        ApiVersion::Beta => ("assignmentState eq 'Delivered'", "target/objectid"),
    };
    match scope {
        Scope::AccessPackage(id) => format!("{state} and accessPackage/id eq '{id}'"),
        Scope::User(id) => format!("{state} and {target} eq '{id}'"),
    }
}

/// Percent-encodes a query value: everything but RFC 3986 unreserved characters and `/` `,` (which
/// Graph's docs show literally) becomes `%XX`, so spaces are `%20` and quotes `%27`.
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2);
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b',' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn with_query(base: &Url, path: &str, options: &[(&str, &str)]) -> Url {
    let mut url = base.clone();
    url.set_path(path);
    let query: Vec<String> = options
        .iter()
        .map(|(k, v)| format!("{k}={}", encode_query_value(v)))
        .collect();
    url.set_query(Some(&query.join("&")));
    url
}

/// `accessPackage` expanded with the catalog that holds it, in each version's names.
fn package_with_catalog(version: ApiVersion) -> &'static str {
    match version {
        ApiVersion::V1 => "accessPackage($expand=catalog)",
        ApiVersion::Beta => "accessPackage($expand=accessPackageCatalog)",
    }
}

/// First page of the delivered assignments in `scope`, each with its package and that package's
/// catalog (so a catalog scope can keep only what it allows without another call).
pub fn first_page_url(base: &Url, version: ApiVersion, scope: &Scope) -> Url {
    let select = match version {
        ApiVersion::V1 => "id,state,status",
        ApiVersion::Beta => "id,assignmentState,assignmentStatus,accessPackageId,catalogId",
    };
    with_query(
        base,
        &assignments_path(version),
        &[
            ("$filter", &filter(version, scope)),
            ("$expand", &format!("target,{}", package_with_catalog(version))),
            ("$select", select),
        ],
    )
}

fn item_path(version: ApiVersion, target: &Target) -> String {
    format!("/{EM}/{}/{}", collection_of(version, target), target.id())
}

/// Where a dry run reads one assignment or request, with the relationships it shows.
pub fn item_url(base: &Url, version: ApiVersion, target: &Target) -> Url {
    let package = package_with_catalog(version);
    let expand = match (version, target) {
        (_, Target::Assignment(_)) => format!("target,{package}"),
        (ApiVersion::V1, Target::AssignmentRequest(_)) => format!("{package},assignment($expand=target)"),
        (ApiVersion::Beta, Target::AssignmentRequest(_)) => {
            format!("{package},accessPackageAssignment($expand=target)")
        }
    };
    let path = format!("/{}{}", version.segment(), item_path(version, target));
    with_query(base, &path, &[("$expand", &expand)])
}

/// The scope check's read of one assignment or request, relative to the version root as a `$batch`
/// sub-request's `url`: only its package and that package's catalog.
pub fn membership_relative(version: ApiVersion, target: &Target) -> String {
    let query = format!("$expand={}", encode_query_value(package_with_catalog(version)));
    format!("{}?{query}", item_path(version, target))
}

/// The scope check's read of one access package and its catalog, relative to the version root.
pub fn package_relative(version: ApiVersion, package: &AccessPackageId) -> String {
    let catalog = match version {
        ApiVersion::V1 => "catalog",
        ApiVersion::Beta => "accessPackageCatalog",
    };
    format!("/{EM}/accessPackages/{package}?$expand={catalog}")
}

/// Accepts an `@odata.nextLink` only if it is on the configured Graph origin, on the assignments
/// collection, without credentials or a fragment.
pub fn checked_next_link(base: &Url, version: ApiVersion, link: &str) -> Result<Url, NextLinkError> {
    checked_link_on(base, &assignments_path(version), link)
}

fn checked_link_on(base: &Url, expected_path: &str, link: &str) -> Result<Url, NextLinkError> {
    let url = Url::parse(link).map_err(|e| NextLinkError::Malformed(format!("not an absolute URL ({e})")))?;
    if url.origin() != base.origin() || !url.username().is_empty() || url.password().is_some() {
        return Err(NextLinkError::Foreign(url.origin().ascii_serialization()));
    }
    if url.path() != expected_path {
        return Err(NextLinkError::Malformed(format!(
            "path {} is not {expected_path}",
            url.path()
        )));
    }
    if url.fragment().is_some() {
        return Err(NextLinkError::Malformed("it has a fragment".into()));
    }
    Ok(url)
}

/// The continuation of `scope`'s listing at `link`: on the Graph origin and collection
/// ([`checked_next_link`]), with exactly the first page's `$filter`, `$expand` and `$select` (decoded,
/// in any order) and nothing else but Graph's paging options. Anything more could widen the listing
/// (another `$filter` lists other packages' assignments), so it is refused. The URL returned is
/// rebuilt from the scope's first page plus those paging options: only Graph's tokens are carried over.
pub fn continuation_url(base: &Url, version: ApiVersion, scope: &Scope, link: &str) -> Result<Url, NextLinkError> {
    continuation_of(base, &first_page_url(base, version, scope), link)
}

/// The continuation at `link` of the listing whose first page is `first`, by the rule of
/// [`continuation_url`]: same origin and path, the same query options, plus only Graph's paging options.
/// Every listing (assignments, requests, members, app-role assignments) is held to it.
pub fn continuation_of(base: &Url, first: &Url, link: &str) -> Result<Url, NextLinkError> {
    let url = checked_link_on(base, first.path(), link)?;
    let expected: Vec<(String, String)> = first.query_pairs().into_owned().collect();
    let refuse = |why: String| Err(NextLinkError::Malformed(why));
    let mut seen: HashSet<&str> = HashSet::new();
    let mut paging: Vec<(&'static str, String)> = Vec::new();
    for (key, value) in url.query_pairs() {
        if let Some((name, want)) = expected.iter().find(|(k, _)| k.eq_ignore_ascii_case(&key)) {
            if !seen.insert(name.as_str()) {
                return refuse(format!("it repeats {name}"));
            }
            if value != want.as_str() {
                return refuse(format!(
                    "its {name} {:?} is not this listing's {want:?}",
                    shorten(&value)
                ));
            }
        } else if let Some(name) = PAGING_OPTIONS.iter().find(|p| p.eq_ignore_ascii_case(&key)) {
            if paging.iter().any(|(p, _)| p == name) {
                return refuse(format!("it repeats {name}"));
            }
            let numeric = *name != "$skiptoken";
            if value.is_empty()
                || value.len() > MAX_PAGING_VALUE
                || (numeric && !value.bytes().all(|b| b.is_ascii_digit()))
            {
                return refuse(format!("its {name} is not a paging value Graph would send"));
            }
            paging.push((name, value.into_owned()));
        } else {
            return refuse(format!(
                "it adds the query option {:?}, which this listing does not use",
                shorten(&key)
            ));
        }
    }
    if let Some((missing, _)) = expected.iter().find(|(k, _)| !seen.contains(k.as_str())) {
        return refuse(format!("it drops {missing}"));
    }
    if !paging.iter().any(|(p, _)| *p == "$skiptoken" || *p == "$skip") {
        return refuse("it carries no $skiptoken or $skip, so it would list the first page again".into());
    }
    let mut options: Vec<(&str, &str)> = expected
        .iter()
        .filter(|(k, _)| !paging.iter().any(|(p, _)| p == k))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    options.extend(paging.iter().map(|(k, v)| (*k, v.as_str())));
    Ok(with_query(base, first.path(), &options))
}

/// Largest page the directory lists allow (`$top`, 1–999 for members, owners and app-role assignments).
pub const DIRECTORY_PAGE: &str = "999";

/// What holds a resource role: a group's members or owners, or the users assigned a service
/// principal's app roles. Only GUID newtypes reach the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Holders {
    /// `GET /groups/{id}/members?$select=id` (`group-list-members.md`: GroupMember.Read.All).
    GroupMembers(GroupId),
    /// `GET /groups/{id}/owners?$select=id` (`group-list-owners.md`: GroupMember.Read.All).
    GroupOwners(GroupId),
    /// `GET /servicePrincipals/{id}/appRoleAssignedTo?$select=principalId,appRoleId`
    /// (`serviceprincipal-list-approleassignedto.md`: Application.Read.All).
    AppRoleAssignedTo(ServicePrincipalId),
}

/// First page of who holds a role. Both versions name these collections alike.
pub fn holders_first_page(base: &Url, version: ApiVersion, holders: &Holders) -> Url {
    let (path, select) = match holders {
        Holders::GroupMembers(g) => (format!("/{}/groups/{g}/members", version.segment()), "id"),
        Holders::GroupOwners(g) => (format!("/{}/groups/{g}/owners", version.segment()), "id"),
        Holders::AppRoleAssignedTo(sp) => (
            format!("/{}/servicePrincipals/{sp}/appRoleAssignedTo", version.segment()),
            "principalId,appRoleId",
        ),
    };
    with_query(base, &path, &[("$select", select), ("$top", DIRECTORY_PAGE)])
}

/// An access package with the roles it grants: v1.0 `accessPackages/{id}?$expand=resourceRoleScopes($expand=role,scope)`
/// (`accesspackage-list-resourcerolescopes.md`); beta `accessPackageResourceRoleScopes($expand=accessPackageResourceRole,accessPackageResourceScope)`
/// (`api-reference/beta/api/accesspackage-list-accesspackageresourcerolescopes.md`).
pub fn package_roles_url(base: &Url, version: ApiVersion, package: &AccessPackageId) -> Url {
    let expand = match version {
        ApiVersion::V1 => "resourceRoleScopes($expand=role,scope)",
        ApiVersion::Beta => {
            "accessPackageResourceRoleScopes($expand=accessPackageResourceRole,accessPackageResourceScope)"
        }
    };
    let path = format!("/{}/{EM}/accessPackages/{package}", version.segment());
    with_query(base, &path, &[("$expand", expand)])
}

/// The failed states the heal timer looks for, in each version's spelling (v1.0 lower camel, beta
/// PascalCase).
pub fn failed_state(version: ApiVersion, state: FailedState) -> &'static str {
    match (version, state) {
        (ApiVersion::V1, FailedState::DeliveryFailed) => "deliveryFailed",
        (ApiVersion::V1, FailedState::PartiallyDelivered) => "partiallyDelivered",
        (ApiVersion::Beta, FailedState::DeliveryFailed) => "DeliveryFailed",
        (ApiVersion::Beta, FailedState::PartiallyDelivered) => "PartiallyDelivered",
    }
}

/// First page of a heal listing. Requests: v1.0 `state` supports `$filter (eq)`
/// (`resources/accesspackageassignmentrequest.md`), beta shows `$filter=(requestState eq '…')`
/// (`beta/api/accesspackageassignmentrequest-list.md`); `completedDateTime` (beta `completedDate`)
/// documents no `$filter`, so the 14-day window is applied to each page here, not by Graph.
/// Assignments: `state eq '…'` (beta `assignmentState`), as the fan-out's listing.
pub fn heal_first_page(base: &Url, version: ApiVersion, listing: &HealListing) -> Url {
    match listing {
        HealListing::Requests(state) => {
            let (filter, select) = match version {
                ApiVersion::V1 => ("state", "id,state,completedDateTime"),
                ApiVersion::Beta => ("requestState", "id,requestState,completedDate"),
            };
            let path = format!("/{}/{EM}/{}", version.segment(), requests(version));
            let filter = format!("{filter} eq '{}'", failed_state(version, *state));
            with_query(base, &path, &[("$filter", &filter), ("$select", select)])
        }
        HealListing::Assignments(state) => {
            let (filter, select) = match version {
                ApiVersion::V1 => ("state", "id,state,status"),
                ApiVersion::Beta => ("assignmentState", "id,assignmentState,assignmentStatus"),
            };
            let filter = format!("{filter} eq '{}'", failed_state(version, *state));
            with_query(
                base,
                &assignments_path(version),
                &[
                    ("$filter", &filter),
                    ("$expand", "target,accessPackage"),
                    ("$select", select),
                ],
            )
        }
    }
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(120).collect();
    if s.chars().count() > 120 {
        out.push('…');
    }
    out
}

#[cfg(test)]
#[path = "paths_tests.rs"]
mod tests;
