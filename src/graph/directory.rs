//! Reads for drift detection and the scheduled heal: the roles an access package grants, who holds
//! them (group members and owners, app-role assignments), and the failed requests and assignments the
//! heal lists. URLs come from `paths`, continuations are held to `paths::continuation_of`, and every
//! request goes through the transport, like the fan-out's listing.
//!
//! Graph facts (microsoft-graph-docs-contrib, `api-reference/v1.0/`):
//! - `accesspackage-list-resourcerolescopes.md`: `GET accessPackages/{id}?$expand=resourceRoleScopes($expand=role,scope)`;
//!   each scope has `role {originId, originSystem, displayName}` and `scope {originId, originSystem, isRootScope}`;
//!   a group's roles are `Member_<groupId>` / `Owner_<groupId>` (the doc's example) and its scope
//!   `originId` is the group ID (`resources/accesspackageresource.md`); `originSystem` is `AadGroup`,
//!   `AadApplication` or `SharePointOnline` (`resources/accesspackageresourcerole.md`); an application's
//!   role `originId` is the app role ID and its scope `originId` the service principal's object ID;
//! - `group-list-members.md` / `group-list-owners.md`: directoryObjects, `$select=id`, `$top` up to 999,
//!   least privilege GroupMember.Read.All; `serviceprincipal-list-approleassignedto.md`: appRoleAssignments
//!   with `principalId` and `appRoleId`, least privilege Application.Read.All.

use super::GraphClient;
use super::list::{ListError, error_from, get_json, split_page};
use super::paths::{Holders, continuation_of, heal_first_page, holders_first_page, package_roles_url};
use crate::config::ApiVersion;
use crate::domain::heal::HealListing;
use crate::domain::{AccessPackageId, AppRoleId, Guid};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;
use url::Url;

/// Least-privileged application permission to list a group's members and owners.
pub const GROUP_MEMBER_READ: &str = "GroupMember.Read.All";
/// Least-privileged application permission to list a service principal's `appRoleAssignedTo`.
pub const APPLICATION_READ: &str = "Application.Read.All";

/// One role an access package grants, as Graph describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedRole {
    pub origin_system: String,
    pub role_origin_id: String,
    pub role_name: String,
    pub scope_origin_id: String,
    pub scope_name: String,
}

/// The roles `package` grants; `Ok(None)` when Graph says 404.
pub async fn package_roles(
    client: &GraphClient,
    package: &AccessPackageId,
    deadline: Instant,
) -> Result<Option<Vec<GrantedRole>>, ListError> {
    let url = package_roles_url(client.base_url(), client.api_version(), package);
    let (status, body) = get_json(client, &url, deadline).await?;
    if status == 404 {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(&body).map_err(|e| ListError::BadBody(e.to_string()))?;
    Ok(Some(parse_granted_roles(client.api_version(), &value)?))
}

pub fn parse_granted_roles(version: ApiVersion, value: &Value) -> Result<Vec<GrantedRole>, ListError> {
    let (list, role, scope) = match version {
        ApiVersion::V1 => ("resourceRoleScopes", "role", "scope"),
        ApiVersion::Beta => (
            "accessPackageResourceRoleScopes",
            "accessPackageResourceRole",
            "accessPackageResourceScope",
        ),
    };
    let entries = value
        .get(list)
        .and_then(Value::as_array)
        .ok_or_else(|| ListError::BadBody(format!("the access package has no `{list}` array")))?;
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    Ok(entries
        .iter()
        .map(|e| {
            let (r, s) = (&e[role], &e[scope]);
            let system = Some(text(r, "originSystem"))
                .filter(|x| !x.is_empty())
                .unwrap_or_else(|| text(s, "originSystem"));
            GrantedRole {
                origin_system: system,
                role_origin_id: text(r, "originId"),
                role_name: text(r, "displayName"),
                scope_origin_id: text(s, "originId"),
                scope_name: text(s, "displayName"),
            }
        })
        .collect())
}

/// One page of who holds a role: principal IDs (users, and whatever else is a member), with the app
/// role for app-role assignments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HoldersPage {
    pub principals: Vec<(Guid, Option<AppRoleId>)>,
    pub next_link: Option<Url>,
}

