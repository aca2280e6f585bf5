//! Unit tests of request parsing (kept apart so `targets.rs` stays readable).

use super::*;
use crate::message::MAX_LISTED_FIELD_ERRORS;

const A: &str = "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10";
const B: &str = "5f1e0e3c-2d7b-4f7e-8a0e-3c6b9d1e2f40";

#[test]
fn collapses_duplicates_across_forms_and_case() {
    let body = format!(
        r#"{{"assignmentIds":["{A}","{}"],"assignmentId":"{A}","assignmentRequestIds":["{B}"]}}"#,
        A.to_uppercase()
    );
    let req = parse_json_request(&body, 1000).unwrap();
    assert_eq!(req.targets.len(), 2);
    assert_eq!(req.targets.assignment_ids()[0].as_str(), A);
    assert_eq!(req.targets.assignment_request_ids()[0].as_str(), B);
}

#[test]
fn names_the_bad_field() {
    let err = parse_json_request(r#"{"assignmentIds":["x", 5]}"#, 1000).unwrap_err();
    let fields: Vec<_> = err.field_errors().iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["assignmentIds[0]", "assignmentIds[1]"]);
    let err = parse_json_request(r#"{"assignmentIDs":[]}"#, 1000).unwrap_err();
    assert_eq!(err.field_errors()[0].field, "assignmentIDs");
}

#[test]
fn enforces_the_id_limit_after_collapsing_duplicates() {
    let body = format!(r#"{{"assignmentIds":["{A}","{A}","{B}"]}}"#);
    assert!(parse_json_request(&body, 2).is_ok());
    assert!(matches!(
        parse_json_request(&body, 1),
        Err(RequestError::TooManyIds { count: 2, limit: 1, .. })
    ));
}

#[test]
fn queue_message_forms() {
    assert_eq!(parse_queue_message(&format!(" {A}\n"), 10).unwrap().targets.len(), 1);
    assert_eq!(parse_queue_message(&format!("\"{A}\""), 10).unwrap().targets.len(), 1);
    let m = parse_queue_message(
        &format!(r#"{{"assignmentIds":["{A}"],"attempt":2,"notBefore":"2026-01-01T00:00:00Z"}}"#),
        10,
    )
    .unwrap();
    assert_eq!(m.meta.attempt, 2);
    assert!(m.meta.not_before.is_some());
    assert!(parse_queue_message("not-a-guid", 10).is_err());
    assert!(matches!(parse_queue_message("", 10), Err(RequestError::Empty)));
    assert!(matches!(
        parse_json_request("[1]", 10),
        Err(RequestError::NotAnObject("an array"))
    ));
    assert!(matches!(parse_json_request("{}", 10), Err(RequestError::NoTargets)));
}

#[test]
fn scopes_dry_run_and_next_link() {
    let body = format!(
        r#"{{"accessPackageIds":["{A}","{}"],"userId":"{B}","dryRun":true,"correlationId":"c-1"}}"#,
        A.to_uppercase()
    );
    let req = parse_json_request(&body, 10).unwrap();
    assert!(req.targets.is_empty() && req.dry_run);
    assert_eq!(req.scopes.len(), 2, "duplicates collapse across case");
    assert_eq!(crate::message::scope_field(&req.scopes[0]), "accessPackageIds");
    assert_eq!(req.scopes[1].id(), B);
    let err = parse_json_request(r#"{"userIds":["x"],"dryRun":"yes"}"#, 10).unwrap_err();
    let fields: Vec<_> = err.field_errors().iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["userIds[0]", "dryRun"]);
    let one = format!(r#"{{"userIds":["{B}"],"nextLink":"https://graph.microsoft.com/x"}}"#);
    assert!(parse_json_request(&one, 10).unwrap().next_link.is_some());
    let two = format!(r#"{{"userIds":["{B}"],"assignmentId":"{A}","nextLink":"https://x"}}"#);
    assert_eq!(
        parse_json_request(&two, 10).unwrap_err().field_errors()[0].field,
        "nextLink"
    );
}

#[test]
fn duplicate_keys_refuse_the_whole_text() {
    // serde_json's Value would keep only B and reprocess a subset.
    let body = format!(r#"{{"assignmentIds":["{A}"],"assignmentIds":["{B}"]}}"#);
    let err = parse_json_request(&body, 10).unwrap_err();
    assert!(matches!(err, RequestError::DuplicateKey(_)), "{err:?}");
    assert!(err.to_string().contains("$.assignmentIds"), "{err}");
    let err = parse_queue_message(&body, 10).unwrap_err();
    assert!(matches!(err, RequestError::DuplicateKey(_)), "{err:?}");
}

#[test]
fn counts_every_invalid_field_and_lists_fifty() {
    let values: Vec<String> = (0..80).map(|i| format!("\"bad-{i}\"")).collect();
    let err = parse_json_request(&format!(r#"{{"assignmentIds":[{}]}}"#, values.join(",")), 1000).unwrap_err();
    assert_eq!(err.field_errors().len(), MAX_LISTED_FIELD_ERRORS);
    assert!(
        err.to_string().starts_with("80 invalid fields (first 50 listed): "),
        "{err}"
    );
}

#[test]
fn http_bodies_refuse_queue_only_fields_by_name_and_list_only_caller_fields() {
    for (field, value) in [
        ("attempt", "3"),
        ("notBefore", "\"2030-01-01T00:00:00Z\""),
        ("nextLink", "\"https://graph.microsoft.com/x\""),
        ("origin", "{}"),
        ("messageKey", "\"0123456789abcdef01234567\""),
        ("heal", "\"requests:deliveryFailed\""),
    ] {
        let body = format!(r#"{{"assignmentIds":["{A}"],"{field}":{value}}}"#);
        let err = parse_http_body(&body, 10).unwrap_err();
        let errors = err.field_errors();
        assert_eq!(errors.len(), 1, "{body}: {err}");
        assert_eq!(errors[0].field, field);
        assert!(
            errors[0].reason.contains("HTTP call cannot send it"),
            "{}",
            errors[0].reason
        );
        // The queue form still takes it.
        let _ = parse_queue_message(&body, 10);
    }
    let err = parse_http_body(&format!(r#"{{"assignmentIds":["{A}"],"assignmentIDs":[]}}"#), 10).unwrap_err();
    let reason = &err.field_errors()[0].reason;
    assert!(
        reason.contains("assignmentIds") && reason.contains("detectDriftFor"),
        "{reason}"
    );
    for queue_only in ["nextLink", "attempt", "notBefore", "origin", "messageKey", "heal"] {
        assert!(!reason.contains(queue_only), "{reason}");
    }
    let body = parse_http_body(
        &format!(r#"{{"assignmentIds":["{A}"],"dryRun":true,"correlationId":"c-1"}}"#),
        10,
    )
    .unwrap();
    assert!(body.dry_run);
    assert_eq!(body.targets.len(), 1);
    assert_eq!(body.correlation_id.unwrap().to_string(), "c-1");
}
