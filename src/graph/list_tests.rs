//! Unit tests of page parsing and dry-run summaries.

use super::*;

const P: &str = "9a1d6e2c-3b4f-4c5d-8e6f-7a8b9c0d1e2f";
const U: &str = "c5a1b2d3-e4f5-4a6b-9c7d-8e9f0a1b2c3d";

fn base() -> Url {
    Url::parse("https://graph.microsoft.com").unwrap()
}

fn scope() -> Scope {
    Scope::AccessPackage(crate::domain::AccessPackageId::parse(P).unwrap())
}

/// Graph's nextLink for the package's listing: every query option as sent, plus a skip token.
fn next_link(extra: &str) -> String {
    let first = super::super::paths::first_page_url(&base(), ApiVersion::V1, &scope());
    format!("{first}&$skiptoken=x{extra}")
}

#[test]
fn pages_keep_delivered_guids_once_and_check_the_next_link() {
    let body = serde_json::json!({
        "value": [
            { "id": "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10", "state": "delivered",
              "accessPackage": { "id": P, "displayName": "Sales", "description": "x" },
              "target": { "objectId": U, "displayName": "Adele", "email": null } },
            { "id": "0B6C2F8E-4C1A-4A43-9A55-7F0D1F6A2B10", "state": "delivered" },
            { "id": "1c7d3a9f-5d2b-4b54-8b66-8a1e2a7b3c21", "state": "expired" },
            { "id": "../users", "state": "delivered" }
        ],
        "@odata.nextLink": next_link("")
    });
    let page = parse_page(&base(), ApiVersion::V1, &scope(), body.to_string().as_bytes()).unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.dropped, 2);
    assert_eq!(
        page.items[0].access_package,
        Some(serde_json::json!({ "id": P, "displayName": "Sales" }))
    );
    assert_eq!(
        page.items[0].target,
        Some(serde_json::json!({ "objectId": U, "displayName": "Adele" }))
    );
    assert_eq!(page.next_link.unwrap().as_str(), next_link(""));
    // A link from Graph that widens the listing is refused like one from a message.
    let wider = serde_json::json!({ "value": [], "@odata.nextLink": next_link("&$search=x") });
    assert!(matches!(
        parse_page(&base(), ApiVersion::V1, &scope(), wider.to_string().as_bytes()),
        Err(ListError::BadNextLink(_))
    ));
    let foreign = serde_json::json!({ "value": [], "@odata.nextLink": "https://evil.example/x" });
    assert!(matches!(
        parse_page(&base(), ApiVersion::V1, &scope(), foreign.to_string().as_bytes()),
        Err(ListError::ForeignNextLink(_))
    ));
    assert!(matches!(
        parse_page(&base(), ApiVersion::V1, &scope(), b"{}"),
        Err(ListError::BadBody(_))
    ));
}

#[test]
fn summaries_read_both_versions_field_names() {
    let summary = summarize_item(&serde_json::json!({
        "assignmentState": "Delivered", "accessPackageAssignment": { "target": { "objectId": U } }
    }));
    assert_eq!(summary["state"], "Delivered");
    assert_eq!(summary["target"]["objectId"], U);
}
