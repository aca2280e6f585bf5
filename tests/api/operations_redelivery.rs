//! Operations under redelivery and retries: a message redelivered after a crash rewrites the same state,
//! children a redelivery no longer makes are superseded, re-enqueued transients end final, and a late
//! redelivery cannot turn a final result back into a transient one (real Azurite).

use crate::helpers::{ReplyExt, delivered_tenant};
use crate::operations::{
    finished, ids_of, location_of, spawn_tracked, spawn_tracked_in, storage_client, table_name, tokio_run,
};
use reprocess_emulator::{EmulatorState, sample};
use serde_json::{Value, json};

#[test]
fn a_redelivered_message_rewrites_the_same_state() {
    let app = spawn_tracked(EmulatorState::new(sample::tenant()), &[]);
    let reply = app.post_ids(&json!({ "accessPackageIds": [sample::PACKAGE_BULK] }).to_string());
    let (status, headers, accepted) = reply.res();
    let location = location_of(status, &headers, &accepted);
    let expansion = reply.output_messages("enqueue").remove(0).to_string();

    // First delivery: the invocation records its children as pending, then the host crashes before it
    // writes the outputs. Nothing more runs, so the operation must not look finished.
    let first = app.queue_message(&expansion);
    assert_eq!(first.status, 200);
    let (status, _, running) = app.get_status(&location).res();
    assert_eq!(
        status, 202,
        "children recorded but never enqueued keep it running: {running}"
    );

    // Redelivery of the same text: the same children, under the same keys.
    let second = app.queue_message(&expansion);
    let keys = |r: &crate::helpers::HostReply| -> Vec<Value> {
        r.output_messages("enqueue")
            .iter()
            .map(|m| m["messageKey"].clone())
            .collect()
    };
    assert_eq!(keys(&first), keys(&second));
    // And a third delivery whose outputs the host does write as well (a crash after the outputs were
    // written, before the message was deleted): every child then runs twice.
    let third = app.queue_message(&expansion);
    let mut messages = second.output_messages("enqueue");
    messages.extend(third.output_messages("enqueue"));
    app.drain(messages, true);

    let (done, results) = finished(&app, &location);
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["summary"]["accepted"], 260, "each ID counted once");
    assert_eq!(done["listing"]["pagesListed"], 3, "each page counted once");
    assert_eq!(done["listing"]["idsFound"], 260);
    assert_eq!(results.len(), 260);

    // A chunk delivered once more after the operation finished, now refused for lack of permission:
    // the counts follow the new state (the summary kept in the `op` row is not reused).
    app.emulator.state.set_app_role_granted(false);
    let chunk = second
        .output_messages("enqueue")
        .into_iter()
        .find(|m| m.get("assignmentIds").is_some())
        .expect("an ID chunk");
    let refused = chunk["assignmentIds"].as_array().unwrap().len() as u64;
    assert_eq!(app.queue_message(&chunk.to_string()).status, 200);
    let (after, _) = finished(&app, &location);
    assert_eq!(after["status"], "completedWithErrors", "{after}");
    assert_eq!(after["summary"]["permission_denied"], refused);
    assert_eq!(after["summary"]["accepted"], 260 - refused);
    assert_eq!(after["summary"]["dead_lettered"], refused);
}

#[test]
fn children_a_redelivery_no_longer_makes_are_superseded() {
    let (state, ids) = delivered_tenant(72, 45);
    let app = spawn_tracked(state, &[]);
    let reply = app.post_ids(&json!({ "accessPackageIds": [sample::PACKAGE_SALES] }).to_string());
    let (status, headers, accepted) = reply.res();
    let location = location_of(status, &headers, &accepted);
    let expansion = reply.output_messages("enqueue").remove(0).to_string();
    let first = app.queue_message(&expansion);
    let first_children = first.output_messages("enqueue").len();
    // The first run's outputs are lost; meanwhile 30 of the 45 assignments expire.
    {
        let mut tenant = app.emulator.state.tenant.lock().unwrap();
        for id in &ids[..30] {
            tenant.assignments.get_mut(id).unwrap().state = "expired";
        }
    }
    let second = app.queue_message(&expansion);
    let second_children = second.output_messages("enqueue");
    assert!(
        second_children.len() < first_children,
        "{first_children} then {}",
        second_children.len()
    );
    app.drain(second_children, true);
    let (done, results) = finished(&app, &location);
    assert_eq!(
        done["status"], "succeeded",
        "stale children do not hold it open: {done}"
    );
    assert_eq!(ids_of(&results), ids[30..].iter().cloned().collect());
}

/// Transient IDs are re-enqueued (a child message) and their later final result replaces the transient
/// one; a late redelivery of the first attempt cannot turn a final result back into a transient one.
#[test]
fn re_enqueued_transients_end_final_and_stay_final() {
    use reprocess_emulator::Fault;
    use reprocess_handler::storage::{TableKey, TableName};
    let (state, ids) = delivered_tenant(74, 15);
    let table_text = table_name();
    let app = spawn_tracked_in(
        state,
        &[("HTTP_SYNC_MAX_IDS", "10"), ("GRAPH_MAX_ATTEMPTS", "1")],
        &table_text,
    );
    app.emulator.state.faults.script(&ids[3], [Fault::status(503)]);
    let reply = app.post_ids(&json!({ "assignmentIds": ids }).to_string());
    let (status, headers, queued) = reply.res();
    let location = location_of(status, &headers, &queued);
    let chunks = reply.output_messages("enqueue");
    let drained = app.drain(chunks.clone(), true);
    let retries: Vec<&Value> = drained.id_messages.iter().filter(|m| m["attempt"] == 1).collect();
    assert_eq!(retries.len(), 1, "the transient ID was re-enqueued once");
    let (done, results) = finished(&app, &location);
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["summary"]["accepted"], 15);
    assert_eq!(done["summary"]["transient"], 0);
    let third = results.iter().find(|r| r["id"] == ids[3].as_str()).unwrap();
    assert_eq!(third["outcome"], "accepted");

    // The first chunk delivered again, late, and Graph fails for the ID again.
    app.emulator.state.faults.script(&ids[3], [Fault::status(503)]);
    let late = app.queue_message(&chunks[0].to_string());
    assert_eq!(late.status, 200);
    let table = TableName::parse(&table_text).unwrap();
    let op = TableKey::parse(queued["correlationId"].as_str().unwrap()).unwrap();
    let row = TableKey::parse(&format!("r|{}", ids[3])).unwrap();
    let kept = tokio_run(storage_client().get(&table, &op, &row)).unwrap().unwrap();
    assert_eq!(
        kept.str("outcome"),
        Some("accepted"),
        "a transient never replaces a final result"
    );
    // Its re-enqueued retry (same key as before) runs, and the operation ends as it was.
    assert_eq!(app.get_status(&location).res().0, 202);
    app.drain(late.output_messages("enqueue"), true);
    let (again, _) = finished(&app, &location);
    assert_eq!(again["summary"], done["summary"]);
}
