//! The one place a Graph URL is built from IDs. Only GUID newtypes are accepted, so nothing a caller
//! typed can add a path segment, a query or a fragment.
//!
//! v1.0: `entitlementManagement/assignments/{id}/reprocess` and `assignmentRequests/{id}/reprocess`
//! (`api-reference/v1.0/api/accesspackageassignment-reprocess.md`, `accesspackageassignmentrequest-reprocess.md`).
//! beta: `accessPackageAssignments/{id}/reprocess` and `accessPackageAssignmentRequests/{id}/reprocess`
//! (`api-reference/beta/api/...`); v1.0 has no `accessPackageAssignments` relationship.

use crate::config::ApiVersion;
use crate::domain::Target;

const EM: &str = "identityGovernance/entitlementManagement";

/// Path (from the Graph root, starting with `/`) of the reprocess action for a target.
pub fn reprocess_path(version: ApiVersion, target: &Target) -> String {
    format!("/{}{}", version.segment(), reprocess_relative(version, target))
}

/// The same path without the version segment, as a `$batch` sub-request's `url` is written.
pub fn reprocess_relative(version: ApiVersion, target: &Target) -> String {
    let collection = match (version, target) {
        (ApiVersion::V1, Target::Assignment(_)) => "assignments",
        (ApiVersion::V1, Target::AssignmentRequest(_)) => "assignmentRequests",
        (ApiVersion::Beta, Target::Assignment(_)) => "accessPackageAssignments",
        (ApiVersion::Beta, Target::AssignmentRequest(_)) => "accessPackageAssignmentRequests",
    };
    format!("/{EM}/{collection}/{}/reprocess", target.id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AssignmentId, AssignmentRequestId};

    #[test]
    fn paths_per_version() {
        let a = Target::Assignment(AssignmentId::parse("0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10").unwrap());
        let r = Target::AssignmentRequest(AssignmentRequestId::parse("5f1e0e3c-2d7b-4f7e-8a0e-3c6b9d1e2f40").unwrap());
        assert_eq!(
            reprocess_path(ApiVersion::V1, &a),
            "/v1.0/identityGovernance/entitlementManagement/assignments/0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10/reprocess"
        );
        assert_eq!(
            reprocess_path(ApiVersion::V1, &r),
            "/v1.0/identityGovernance/entitlementManagement/assignmentRequests/5f1e0e3c-2d7b-4f7e-8a0e-3c6b9d1e2f40/reprocess"
        );
        assert_eq!(
            reprocess_path(ApiVersion::Beta, &a),
            "/beta/identityGovernance/entitlementManagement/accessPackageAssignments/0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10/reprocess"
        );
        assert_eq!(
            reprocess_path(ApiVersion::Beta, &r),
            "/beta/identityGovernance/entitlementManagement/accessPackageAssignmentRequests/5f1e0e3c-2d7b-4f7e-8a0e-3c6b9d1e2f40/reprocess"
        );
        assert_eq!(
            reprocess_relative(ApiVersion::V1, &a),
            "/identityGovernance/entitlementManagement/assignments/0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10/reprocess"
        );
    }
}
