//! Unit tests of URL building and nextLink checks.

use super::*;
use crate::domain::{AccessPackageId, AssignmentId, AssignmentRequestId, UserId};

const P: &str = "9a1d6e2c-3b4f-4c5d-8e6f-7a8b9c0d1e2f";
const U: &str = "c5a1b2d3-e4f5-4a6b-9c7d-8e9f0a1b2c3d";

fn base() -> Url {
    Url::parse("https://graph.microsoft.com").unwrap()
}

#[test]
fn filters_follow_each_version_s_documented_names() {
    let package = Scope::AccessPackage(AccessPackageId::parse(P).unwrap());
    let user = Scope::User(UserId::parse(U).unwrap());
    assert_eq!(
        filter(ApiVersion::V1, &package),
        format!("state eq 'delivered' and accessPackage/id eq '{P}'")
    );
    assert_eq!(
        filter(ApiVersion::V1, &user),
        format!("state eq 'delivered' and target/objectId eq '{U}'")
    );
    assert_eq!(
        filter(ApiVersion::Beta, &user),
        format!("assignmentState eq 'Delivered' and target/objectid eq '{U}'")
    );
}

#[test]
fn first_page_urls_are_percent_encoded() {
    let package = Scope::AccessPackage(AccessPackageId::parse(P).unwrap());
    let url = first_page_url(&base(), ApiVersion::V1, &package);
    assert_eq!(
        url.as_str(),
        format!(
            "https://graph.microsoft.com/v1.0/identityGovernance/entitlementManagement/assignments\
             ?$filter=state%20eq%20%27delivered%27%20and%20accessPackage/id%20eq%20%27{P}%27\
             &$expand=target,accessPackage%28%24expand%3Dcatalog%29&$select=id,state,status"
        )
    );
    let url = first_page_url(&base(), ApiVersion::Beta, &package);
    assert!(
        url.path()
            .ends_with("/beta/identityGovernance/entitlementManagement/accessPackageAssignments")
    );
    assert!(url.query().unwrap().contains("assignmentState%20eq%20%27Delivered%27"));
    assert_eq!(encode_query_value("a b'&=#+%?"), "a%20b%27%26%3D%23%2B%25%3F");
}

