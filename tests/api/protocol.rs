//! The host wire protocol: readiness, envelopes byte for byte from `tests/fixtures/host/` (each fixture's
//! source is cited in that folder's README), reply shape and content type.

use crate::helpers::*;
use reprocess_emulator::host::{HttpCall, QueueMessageMeta, http_envelope, queue_envelope};
use reprocess_emulator::sample;

/// The per-message values the host filled into a captured queue envelope, to rebuild it byte for byte.
fn captured_meta(envelope: &str) -> QueueMessageMeta {
    let parsed: serde_json::Value = serde_json::from_str(envelope).unwrap();
    let m = &parsed["Metadata"];
    let unquote = |v: &serde_json::Value| serde_json::from_str::<String>(v.as_str().unwrap()).unwrap();
    QueueMessageMeta {
        dequeue_count: m["DequeueCount"].as_str().unwrap().parse().unwrap(),
        expiration_time: m["ExpirationTime"].as_str().unwrap().into(),
        id: unquote(&m["Id"]),
        insertion_time: m["InsertionTime"].as_str().unwrap().into(),
        next_visible_time: m["NextVisibleTime"].as_str().unwrap().into(),
        pop_receipt: unquote(&m["PopReceipt"]),
        utc_now: m["sys"]["UtcNow"].as_str().unwrap().into(),
        rand_guid: m["sys"]["RandGuid"].as_str().unwrap().into(),
    }
}

#[test]
fn answers_readiness_probe_with_json() {
    // `DefaultHttpWorkerService.IsWorkerReady` polls GET / and accepts any HTTP answer.
    let app = spawn_app();
    let (status, body) = app.get("/");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["status"],
        "ready"
    );
}

#[test]
fn envelope_builder_reproduces_the_captured_queue_envelopes() {
    // The builder the sandbox and the other tests use must write what the host writes.
    let cases = [
        ("queue_guid.json", "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10"),
        ("queue_malformed.json", r#"not-a-guid "quoted" \ backslash"#),
    ];
    for (name, text) in cases {
        let fixture = String::from_utf8(fixture(name)).unwrap();
        let meta = captured_meta(&fixture);
        assert_eq!(
            queue_envelope(QUEUE_FUNCTION, "message", text, &meta),
            fixture,
            "{name}"
        );
    }
}

#[test]
fn json_message_properties_land_after_sys_as_in_the_capture() {
    let fixture = String::from_utf8(fixture("queue_json.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&fixture).unwrap();
    let text = serde_json::from_str::<String>(parsed["Data"]["message"].as_str().unwrap()).unwrap();
    let meta = captured_meta(&fixture);
    assert_eq!(queue_envelope(QUEUE_FUNCTION, "message", &text, &meta), fixture);
}

#[test]
fn http_fixture_with_function_key_is_reprocessed() {
    // tests/fixtures/host/http_post_ids.json: Data.req from HttpRequestExtensions.GetRequestAsJObject.
    let app = spawn_app();
    let reply = app.invoke(HTTP_FUNCTION, &fixture("http_post_ids.json"));
    assert_eq!(reply.status, 200);
    assert!(
        reply.content_type.starts_with("application/json"),
        "{}",
        reply.content_type
    );
    let (status, headers, body) = reply.res();
    assert_eq!(status, 200);
    assert_eq!(headers["Content-Type"], "application/json");
    assert_eq!(body["summary"]["accepted"], 1);
    assert_eq!(body["results"][0]["id"], sample::DELIVERED_1);
    assert_eq!(body["results"][0]["outcome"], "accepted");
    assert_eq!(body["results"][0]["httpStatus"], 202);
    assert!(
        body["results"][0]["graphRequestId"]
            .as_str()
            .is_some_and(|s| s.len() == 36)
    );
    assert_eq!(reply.json["Logs"].as_array().unwrap().len(), 1);

    let posts = app.graph_posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].path_and_query,
        format!(
            "/v1.0/identityGovernance/entitlementManagement/assignments/{}/reprocess",
            sample::DELIVERED_1
        )
    );
    assert!(posts[0].had_authorization);
    assert_eq!(posts[0].content_length.as_deref(), Some("0"));
    assert!(posts[0].client_request_id.as_deref().is_some_and(|id| id.len() == 36));
    // The function key in the envelope's headers is never logged.
    assert!(
        !app.stdout()
            .contains("pR7vXq2Lm9TzK4cW8nB1yH6dJ3sF0gAuE5iO2kV7xQ9tN4mC1bZ6wA")
    );
    app.assert_no_secrets_logged();
}

#[test]
fn chunked_caller_body_is_missing_from_the_envelope_and_gets_a_clear_400() {
    // tests/fixtures/host/http_post_chunked.json: the host drops bodies without Content-Length.
    let app = spawn_app();
    let (status, _, body) = app.invoke(HTTP_FUNCTION, &fixture("http_post_chunked.json")).res();
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "empty_body");
    assert!(body["error"]["message"].as_str().unwrap().contains("chunked"));
    assert!(app.graph_posts().is_empty());
}

