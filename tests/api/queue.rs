//! `function-reprocess-queue`: nothing lost, accepted IDs not redelivered, transient remainder
//! re-enqueued with an attempt count, dead-lettered after the last attempt.

use crate::helpers::*;
use reprocess_emulator::{Fault, sample};

#[test]
fn bare_guid_and_json_messages_are_reprocessed() {
    let app = spawn_app();
    let reply = app.queue_message(&format!("{}\n", sample::DELIVERED_1));
    assert_eq!(reply.status, 200);
    assert!(reply.json["Outputs"].as_object().unwrap().is_empty());
    let reply = app.queue_message(&format!(
        r#"{{"assignmentIds":["{}","{}"],"assignmentRequestIds":["{}"]}}"#,
        sample::DELIVERED_2,
        sample::DELIVERED_3,
        sample::REQUEST_FAILED
    ));
    assert_eq!(reply.status, 200);
    assert!(reply.json["Logs"][0].as_str().unwrap().contains("3 IDs, 3 accepted"));
    assert_eq!(app.graph_posts().len(), 4);
    app.assert_no_secrets_logged();
}

#[test]
fn only_the_transient_remainder_is_re_enqueued_then_dead_lettered_after_the_last_attempt() {
    let app = spawn_app_env(&[("GRAPH_MAX_ATTEMPTS", "1"), ("QUEUE_MAX_ATTEMPTS", "3")]);
    let state = &app.emulator.state;
    // DELIVERED_2 fails on its first three tries, DELIVERED_3 only on its first.
    state.faults.script(sample::DELIVERED_2, [Fault::status(503); 3]);
    state.faults.script(sample::DELIVERED_3, [Fault::throttled(1)]);
    let first = format!(
        r#"{{"assignmentIds":["{}","{}","{}"]}}"#,
        sample::DELIVERED_1,
        sample::DELIVERED_2,
        sample::DELIVERED_3
    );

    let reply = app.queue_message(&first);
    assert_eq!(
        reply.status, 200,
        "the host deletes the original: accepted IDs are not redelivered"
    );
    let retry = reply.output_messages("enqueue");
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0]["attempt"], 1);
    assert_eq!(
        retry[0]["assignmentIds"],
        serde_json::json!([sample::DELIVERED_2, sample::DELIVERED_3])
    );
    assert!(retry[0]["notBefore"].as_str().unwrap().ends_with('Z'));
    let correlation = retry[0]["correlationId"].as_str().unwrap().to_owned();

    // Feed the re-enqueued text back as the host would; shorten the wait so the test is quick.
    let mut next = retry[0].clone();
    next["notBefore"] = serde_json::json!("2020-01-01T00:00:00Z");
    let reply = app.queue_message(&next.to_string());
    let retry = reply.output_messages("enqueue");
    assert_eq!(retry[0]["attempt"], 2);
    assert_eq!(retry[0]["assignmentIds"], serde_json::json!([sample::DELIVERED_2]));
    assert_eq!(retry[0]["correlationId"], correlation.as_str());

    let mut last = retry[0].clone();
    last["notBefore"] = serde_json::json!("2020-01-01T00:00:00Z");
    let reply = app.queue_message(&last.to_string());
    assert!(reply.output_messages("enqueue").is_empty());
    let dead = reply.output_messages("deadLetter");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["assignmentIds"], serde_json::json!([sample::DELIVERED_2]));
    assert!(dead[0]["reason"].as_str().unwrap().contains("after 3 attempts"));
    assert_eq!(dead[0]["results"][0]["outcome"], "transient");

    let tenant = state.tenant.lock().unwrap();
    assert_eq!(
        tenant.reprocess_count(sample::DELIVERED_1),
        1,
        "accepted once, never redelivered"
    );
    assert_eq!(tenant.reprocess_count(sample::DELIVERED_3), 1);
    assert_eq!(tenant.reprocess_count(sample::DELIVERED_2), 0);
}

#[test]
fn not_before_is_waited_for() {
    let app = spawn_app();
    let not_before = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let not_before = not_before
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let started = std::time::Instant::now();
    let reply = app.queue_message(&format!(
        r#"{{"assignmentId":"{}","attempt":1,"notBefore":"{not_before}"}}"#,
        sample::DELIVERED_1
    ));
    assert_eq!(reply.status, 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(1500));
    assert_eq!(app.graph_posts().len(), 1);
}

#[test]
fn a_not_before_further_ahead_than_the_handler_ever_writes_is_dead_lettered_not_waited_for() {
    let app = spawn_app();
    let reply = app.queue_message(&format!(
        r#"{{"assignmentId":"{}","attempt":1,"notBefore":"9999-12-31T23:59:59Z"}}"#,
        sample::DELIVERED_1
    ));
    assert_eq!(reply.status, 200);
    let dead = reply.output_messages("deadLetter");
    assert_eq!(dead.len(), 1, "{}", reply.json);
    assert_eq!(dead[0]["errors"][0]["field"], "notBefore", "{}", dead[0]);
    assert!(dead[0]["originalMessage"].as_str().unwrap().contains("9999-12-31"));
    assert!(app.graph_posts().is_empty(), "nothing was reprocessed");
}

#[test]
fn permission_denied_ids_are_kept_in_the_dead_letter_queue_for_re_drive() {
    let app = spawn_app();
    app.emulator.state.set_app_role_granted(false);
    let reply = app.queue_message(sample::DELIVERED_1);
    assert_eq!(reply.status, 200);
    let dead = reply.output_messages("deadLetter");
    assert_eq!(dead[0]["assignmentIds"], serde_json::json!([sample::DELIVERED_1]));
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .contains("EntitlementManagement.ReadWrite.All")
    );
}
