//! `function-reprocess`: per-ID outcomes, input validation with field-level errors, limits, hostile IDs,
//! transient handling with 503 + Retry-After.

use crate::helpers::*;
use reprocess_emulator::{Fault, sample};
use serde_json::Value;

fn results_by_id(body: &Value) -> std::collections::HashMap<String, Value> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_owned(), r.clone()))
        .collect()
}

/// The two delivered assignments the fault scripts below aim at.
fn two_delivered() -> String {
    format!(
        r#"{{"assignmentIds":["{}","{}"]}}"#,
        sample::DELIVERED_1,
        sample::DELIVERED_2
    )
}

#[test]
fn every_id_gets_its_own_final_outcome() {
    let app = spawn_app();
    let body = format!(
        r#"{{"assignmentIds":["{}","{}","{}","{}"],"assignmentRequestIds":["{}","{}","{}"]}}"#,
        sample::DELIVERED_1,
        sample::EXPIRED,
        sample::UNKNOWN,
        sample::DELIVERED_1.to_uppercase(),
        sample::REQUEST_FAILED,
        sample::REQUEST_DELIVERED,
        sample::REQUEST_STALE
    );
    let (status, _, body) = app.post_ids(&body).res();
    assert_eq!(status, 200);
    assert_eq!(
        body["summary"],
        serde_json::json!({"total":6,"accepted":2,"notFound":1,"rejected":3,"permissionDenied":0,"outOfScope":0,"transient":0})
    );
    let r = results_by_id(&body);
    assert_eq!(r[sample::DELIVERED_1]["outcome"], "accepted");
    assert_eq!(r[sample::EXPIRED]["outcome"], "rejected");
    assert_eq!(r[sample::EXPIRED]["httpStatus"], 400);
    assert_eq!(r[sample::EXPIRED]["error"]["code"], "BadRequest");
    assert!(
        r[sample::EXPIRED]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    assert_eq!(r[sample::UNKNOWN]["outcome"], "not_found");
    assert_eq!(r[sample::UNKNOWN]["error"]["code"], "ResourceNotFound");
    assert_eq!(r[sample::REQUEST_FAILED]["outcome"], "accepted");
    assert_eq!(r[sample::REQUEST_FAILED]["kind"], "assignmentRequest");
    assert_eq!(r[sample::REQUEST_STALE]["outcome"], "rejected");
    // Duplicates (in any case) were collapsed: one call per distinct ID.
    assert_eq!(app.graph_posts().len(), 6);
    assert_eq!(
        app.emulator
            .state
            .tenant
            .lock()
            .unwrap()
            .reprocess_count(sample::DELIVERED_1),
        1
    );
    app.assert_no_secrets_logged();
}

#[test]
fn invalid_input_gets_a_400_naming_the_field_and_reason() {
    let app = spawn_app();
    let cases = [
        ("{not json", "invalid_json", None),
        ("[]", "invalid_json", None),
        (r#"{"assignmentIds":[]}"#, "no_ids", None),
        (r#"{"assignmentIds":"abc"}"#, "invalid_field", Some("assignmentIds")),
        (
            r#"{"assignmentIds":["0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10", 42]}"#,
            "invalid_field",
            Some("assignmentIds[1]"),
        ),
        (
            r#"{"assignmentRequestId":"nope"}"#,
            "invalid_field",
            Some("assignmentRequestId"),
        ),
        (
            r#"{"assignmentIDs":["0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10"]}"#,
            "invalid_field",
            Some("assignmentIDs"),
        ),
    ];
    for (input, code, field) in cases {
        let (status, _, body) = app.post_ids(input).res();
        assert_eq!(status, 400, "{input}");
        assert_eq!(body["error"]["code"], code, "{input}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
        if let Some(field) = field {
            assert_eq!(body["error"]["fields"][0]["field"], field, "{input}");
            assert!(body["error"]["fields"][0]["reason"].as_str().unwrap().len() > 5);
        }
    }
    assert!(app.graph_posts().is_empty());
}

#[test]
fn hostile_ids_never_reach_graph() {
    let app = spawn_app();
    let long = "a".repeat(100_000);
    let hostile = [
        "../../users",
        "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10/../../users",
        "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2%2F",
        "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b1?",
        "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b1#",
        "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b1\u{0430}",
        "0b6c2f8e\u{2010}4c1a-4a43-9a55-7f0d1f6a2b10",
        "\u{FF10}b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10",
        "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10\r\nX-Injected: 1",
        long.as_str(),
    ];
    for id in hostile {
        let body = serde_json::json!({ "assignmentIds": [id] }).to_string();
        let (status, _, reply) = app.post_ids(&body).res();
        assert_eq!(status, 400, "{}", &id[..id.len().min(60)]);
        assert_eq!(reply["error"]["fields"][0]["field"], "assignmentIds[0]");
        let body = serde_json::json!({ "assignmentRequestIds": [id] }).to_string();
        assert_eq!(app.post_ids(&body).res().0, 400);
    }
    for id in hostile {
        let reply = app.queue_message(id);
        assert_eq!(reply.output_messages("deadLetter").len(), 1);
    }
    assert!(
        app.emulator.state.graph_requests().is_empty(),
        "nothing reached the emulated Graph"
    );
}

#[test]
fn limits_answer_413_naming_the_limit() {
    let app = spawn_app_env(&[("MAX_IDS_PER_CALL", "2"), ("MAX_BODY_BYTES", "2048")]);
    let body = format!(
        r#"{{"assignmentIds":["{}","{}","{}"]}}"#,
        sample::DELIVERED_1,
        sample::DELIVERED_2,
        sample::DELIVERED_3
    );
    let (status, _, reply) = app.post_ids(&body).res();
    assert_eq!(status, 413);
    assert_eq!(reply["error"]["code"], "too_many_ids");
    assert_eq!(reply["error"]["limit"], 2);
    assert_eq!(reply["error"]["setting"], "MAX_IDS_PER_CALL");
    let padded = format!(
        r#"{{"assignmentIds":["{}"],"correlationId":"{}"}}"#,
        sample::DELIVERED_1,
        "a".repeat(3000)
    );
    let (status, _, reply) = app.post_ids(&padded).res();
    assert_eq!(status, 413);
    assert_eq!(reply["error"]["code"], "body_too_large");
    assert_eq!(reply["error"]["limit"], 2048);
    assert!(app.graph_posts().is_empty());
}

#[test]
fn default_limit_is_1000_distinct_ids() {
    let app = spawn_app();
    let ids: Vec<String> = (0..1001).map(|i| format!("00000000-0000-4000-8000-{i:012}")).collect();
    let (status, _, reply) = app
        .post_ids(&serde_json::json!({ "assignmentIds": ids }).to_string())
        .res();
    assert_eq!(status, 413);
    assert_eq!(reply["error"]["limit"], 1000);
}

#[test]
fn throttling_is_retried_in_the_invocation_honouring_retry_after() {
    let app = spawn_app();
    app.emulator
        .state
        .faults
        .script(sample::DELIVERED_1, [Fault::throttled(1)]);
    app.emulator
        .state
        .faults
        .script(sample::DELIVERED_2, [Fault::status(503), Fault::status(504)]);
    let started = std::time::Instant::now();
    let (status, _, reply) = app.post_ids(&two_delivered()).res();
    assert_eq!(status, 200);
    let r = results_by_id(&reply);
    assert_eq!(r[sample::DELIVERED_1]["outcome"], "accepted");
    assert_eq!(r[sample::DELIVERED_1]["attempts"], 2);
    assert_eq!(r[sample::DELIVERED_2]["attempts"], 3);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    let posts = app.graph_posts();
    assert_eq!(posts.len(), 5);
    // Retries keep the same client-request-id so Graph's logs can join them.
    let first: Vec<_> = posts
        .iter()
        .filter(|p| p.path_and_query.contains(sample::DELIVERED_1))
        .map(|p| p.client_request_id.clone())
        .collect();
    assert_eq!(first[0], first[1]);
}

#[test]
fn ids_still_transient_give_503_with_retry_after_and_every_result() {
    let app = spawn_app_env(&[("GRAPH_MAX_ATTEMPTS", "2")]);
    app.emulator
        .state
        .faults
        .script(sample::DELIVERED_2, [Fault::throttled(2), Fault::throttled(7)]);
    let (status, headers, reply) = app.post_ids(&two_delivered()).res();
    assert_eq!(status, 503);
    assert_eq!(headers["Retry-After"], "7");
    let r = results_by_id(&reply);
    assert_eq!(r[sample::DELIVERED_1]["outcome"], "accepted");
    assert_eq!(r[sample::DELIVERED_2]["outcome"], "transient");
    assert_eq!(r[sample::DELIVERED_2]["httpStatus"], 429);
    assert_eq!(r[sample::DELIVERED_2]["retryAfterSeconds"], 7);
    assert_eq!(reply["summary"]["transient"], 1);
}

#[test]
fn a_hung_graph_call_times_out_and_is_retried() {
    let app = spawn_app_env(&[("GRAPH_ATTEMPT_TIMEOUT_SECONDS", "1")]);
    app.emulator
        .state
        .faults
        .script(sample::DELIVERED_1, [Fault::Hang(std::time::Duration::from_secs(30))]);
    let (status, _, reply) = app
        .post_ids(&format!(r#"{{"assignmentId":"{}"}}"#, sample::DELIVERED_1))
        .res();
    assert_eq!(status, 200);
    assert_eq!(reply["results"][0]["outcome"], "accepted");
    assert_eq!(reply["results"][0]["attempts"], 2);
}

#[test]
fn missing_app_role_is_a_permission_error_naming_the_role() {
    let app = spawn_app();
    app.emulator.state.set_app_role_granted(false);
    let (status, _, reply) = app
        .post_ids(&format!(r#"{{"assignmentId":"{}"}}"#, sample::DELIVERED_1))
        .res();
    assert_eq!(status, 200, "a permission error is final, not worth a retry");
    assert_eq!(reply["results"][0]["outcome"], "permission_denied");
    assert_eq!(reply["results"][0]["httpStatus"], 403);
    assert_eq!(
        reply["results"][0]["missingAppRole"],
        "EntitlementManagement.ReadWrite.All"
    );
    assert_eq!(reply["results"][0]["error"]["code"], "Authorization_RequestDenied");
}