#[test]
fn queue_fixtures_are_decoded_from_their_double_encoding() {
    let app = spawn_app();
    let reply = app.invoke(QUEUE_FUNCTION, &fixture("queue_guid.json"));
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json["Logs"][0].as_str().unwrap(),
        "reprocess: 1 IDs, 1 accepted, 0 not found, 0 rejected, 0 permission denied, 0 out of scope, 0 transient"
    );
    assert!(reply.output_messages("enqueue").is_empty());
    assert!(reply.output_messages("deadLetter").is_empty());

    // queue_json.json: two IDs, one unknown to the tenant (404 is final: nothing to retry).
    let reply = app.invoke(QUEUE_FUNCTION, &fixture("queue_json.json"));
    assert_eq!(reply.status, 200);
    assert!(
        reply.json["Logs"][0]
            .as_str()
            .unwrap()
            .contains("1 accepted, 1 not found")
    );
    assert!(reply.output_messages("enqueue").is_empty());
    assert_eq!(app.graph_posts().len(), 3);
}

#[test]
fn queue_message_properties_overwriting_metadata_do_not_confuse_the_handler() {
    // queue_json_overwrites_id.json: the message's own Id/DequeueCount replaced the host's values, and it
    // carries fields this service does not accept, so it is dead-lettered with its text intact.
    let app = spawn_app();
    let reply = app.invoke(QUEUE_FUNCTION, &fixture("queue_json_overwrites_id.json"));
    assert_eq!(reply.status, 200);
    let dead = reply.output_messages("deadLetter");
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]["originalMessage"]
            .as_str()
            .unwrap()
            .starts_with(r#"{"Id":"11111111"#)
    );
    assert!(app.graph_posts().is_empty());
}

#[test]
fn malformed_queue_message_is_dead_lettered_at_once_with_reason_and_text() {
    let app = spawn_app();
    let reply = app.invoke(QUEUE_FUNCTION, &fixture("queue_malformed.json"));
    assert_eq!(
        reply.status, 200,
        "a 2xx makes the host delete it instead of retrying five times"
    );
    let dead = reply.output_messages("deadLetter");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["originalMessage"], r#"not-a-guid "quoted" \ backslash"#);
    assert!(dead[0]["reason"].as_str().unwrap().starts_with("malformed message"));
    assert_eq!(dead[0]["sourceQueue"], "reprocess-requests");
    let fixture_meta: serde_json::Value = serde_json::from_slice(&fixture("queue_malformed.json")).unwrap();
    let message_id = serde_json::from_str::<String>(fixture_meta["Metadata"]["Id"].as_str().unwrap()).unwrap();
    assert_eq!(dead[0]["messageId"], message_id.as_str());
    assert_eq!(dead[0]["dequeueCount"], 1);
    assert!(app.stdout_contains("malformed queue message dead-lettered"));
    assert!(app.graph_posts().is_empty());
}

#[test]
fn unreadable_envelope_fails_the_invocation_and_unknown_functions_404() {
    let app = spawn_app();
    let reply = app.invoke(QUEUE_FUNCTION, b"{not json");
    assert_eq!(reply.status, 500);
    assert!(reply.content_type.starts_with("application/json"));
    let reply = app.invoke("function-nope", br#"{"Data":{},"Metadata":{}}"#);
    assert_eq!(reply.status, 404);
}

#[test]
fn replies_survive_the_hosts_base64_rule_for_string_outputs() {
    // HttpScriptInvocationResultExtensions.GetBindingValue decodes *top-level* strings that are valid
    // base64; queue outputs are arrays, so a message is never reinterpreted.
    let app = spawn_app_env(&[("GRAPH_MAX_ATTEMPTS", "1"), ("QUEUE_MAX_ATTEMPTS", "5")]);
    app.emulator
        .state
        .faults
        .script(sample::DELIVERED_1, [reprocess_emulator::Fault::status(503)]);
    let reply = app.queue_message(sample::DELIVERED_1);
    assert!(reply.json["Outputs"]["enqueue"].is_array());
    assert!(reply.json["Outputs"]["enqueue"][0].is_string());
    let call = HttpCall::post_json("reprocess", &format!(r#"{{"assignmentId":"{}"}}"#, sample::DELIVERED_2));
    let reply = app.invoke(HTTP_FUNCTION, http_envelope(HTTP_FUNCTION, "req", &call).as_bytes());
    assert!(
        reply.json["Outputs"]["res"].is_object(),
        "res is an object, never a bare string"
    );
}
