//! Catalog scope: the catalogs and access packages one deployment may touch (`ALLOWED_CATALOG_IDS`,
//! `ALLOWED_ACCESS_PACKAGE_IDS`). An assignment or request is in scope when its access package is listed,
//! or the catalog holding that package is. Where Graph did not say which package or catalog an item
//! belongs to, it is out of scope: the check fails closed.

use super::ids::{AccessPackageId, CatalogId};
use std::collections::BTreeSet;

/// One or more layers of lists, each of which must allow an item: the deployment's lists, narrowed by
/// the lists of an authenticated caller's roles (or those a queue message carries). Narrowing only ever
/// adds a layer, so no caller and no message can widen what the deployment allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedScope {
    layers: Vec<Lists>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Lists {
    catalogs: BTreeSet<CatalogId>,
    packages: BTreeSet<AccessPackageId>,
}

impl Lists {
    fn allows(&self, membership: &Membership) -> bool {
        membership.access_package.is_some_and(|p| self.packages.contains(&p))
            || membership.catalog.is_some_and(|c| self.catalogs.contains(&c))
    }
}

/// Where Graph says an assignment, request or package belongs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Membership {
    pub access_package: Option<AccessPackageId>,
    pub catalog: Option<CatalogId>,
}

impl AllowedScope {
    /// `None` when neither list names anything: no scope, every ID may be reprocessed.
    pub fn new(
        catalogs: impl IntoIterator<Item = CatalogId>,
        packages: impl IntoIterator<Item = AccessPackageId>,
    ) -> Option<Self> {
        let lists = Lists {
            catalogs: catalogs.into_iter().collect(),
            packages: packages.into_iter().collect(),
        };
        (!lists.catalogs.is_empty() || !lists.packages.is_empty()).then(|| Self { layers: vec![lists] })
    }

    /// `base` (the wider scope, `None` = everything) narrowed by `narrower` (`None` = no narrowing): an
    /// item is allowed only where both allow it.
    pub fn narrowed(base: Option<&AllowedScope>, narrower: Option<&AllowedScope>) -> Option<AllowedScope> {
        match (base, narrower) {
            (None, None) => None,
            (Some(one), None) | (None, Some(one)) => Some(one.clone()),
            (Some(base), Some(narrower)) => {
                let mut layers = base.layers.clone();
                for layer in &narrower.layers {
                    if !layers.contains(layer) {
                        layers.push(layer.clone());
                    }
                }
                Some(Self { layers })
            }
        }
    }

    /// The union of several single-layer scopes (a caller's roles): allowed where any of them allows.
    /// Only the first layer of each counts, which is all a role's or a message's scope has.
    pub fn union<'a>(scopes: impl IntoIterator<Item = &'a AllowedScope>) -> Option<AllowedScope> {
        let mut lists = Lists::default();
        for scope in scopes {
            if let Some(first) = scope.layers.first() {
                lists.catalogs.extend(first.catalogs.iter().copied());
                lists.packages.extend(first.packages.iter().copied());
            }
        }
        Self::new(lists.catalogs, lists.packages)
    }

    pub fn allows(&self, membership: &Membership) -> bool {
        self.layers.iter().all(|layer| layer.allows(membership))
    }

    /// Whether a package is listed by itself in every layer (no Graph call needed to know it is in scope).
    pub fn lists_package(&self, package: &AccessPackageId) -> bool {
        self.layers.iter().all(|layer| layer.packages.contains(package))
    }

    /// Whether a package not listed by itself may still be in scope through its catalog: every layer
    /// that does not list it lists some catalog. Otherwise no Graph call can bring it into scope.
    pub fn may_allow_by_catalog(&self, package: &AccessPackageId) -> bool {
        self.layers
            .iter()
            .all(|layer| layer.packages.contains(package) || !layer.catalogs.is_empty())
    }

    /// The catalogs of the narrowest (last) layer: what a message carries when it narrows the scope.
    pub fn catalogs(&self) -> impl Iterator<Item = &CatalogId> {
        self.layers.last().into_iter().flat_map(|l| l.catalogs.iter())
    }

    /// The packages of the narrowest (last) layer.
    pub fn packages(&self) -> impl Iterator<Item = &AccessPackageId> {
        self.layers.last().into_iter().flat_map(|l| l.packages.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: &str = "11111111-1111-4111-8111-111111111111";
    const P: &str = "22222222-2222-4222-8222-222222222222";
    const Q: &str = "33333333-3333-4333-8333-333333333333";

    #[test]
    fn in_scope_by_package_or_catalog_and_closed_when_unknown() {
        assert!(AllowedScope::new([], []).is_none());
        let scope = AllowedScope::new([CatalogId::parse(C).unwrap()], [AccessPackageId::parse(P).unwrap()]).unwrap();
        let m = |p: Option<&str>, c: Option<&str>| Membership {
            access_package: p.map(|p| AccessPackageId::parse(p).unwrap()),
            catalog: c.map(|c| CatalogId::parse(c).unwrap()),
        };
        assert!(scope.allows(&m(Some(P), None)));
        assert!(scope.allows(&m(Some(Q), Some(C))));
        assert!(!scope.allows(&m(Some(Q), None)));
        assert!(!scope.allows(&m(None, None)));
        assert!(!scope.allows(&m(Some(Q), Some(Q))));
    }

    #[test]
    fn narrowing_only_takes_away() {
        let deployment = AllowedScope::new([CatalogId::parse(C).unwrap()], []).unwrap();
        let caller = AllowedScope::new([], [AccessPackageId::parse(P).unwrap()]).unwrap();
        let both = AllowedScope::narrowed(Some(&deployment), Some(&caller)).unwrap();
        let m = |p: &str, c: &str| Membership {
            access_package: Some(AccessPackageId::parse(p).unwrap()),
            catalog: Some(CatalogId::parse(c).unwrap()),
        };
        assert!(both.allows(&m(P, C)));
        // In the deployment's catalog, but not the caller's package.
        assert!(!both.allows(&m(Q, C)));
        // The caller's package, but in another catalog than the deployment's.
        assert!(!both.allows(&m(P, Q)));
        assert!(!both.lists_package(&AccessPackageId::parse(P).unwrap()));
        assert!(!both.may_allow_by_catalog(&AccessPackageId::parse(Q).unwrap()));
        assert!(both.may_allow_by_catalog(&AccessPackageId::parse(P).unwrap()));
        // Without a deployment scope the caller's is the whole scope.
        assert_eq!(AllowedScope::narrowed(None, Some(&caller)), Some(caller.clone()));
        assert_eq!(AllowedScope::narrowed(None, None), None);
        let union = AllowedScope::union([&deployment, &caller]).unwrap();
        assert!(union.allows(&m(P, Q)) && union.allows(&m(Q, C)));
    }
}
