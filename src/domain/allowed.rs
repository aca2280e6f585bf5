//! Catalog scope: the catalogs and access packages one deployment may touch (`ALLOWED_CATALOG_IDS`,
//! `ALLOWED_ACCESS_PACKAGE_IDS`). An assignment or request is in scope when its access package is listed,
//! or the catalog holding that package is. Where Graph did not say which package or catalog an item
//! belongs to, it is out of scope: the check fails closed.

use super::ids::{AccessPackageId, CatalogId};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedScope {
    catalogs: BTreeSet<CatalogId>,
    packages: BTreeSet<AccessPackageId>,
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
        let scope = Self {
            catalogs: catalogs.into_iter().collect(),
            packages: packages.into_iter().collect(),
        };
        (!scope.catalogs.is_empty() || !scope.packages.is_empty()).then_some(scope)
    }

    pub fn allows(&self, membership: &Membership) -> bool {
        membership.access_package.is_some_and(|p| self.packages.contains(&p))
            || membership.catalog.is_some_and(|c| self.catalogs.contains(&c))
    }

    /// Whether a package is listed by itself (no Graph call needed to know it is in scope).
    pub fn lists_package(&self, package: &AccessPackageId) -> bool {
        self.packages.contains(package)
    }

    /// Whether some catalog is listed, so a package not listed itself may still be in scope.
    pub fn has_catalogs(&self) -> bool {
        !self.catalogs.is_empty()
    }

    pub fn catalogs(&self) -> impl Iterator<Item = &CatalogId> {
        self.catalogs.iter()
    }

    pub fn packages(&self) -> impl Iterator<Item = &AccessPackageId> {
        self.packages.iter()
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
}
