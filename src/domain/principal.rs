//! Entra-authenticated callers: the principal App Service authentication verified, and what its app
//! roles may touch (`CALLER_SCOPES`: app role value → the catalogs and access packages that role
//! grants). A caller's scope is the union of its mapped roles' scopes; a role mapped to `{}` grants the
//! whole deployment scope. That scope only ever narrows the deployment's (`AllowedScope::narrowed`).

use super::allowed::AllowedScope;
use super::ids::{AccessPackageId, CatalogId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A caller App Service authentication verified: only built from the platform's own principal header,
/// and only while the platform says authentication is on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifiedPrincipal {
    /// The caller's object ID (`oid`).
    pub object_id: Option<String>,
    /// The calling application's client ID (`appid` in v1 tokens, `azp` in v2).
    pub app_id: Option<String>,
    /// The app role values in the token (`roles`).
    pub roles: Vec<String>,
}

/// The lists one role grants, as `CALLER_SCOPES` spells an entry and as a queue message carries a
/// caller's scope: `{"catalogIds":[…],"accessPackageIds":[…]}`, each list optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScopeLists {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_ids: Option<Vec<CatalogId>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_package_ids: Option<Vec<AccessPackageId>>,
}

impl ScopeLists {
    /// `Ok(None)` for `{}` (no narrowing). A list that is present but empty is refused: it would grant
    /// nothing, which is surely not what was meant (leave the role out, or write `{}` for everything).
    pub fn to_scope(&self) -> Result<Option<AllowedScope>, String> {
        if self.catalog_ids.as_ref().is_some_and(Vec::is_empty)
            || self.access_package_ids.as_ref().is_some_and(Vec::is_empty)
        {
            return Err(
                "an empty catalogIds or accessPackageIds list grants nothing; use {} for the whole deployment scope"
                    .into(),
            );
        }
        Ok(AllowedScope::new(
            self.catalog_ids.iter().flatten().copied(),
            self.access_package_ids.iter().flatten().copied(),
        ))
    }

    /// The lists of a scope's narrowest layer (what a caller's roles granted).
    pub fn from_scope(scope: &AllowedScope) -> Self {
        let catalogs: Vec<CatalogId> = scope.catalogs().copied().collect();
        let packages: Vec<AccessPackageId> = scope.packages().copied().collect();
        Self {
            catalog_ids: (!catalogs.is_empty()).then_some(catalogs),
            access_package_ids: (!packages.is_empty()).then_some(packages),
        }
    }
}

/// `CALLER_SCOPES`, parsed: each configured app role value and the scope it grants (`None`: the whole
/// deployment scope).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerScopes {
    roles: BTreeMap<String, Option<AllowedScope>>,
}

/// What a verified caller's roles granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The caller's roles that are configured, in the order of the configuration.
    pub roles: Vec<String>,
    /// The union of their scopes; `None` when one of them grants the whole deployment scope.
    pub narrowing: Option<AllowedScope>,
}

impl CallerScopes {
    pub fn new(roles: BTreeMap<String, Option<AllowedScope>>) -> Self {
        Self { roles }
    }

    /// The configured role values, for a 403 naming what the caller lacks.
    pub fn role_values(&self) -> Vec<&str> {
        self.roles.keys().map(String::as_str).collect()
    }

    /// What `caller_roles` grant, or `None` when none of them is configured. Role values are matched
    /// exactly, as Entra issues them.
    pub fn grant(&self, caller_roles: &[String]) -> Option<Grant> {
        let granting: Vec<(&String, &Option<AllowedScope>)> = self
            .roles
            .iter()
            .filter(|(role, _)| caller_roles.contains(role))
            .collect();
        if granting.is_empty() {
            return None;
        }
        let whole = granting.iter().any(|(_, scope)| scope.is_none());
        let narrowing = if whole {
            None
        } else {
            AllowedScope::union(granting.iter().filter_map(|(_, scope)| scope.as_ref()))
        };
        Some(Grant {
            roles: granting.into_iter().map(|(role, _)| role.clone()).collect(),
            narrowing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Membership;

    const SALES: &str = "11111111-1111-4111-8111-111111111111";
    const HR: &str = "22222222-2222-4222-8222-222222222222";
    const PKG: &str = "33333333-3333-4333-8333-333333333333";

    fn scopes() -> CallerScopes {
        let lists = |json: &str| serde_json::from_str::<ScopeLists>(json).unwrap().to_scope().unwrap();
        CallerScopes::new(BTreeMap::from([
            ("Reprocess.All".to_owned(), lists("{}")),
            (
                "Reprocess.Catalog.Sales".to_owned(),
                lists(&format!(r#"{{"catalogIds":["{SALES}"]}}"#)),
            ),
            (
                "Reprocess.Package".to_owned(),
                lists(&format!(r#"{{"accessPackageIds":["{PKG}"]}}"#)),
            ),
        ]))
    }

    #[test]
    fn roles_grant_the_union_of_their_scopes() {
        let s = scopes();
        assert_eq!(s.grant(&["Other".into()]), None);
        let all = s
            .grant(&["Reprocess.All".into(), "Reprocess.Catalog.Sales".into()])
            .unwrap();
        assert_eq!(all.narrowing, None);
        assert_eq!(all.roles, ["Reprocess.All", "Reprocess.Catalog.Sales"]);
        let two = s
            .grant(&["Reprocess.Catalog.Sales".into(), "Reprocess.Package".into()])
            .unwrap()
            .narrowing
            .unwrap();
        let m = |p: &str, c: &str| Membership {
            access_package: AccessPackageId::parse(p).ok(),
            catalog: CatalogId::parse(c).ok(),
        };
        assert!(two.allows(&m(HR, SALES)));
        assert!(two.allows(&m(PKG, HR)));
        assert!(!two.allows(&m(HR, HR)));
    }

    #[test]
    fn scope_lists_are_strict() {
        assert!(serde_json::from_str::<ScopeLists>(r#"{"catalogs":[]}"#).is_err());
        assert!(serde_json::from_str::<ScopeLists>(r#"{"catalogIds":["nope"]}"#).is_err());
        let empty: ScopeLists = serde_json::from_str(r#"{"catalogIds":[]}"#).unwrap();
        assert!(empty.to_scope().is_err());
        let sales: ScopeLists = serde_json::from_str(&format!(r#"{{"catalogIds":["{SALES}"]}}"#)).unwrap();
        let scope = sales.to_scope().unwrap().unwrap();
        assert_eq!(ScopeLists::from_scope(&scope), sales);
    }
}