#[test]
fn next_links_must_stay_on_the_graph_origin_and_collection() {
    let ok = "https://graph.microsoft.com/v1.0/identityGovernance/entitlementManagement/assignments?$skiptoken=abc";
    assert_eq!(checked_next_link(&base(), ApiVersion::V1, ok).unwrap().as_str(), ok);
    for foreign in [
        "https://evil.example/v1.0/identityGovernance/entitlementManagement/assignments?$skiptoken=abc",
        "http://graph.microsoft.com/v1.0/identityGovernance/entitlementManagement/assignments",
        "https://graph.microsoft.com:8443/v1.0/identityGovernance/entitlementManagement/assignments",
        "https://user:pw@graph.microsoft.com/v1.0/identityGovernance/entitlementManagement/assignments",
        "https://graph.microsoft.com.evil.example/v1.0/identityGovernance/entitlementManagement/assignments",
    ] {
        assert!(
            matches!(
                checked_next_link(&base(), ApiVersion::V1, foreign),
                Err(NextLinkError::Foreign(_))
            ),
            "{foreign}"
        );
    }
    for bad in [
        "/v1.0/identityGovernance/entitlementManagement/assignments",
        "https://graph.microsoft.com/v1.0/users?$skiptoken=x",
        "https://graph.microsoft.com/beta/identityGovernance/entitlementManagement/accessPackageAssignments",
        "https://graph.microsoft.com/v1.0/identityGovernance/entitlementManagement/assignments#x",
    ] {
        assert!(
            matches!(
                checked_next_link(&base(), ApiVersion::V1, bad),
                Err(NextLinkError::Malformed(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn item_urls_expand_what_a_dry_run_shows() {
    let request = Target::AssignmentRequest(AssignmentRequestId::parse(U).unwrap());
    let url = item_url(&base(), ApiVersion::V1, &request);
    assert_eq!(
        url.as_str(),
        format!(
            "https://graph.microsoft.com/v1.0/identityGovernance/entitlementManagement/assignmentRequests/{U}\
             ?$expand=accessPackage%28%24expand%3Dcatalog%29,assignment%28%24expand%3Dtarget%29"
        )
    );
}

#[test]
fn scope_checks_read_the_package_and_its_catalog() {
    let assignment = Target::Assignment(AssignmentId::parse(U).unwrap());
    assert_eq!(
        membership_relative(ApiVersion::V1, &assignment),
        format!(
            "/identityGovernance/entitlementManagement/assignments/{U}?$expand=accessPackage%28%24expand%3Dcatalog%29"
        )
    );
    assert_eq!(
        membership_relative(ApiVersion::Beta, &assignment),
        format!(
            "/identityGovernance/entitlementManagement/accessPackageAssignments/{U}\
             ?$expand=accessPackage%28%24expand%3DaccessPackageCatalog%29"
        )
    );
    let package = AccessPackageId::parse(P).unwrap();
    assert_eq!(
        package_relative(ApiVersion::V1, &package),
        format!("/identityGovernance/entitlementManagement/accessPackages/{P}?$expand=catalog")
    );
}

#[test]
fn reprocess_and_batch_paths_per_version() {
    use crate::domain::AssignmentId;
    let a = Target::Assignment(AssignmentId::parse("0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10").unwrap());
    let r = Target::AssignmentRequest(AssignmentRequestId::parse("5f1e0e3c-2d7b-4f7e-8a0e-3c6b9d1e2f40").unwrap());
    let em = "identityGovernance/entitlementManagement";
    let cases = [
        (ApiVersion::V1, a, "v1.0", "assignments"),
        (ApiVersion::V1, r, "v1.0", "assignmentRequests"),
        (ApiVersion::Beta, a, "beta", "accessPackageAssignments"),
        (ApiVersion::Beta, r, "beta", "accessPackageAssignmentRequests"),
    ];
    for (version, target, segment, collection) in cases {
        let id = target.id();
        assert_eq!(
            reprocess_path(version, &target),
            format!("/{segment}/{em}/{collection}/{id}/reprocess")
        );
        assert_eq!(
            reprocess_relative(version, &target),
            format!("/{em}/{collection}/{id}/reprocess")
        );
    }
    let base = Url::parse("https://graph.microsoft.us").unwrap();
    assert_eq!(
        batch_url(&base, ApiVersion::Beta).as_str(),
        "https://graph.microsoft.us/beta/$batch"
    );
}

#[test]
fn continuations_keep_the_scopes_query_and_only_add_graphs_paging() {
    let package = Scope::AccessPackage(AccessPackageId::parse(P).unwrap());
    let other = Scope::AccessPackage(AccessPackageId::parse("1c7d3a9f-5d2b-4b54-8b66-8a1e2a7b3c21").unwrap());
    let first = first_page_url(&base(), ApiVersion::V1, &package);
    let link = format!("{first}&$skiptoken=RFNwdF64x2");
    let url = continuation_url(&base(), ApiVersion::V1, &package, &link).unwrap();
    assert_eq!(url.as_str(), link, "rebuilt to the same URL");
    // Graph may encode differently and order options otherwise: compared decoded, in any order.
    let path = "https://graph.microsoft.com/v1.0/identityGovernance/entitlementManagement/assignments";
    let reordered = format!(
        "{path}?%24skiptoken=abc&$select=id,state,status&$expand=target%2CaccessPackage(%24expand%3Dcatalog)&$filter=state+eq+'delivered'+and+accessPackage/id+eq+'{P}'&$top=100"
    );
    let url = continuation_url(&base(), ApiVersion::V1, &package, &reordered).unwrap();
    assert!(url.as_str().starts_with(first.as_str()) && url.as_str().ends_with("&$skiptoken=abc&$top=100"));

    let other_first = first_page_url(&base(), ApiVersion::V1, &other);
    let widened_filter = first.as_str().replace(
        &encode_query_value(&filter(ApiVersion::V1, &package)),
        "state%20eq%20%27delivered%27",
    );
    for (refused, why) in [
        (format!("{other_first}&$skiptoken=x"), "another package's filter"),
        (format!("{widened_filter}&$skiptoken=x"), "every delivered assignment"),
        (format!("{first}&$skiptoken=x&$search=%22a%22"), "an added option"),
        (format!("{first}&$skiptoken=x&$filter=x"), "a repeated option"),
        (format!("{first}&$skiptoken=x&$skiptoken=y"), "a repeated token"),
        (format!("{first}&$skip=1e3"), "a non-numeric $skip"),
        (first.to_string(), "no paging token"),
        (format!("{path}?$skiptoken=x"), "dropped options"),
    ] {
        assert!(
            matches!(
                continuation_url(&base(), ApiVersion::V1, &package, &refused),
                Err(NextLinkError::Malformed(_))
            ),
            "{why}: {refused}"
        );
    }
}

#[test]
fn drift_and_heal_urls_in_each_version_s_documented_forms() {
    let g = GroupId::parse(U).unwrap();
    let members = holders_first_page(&base(), ApiVersion::V1, &Holders::GroupMembers(g));
    assert_eq!(
        members.as_str(),
        format!("https://graph.microsoft.com/v1.0/groups/{U}/members?$select=id&$top=999")
    );
    let sp = ServicePrincipalId::parse(P).unwrap();
    let assigned = holders_first_page(&base(), ApiVersion::Beta, &Holders::AppRoleAssignedTo(sp));
    assert_eq!(
        assigned.as_str(),
        format!(
            "https://graph.microsoft.com/beta/servicePrincipals/{P}/appRoleAssignedTo?$select=principalId,appRoleId&$top=999"
        )
    );
    let package = AccessPackageId::parse(P).unwrap();
    assert_eq!(
        package_roles_url(&base(), ApiVersion::V1, &package).as_str(),
        format!(
            "https://graph.microsoft.com/v1.0/identityGovernance/entitlementManagement/accessPackages/{P}?$expand=resourceRoleScopes%28%24expand%3Drole,scope%29"
        )
    );
    let failed = HealListing::Requests(FailedState::DeliveryFailed);
    assert_eq!(
        heal_first_page(&base(), ApiVersion::V1, &failed).as_str(),
        "https://graph.microsoft.com/v1.0/identityGovernance/entitlementManagement/assignmentRequests?$filter=state%20eq%20%27deliveryFailed%27&$select=id,state,completedDateTime"
    );
    assert!(
        heal_first_page(&base(), ApiVersion::Beta, &failed)
            .as_str()
            .contains("accessPackageAssignmentRequests?$filter=requestState%20eq%20%27DeliveryFailed%27")
    );
}

#[test]
fn a_members_continuation_cannot_move_to_another_group_or_widen_the_select() {
    let g = GroupId::parse(U).unwrap();
    let first = holders_first_page(&base(), ApiVersion::V1, &Holders::GroupMembers(g));
    let ok = format!("{first}&$skiptoken=abc");
    let next = continuation_of(&base(), &first, &ok).unwrap();
    assert!(next.as_str().ends_with("$select=id&$top=999&$skiptoken=abc"), "{next}");
    let other = ok.replace(U, P);
    assert!(continuation_of(&base(), &first, &other).is_err());
    let wider = ok.replace("$select=id", "$select=id,mail");
    assert!(continuation_of(&base(), &first, &wider).is_err());
    let foreign = ok.replace("https://graph.microsoft.com", "https://evil.example");
    assert!(matches!(
        continuation_of(&base(), &first, &foreign),
        Err(NextLinkError::Foreign(_))
    ));
}
