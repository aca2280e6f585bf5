//! Domain types: IDs that can only hold GUIDs, what gets reprocessed, and what happened to each ID.
//! Nothing here knows JSON wire forms (`crate::message`), the host (`crate::host`) or Graph (`crate::graph`),
//! except the alert schema, whose only job is to find targets in an alert.

pub mod alert;
pub mod allowed;
pub mod caller;
pub mod heal;
pub mod ids;
pub mod outcome;
pub mod principal;
pub mod scope;
pub mod targets;
pub mod text;

pub use allowed::{AllowedScope, Membership};
pub use caller::Caller;
pub use ids::{
    AccessPackageId, AppRoleId, AssignmentId, AssignmentRequestId, CatalogId, CorrelationId, GroupId, Guid, GuidError,
    MessageKey, ServicePrincipalId, UserId,
};
pub use outcome::{ItemResult, Outcome, Report, Summary};
pub use principal::{CallerScopes, Grant, ScopeLists, VerifiedPrincipal};
pub use scope::Scope;
pub use targets::{Target, TargetKind, Targets};