/// The permission a read of `holders` needs, and what it reads, for a 403's message.
pub fn holders_permission(holders: &Holders) -> (&'static str, String) {
    match holders {
        Holders::GroupMembers(g) => (GROUP_MEMBER_READ, format!("the members of group {g}")),
        Holders::GroupOwners(g) => (GROUP_MEMBER_READ, format!("the owners of group {g}")),
        Holders::AppRoleAssignedTo(sp) => (
            APPLICATION_READ,
            format!("the app-role assignments of service principal {sp}"),
        ),
    }
}

/// The first page of `holders`, or its continuation at `next_link` (already checked by [`holders_page`]).
pub async fn holders_page(
    client: &GraphClient,
    holders: &Holders,
    next_link: Option<&Url>,
    deadline: Instant,
) -> Result<HoldersPage, ListError> {
    let first = holders_first_page(client.base_url(), client.api_version(), holders);
    let url = next_link.unwrap_or(&first);
    let (status, body) = match get_json(client, url, deadline).await {
        Err(ListError::Denied { code, message }) => {
            let (permission, what) = holders_permission(holders);
            return Err(ListError::MissingPermission {
                what,
                permission,
                code,
                message,
            });
        }
        other => other?,
    };
    if status == 404 {
        return Err(error_from(404, &body));
    }
    let (entries, value) = split_page(&body)?;
    let app_roles = matches!(holders, Holders::AppRoleAssignedTo(_));
    let guid = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).and_then(|s| Guid::parse(s).ok());
    let principals = entries
        .iter()
        .filter_map(|e| {
            if app_roles {
                let role = e
                    .get("appRoleId")
                    .and_then(Value::as_str)
                    .and_then(|s| AppRoleId::parse_any(s).ok());
                Some((guid(e, "principalId")?, Some(role?)))
            } else {
                Some((guid(e, "id")?, None))
            }
        })
        .collect();
    Ok(HoldersPage {
        principals,
        next_link: next_link_of(client.base_url(), &first, &value)?,
    })
}

fn next_link_of(base: &Url, first: &Url, value: &Value) -> Result<Option<Url>, ListError> {
    match value.get("@odata.nextLink") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(link)) => Ok(Some(continuation_of(base, first, link)?)),
        Some(_) => Err(ListError::BadBody("`@odata.nextLink` is not a string".into())),
    }
}

/// One request or assignment a heal listing found.
#[derive(Debug, Clone, PartialEq)]
pub struct HealItem {
    pub id: Guid,
    pub state: Option<String>,
    pub completed: Option<OffsetDateTime>,
    pub access_package: Option<Value>,
    pub target: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealPage {
    pub items: Vec<HealItem>,
    pub next_link: Option<Url>,
}

/// One page of a heal listing, from the start or at a `nextLink` (from a message: checked against the
/// listing's own first page, so it cannot widen it).
pub async fn heal_page(
    client: &GraphClient,
    listing: &HealListing,
    next_link: Option<&str>,
    deadline: Instant,
) -> Result<HealPage, ListError> {
    let first = heal_first_page(client.base_url(), client.api_version(), listing);
    let url = match next_link {
        Some(link) => continuation_of(client.base_url(), &first, link)?,
        None => first.clone(),
    };
    let (status, body) = get_json(client, &url, deadline).await?;
    if status == 404 {
        return Err(error_from(404, &body));
    }
    let (entries, value) = split_page(&body)?;
    let text = |e: &Value, keys: &[&str]| {
        keys.iter()
            .find_map(|k| e.get(*k).and_then(Value::as_str))
            .map(str::to_owned)
    };
    let items = entries
        .iter()
        .filter_map(|e| {
            let id = Guid::parse(e.get("id")?.as_str()?).ok()?;
            let completed =
                text(e, &["completedDateTime", "completedDate"]).and_then(|t| OffsetDateTime::parse(&t, &Rfc3339).ok());
            Some(HealItem {
                id,
                state: text(e, &["state", "requestState", "assignmentState"]),
                completed,
                access_package: e.get("accessPackage").cloned(),
                target: e.get("target").and_then(|t| t.get("objectId")).cloned(),
            })
        })
        .collect();
    Ok(HealPage {
        items,
        next_link: next_link_of(client.base_url(), &first, &value)?,
    })
}
