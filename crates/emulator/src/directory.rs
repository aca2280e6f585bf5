//! The emulated directory behind drift detection: groups with members and owners, service principals
//! with app-role assignments, the resource role scopes each access package grants, and the read
//! permissions the identity holds. Reprocessing a delivered assignment grants its target every role of
//! its package again ([`Directory::grant`]), which is what Graph's reprocess does for a user who lost
//! access outside entitlement management.

use std::collections::{BTreeSet, HashMap, HashSet};

/// One `accessPackageResourceRoleScope` (v1.0 `role` + `scope`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleScope {
    pub origin_system: &'static str,
    pub role_origin_id: String,
    pub role_name: String,
    pub scope_origin_id: String,
    pub scope_name: String,
}

impl RoleScope {
    pub fn group_member(group: &str, name: &str) -> Self {
        Self::group("Member", group, name)
    }

    pub fn group_owner(group: &str, name: &str) -> Self {
        Self::group("Owner", group, name)
    }

    fn group(kind: &str, group: &str, name: &str) -> Self {
        Self {
            origin_system: "AadGroup",
            role_origin_id: format!("{kind}_{}", group.to_ascii_lowercase()),
            role_name: kind.into(),
            scope_origin_id: group.to_ascii_lowercase(),
            scope_name: name.into(),
        }
    }

    pub fn app_role(service_principal: &str, app_role: &str, app: &str, role: &str) -> Self {
        Self {
            origin_system: "AadApplication",
            role_origin_id: app_role.to_ascii_lowercase(),
            role_name: role.into(),
            scope_origin_id: service_principal.to_ascii_lowercase(),
            scope_name: app.into(),
        }
    }

    pub fn sharepoint_site(url: &str, role: &str) -> Self {
        Self {
            origin_system: "SharePointOnline",
            role_origin_id: "4".into(),
            role_name: role.into(),
            scope_origin_id: url.into(),
            scope_name: url.into(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Group {
    pub members: BTreeSet<String>,
    pub owners: BTreeSet<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub groups: HashMap<String, Group>,
    /// Service principal → (principal, app role) assignments.
    pub app_role_assignments: HashMap<String, BTreeSet<(String, String)>>,
    pub package_roles: HashMap<String, Vec<RoleScope>>,
    /// Read permissions the identity holds beyond entitlement management (both by default).
    pub granted_reads: HashSet<&'static str>,
}

pub const GROUP_MEMBER_READ: &str = "GroupMember.Read.All";
pub const APPLICATION_READ: &str = "Application.Read.All";

impl Directory {
    pub fn new() -> Self {
        Self {
            granted_reads: [GROUP_MEMBER_READ, APPLICATION_READ].into_iter().collect(),
            ..Self::default()
        }
    }

    pub fn add_package_role(&mut self, package: &str, role: RoleScope) {
        if let RoleScope {
            origin_system: "AadGroup",
            scope_origin_id,
            ..
        } = &role
        {
            self.groups.entry(scope_origin_id.clone()).or_default();
        }
        self.package_roles
            .entry(package.to_ascii_lowercase())
            .or_default()
            .push(role);
    }

    pub fn group_mut(&mut self, group: &str) -> &mut Group {
        self.groups.entry(group.to_ascii_lowercase()).or_default()
    }

    /// Removes `user` from `group`'s members, as an admin would by hand (`DELETE …/members/{id}/$ref`).
    pub fn remove_member(&mut self, group: &str, user: &str) -> bool {
        self.group_mut(group).members.remove(&user.to_ascii_lowercase())
    }

    pub fn is_member(&self, group: &str, user: &str) -> bool {
        self.groups
            .get(&group.to_ascii_lowercase())
            .is_some_and(|g| g.members.contains(&user.to_ascii_lowercase()))
    }

    pub fn remove_app_role(&mut self, service_principal: &str, user: &str, app_role: &str) -> bool {
        let key = (user.to_ascii_lowercase(), app_role.to_ascii_lowercase());
        self.app_role_assignments
            .entry(service_principal.to_ascii_lowercase())
            .or_default()
            .remove(&key)
    }

    /// Gives `user` every role `package` grants (what delivery and reprocess do).
    pub fn grant(&mut self, package: &str, user: &str) {
        let user = user.to_ascii_lowercase();
        let roles = self
            .package_roles
            .get(&package.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default();
        for role in roles {
            match (role.origin_system, role.role_origin_id.split_once('_')) {
                ("AadGroup", Some(("Member", group))) => {
                    self.group_mut(group).members.insert(user.clone());
                }
                ("AadGroup", Some(("Owner", group))) => {
                    self.group_mut(group).owners.insert(user.clone());
                }
                ("AadApplication", _) => {
                    self.app_role_assignments
                        .entry(role.scope_origin_id.clone())
                        .or_default()
                        .insert((user.clone(), role.role_origin_id.clone()));
                }
                _ => {}
            }
        }
    }
}
