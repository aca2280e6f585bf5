//! Which roles a package grants can be checked, and how: a group's members or owners, or a service
//! principal's app-role assignments. Anything else (SharePoint Online sites, connected apps, custom
//! resources) is reported as not checked, with the reason.

use crate::domain::{AppRoleId, GroupId, Guid, ServicePrincipalId};
use crate::graph::directory::GrantedRole;
use crate::graph::paths::Holders;
use serde::Serialize;
use std::collections::HashSet;

/// How one granted role is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    GroupMember(GroupId),
    GroupOwner(GroupId),
    AppRole(ServicePrincipalId, AppRoleId),
}

impl Check {
    /// The listing that shows who holds this role.
    pub fn holders(&self) -> Holders {
        match self {
            Check::GroupMember(g) => Holders::GroupMembers(*g),
            Check::GroupOwner(g) => Holders::GroupOwners(*g),
            Check::AppRole(sp, _) => Holders::AppRoleAssignedTo(*sp),
        }
    }

    /// Whether `user` holds the role, given everything its listing returned.
    pub fn held_by(&self, user: &Guid, listed: &HashSet<(Guid, Option<AppRoleId>)>) -> bool {
        match self {
            Check::GroupMember(_) | Check::GroupOwner(_) => listed.contains(&(*user, None)),
            Check::AppRole(_, role) => listed.contains(&(*user, Some(*role))),
        }
    }
}

/// A role as the result names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    pub origin_system: String,
    pub resource: String,
    pub resource_origin_id: String,
    pub role: String,
    pub role_origin_id: String,
}

impl RoleRef {
    pub fn of(granted: &GrantedRole) -> Self {
        Self {
            origin_system: granted.origin_system.clone(),
            resource: granted.scope_name.clone(),
            resource_origin_id: granted.scope_origin_id.clone(),
            role: granted.role_name.clone(),
            role_origin_id: granted.role_origin_id.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotChecked {
    #[serde(flatten)]
    pub role: RoleRef,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub struct Classified {
    pub checks: Vec<(Check, RoleRef)>,
    pub not_checked: Vec<NotChecked>,
}

pub fn classify(roles: &[GrantedRole]) -> Classified {
    let mut out = Classified::default();
    for granted in roles {
        match check_for(granted) {
            Ok(check) => out.checks.push((check, RoleRef::of(granted))),
            Err(reason) => out.not_checked.push(NotChecked {
                role: RoleRef::of(granted),
                reason,
            }),
        }
    }
    out
}

fn check_for(granted: &GrantedRole) -> Result<Check, String> {
    let system = granted.origin_system.as_str();
    if system.eq_ignore_ascii_case("AadGroup") {
        let group = |id: &str| GroupId::parse(id).map_err(|e| format!("the group's originId {:?} {e}", clip(id)));
        let role = granted.role_origin_id.as_str();
        return match role.split_once('_') {
            Some((kind, id)) if kind.eq_ignore_ascii_case("Member") => Ok(Check::GroupMember(group(id)?)),
            Some((kind, id)) if kind.eq_ignore_ascii_case("Owner") => Ok(Check::GroupOwner(group(id)?)),
            _ => Err(format!(
                "group role originId {:?} is neither Member_<groupId> nor Owner_<groupId>",
                clip(role)
            )),
        };
    }
    if system.eq_ignore_ascii_case("AadApplication") {
        let sp = ServicePrincipalId::parse(&granted.scope_origin_id)
            .map_err(|e| format!("the application's originId (its service principal) {e}"))?;
        let role = AppRoleId::parse_any(&granted.role_origin_id).map_err(|e| format!("the app role's originId {e}"))?;
        return Ok(Check::AppRole(sp, role));
    }
    if system.eq_ignore_ascii_case("SharePointOnline") {
        return Err(
            "SharePoint Online site roles are not readable through the directory APIs this handler may use; only groups and app roles are checked"
                .into(),
        );
    }
    Err(format!(
        "resource type {:?} (for example a connected app or custom extension) has no membership Graph can list; only AadGroup and AadApplication are checked",
        clip(system)
    ))
}

fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(system: &str, role: &str, scope: &str) -> GrantedRole {
        GrantedRole {
            origin_system: system.into(),
            role_origin_id: role.into(),
            role_name: "r".into(),
            scope_origin_id: scope.into(),
            scope_name: "s".into(),
        }
    }

    #[test]
    fn groups_apps_and_the_rest() {
        let g = "7b56ede0-9b58-40bd-b11e-b3d18fc32698";
        let c = classify(&[
            role("AadGroup", &format!("Member_{g}"), g),
            role("AadGroup", &format!("Owner_{g}"), g),
            role("AadApplication", "00000000-0000-0000-0000-000000000000", g),
            role("SharePointOnline", "4", "https://contoso.sharepoint.com/sites/x"),
            role("AadGroup", "Member_../../users", g),
        ]);
        let gid = GroupId::parse(g).unwrap();
        assert_eq!(c.checks[0].0, Check::GroupMember(gid));
        assert_eq!(c.checks[1].0, Check::GroupOwner(gid));
        assert!(matches!(c.checks[2].0, Check::AppRole(_, _)));
        assert_eq!(c.not_checked.len(), 2);
        assert!(c.not_checked[0].reason.contains("SharePoint"));
    }
}
