//! What a hostile caller tried: writing into another caller's operation by naming its correlation ID
//! (real Azurite).

use crate::helpers::{ReplyExt, delivered_tenant};
use crate::operations::{
    finished, header, ids_of, location_of, spawn_tracked_in, storage_client, table_name, tokio_run,
};
use reprocess_handler::emulator::sample;
use reprocess_handler::storage::{TableKey, TableName};
use serde_json::{Value, json};

fn guids(from: usize, n: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| format!("5eed0000-0000-4000-8000-{i:012x}"))
        .collect()
}

/// The `op` row of an operation, as stored.
fn op_row(table: &str, op: &str) -> reprocess_handler::storage::Entity {
    let table = TableName::parse(table).unwrap();
    tokio_run(storage_client().get(&table, &TableKey::parse(op).unwrap(), &TableKey::parse("op").unwrap()))
        .unwrap()
        .expect("the operation's row")
}

#[test]
fn a_call_naming_an_existing_operation_is_refused_and_the_operation_is_untouched() {
    let (state, ids) = delivered_tenant(75, 12);
    let table = table_name();
    let app = spawn_tracked_in(state, &[("HTTP_SYNC_MAX_IDS", "10")], &table);

    // The victim's operation, finished.
    let reply = app.post_ids(&json!({ "assignmentIds": ids }).to_string());
    let (status, headers, queued) = reply.res();
    let location = location_of(status, &headers, &queued);
    let victim = queued["correlationId"].as_str().unwrap().to_owned();
    app.drain(reply.output_messages("enqueue"), true);
    let (before, results) = finished(&app, &location);
    assert_eq!(before["status"], "succeeded", "{before}");
    assert_eq!(ids_of(&results), ids.iter().cloned().collect());
    let row_before = op_row(&table, &victim);

    // The hostile calls: 150 other IDs (split into queue messages), a fan-out, and a drift request, each
    // naming the victim's operation. Each is refused with 409 naming the field; nothing is enqueued.
    let hostile = [
        json!({ "assignmentIds": guids(0, 150), "correlationId": victim }),
        json!({ "accessPackageIds": [sample::PACKAGE_SALES], "correlationId": victim }),
    ];
    for body in &hostile {
        let reply = app.post_ids(&body.to_string());
        let (status, _, answer) = reply.res();
        assert_eq!(status, 409, "{answer}");
        assert_eq!(answer["error"]["code"], "operation_exists");
        assert_eq!(answer["error"]["fields"][0]["field"], "correlationId");
        assert!(
            reply.output_messages("enqueue").is_empty(),
            "nothing enqueued for {body}"
        );
    }

    // The victim's operation is as it was: same status, results, counts and expiry.
    let (after, after_results) = finished(&app, &location);
    assert_eq!(after["status"], "succeeded", "{after}");
    assert_eq!(after["summary"], before["summary"]);
    assert_eq!(after["pendingMessages"], 0);
    assert_eq!(ids_of(&after_results), ids_of(&results));
    let row_after = op_row(&table, &victim);
    assert_eq!(row_after.str("expiresAt"), row_before.str("expiresAt"));
    assert_eq!(row_after.u64("scopes"), row_before.u64("scopes"));
}

#[test]
fn a_new_correlation_id_of_the_callers_own_is_kept_and_claimed_once() {
    let (state, ids) = delivered_tenant(76, 12);
    let table = table_name();
    let app = spawn_tracked_in(state, &[("HTTP_SYNC_MAX_IDS", "10")], &table);
    let own = format!("incident-{}", fastrand::u32(..));
    let body = json!({ "assignmentIds": ids, "correlationId": own }).to_string();

    // Two calls racing for the same new ID: exactly one gets it.
    let answers: Vec<(u16, Value, Value, Vec<Value>)> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let reply = app.post_ids(&body);
                    let (status, headers, answer) = reply.res();
                    (status, headers, answer, reply.output_messages("enqueue"))
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    statuses.sort();
    assert_eq!(statuses, [202, 409], "{answers:?}");
    let (status, headers, accepted, messages) = answers.into_iter().find(|a| a.0 == 202).unwrap();
    let location = location_of(status, &headers, &accepted);
    assert_eq!(
        accepted["correlationId"],
        own.as_str(),
        "the caller's new ID is the operation's"
    );
    assert!(messages.iter().all(|m| m["correlationId"] == own.as_str()));
    assert_eq!(header(&headers, "Retry-After"), Some("10"));

    // The handler's own messages, delivered twice (a redelivery), still record into the operation.
    let mut twice = messages.clone();
    twice.extend(messages);
    app.drain(twice, true);
    let (done, results) = finished(&app, &location);
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["summary"]["accepted"], 12);
    assert_eq!(ids_of(&results), ids.iter().cloned().collect());

    // Once finished, the ID stays taken.
    let (status, _, answer) = app.post_ids(&body).res();
    assert_eq!(status, 409, "{answer}");
}
