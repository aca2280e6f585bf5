//! A set of assignments named by what they belong to. Scopes are expanded through the queue, a page
//! at a time (`crate::fanout`), never inside the invocation that receives them.

use super::ids::{AccessPackageId, UserId};

/// A set of assignments named by what they belong to: every *delivered* assignment of an access
/// package, or every delivered assignment whose target is a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    AccessPackage(AccessPackageId),
    User(UserId),
}

impl Scope {
    pub fn id(&self) -> &str {
        match self {
            Scope::AccessPackage(id) => id.as_str(),
            Scope::User(id) => id.as_str(),
        }
    }
}
