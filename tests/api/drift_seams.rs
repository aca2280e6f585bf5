//! Where drift detection meets the other merged work: the drift 202 is a tracked operation
//! whose `Location` polls to 200 with what was reprocessed, every drift reprocess and drift
//! dry run leaves an audit record, and a drift package outside the catalog scope is refused
//! up front like `accessPackageIds`.

use crate::helpers::*;
use crate::operations::{finished, ids_of, location_of, spawn_tracked};
use reprocess_emulator::{EmulatorState, sample};
use serde_json::{Value, json};
use std::time::Duration;

const ON: (&str, &str) = ("DRIFT_DETECTION_ENABLED", "true");

fn remove_from_engineering(app: &TestApp, users: &[&str]) {
    let mut tenant = app.emulator.state.tenant.lock().unwrap();
    for user in users {
        tenant.directory.remove_member(sample::GROUP_ENGINEERING, user);
    }
}

fn drift_body(packages: &[&str]) -> String {
    json!({ "detectDriftFor": { "accessPackageIds": packages } }).to_string()
}

/// The audit lines (`audit_schema` 1) on the handler's stdout.
fn audit_lines(app: &TestApp) -> Vec<Value> {
    assert!(app.stdout_contains("\"audit_schema\":1"), "no audit line at all");
    std::thread::sleep(Duration::from_millis(50));
    app.stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["audit_schema"] == 1)
        .collect()
}

#[test]
fn a_drift_call_answers_202_with_a_location_that_polls_to_200_with_the_reprocessed_assignment() {
    let app = spawn_tracked(EmulatorState::new(sample::tenant()), &[ON]);
    remove_from_engineering(&app, &[sample::USER_DIEGO]);
    let reply = app.post_ids(&drift_body(&[sample::PACKAGE_ENGINEERING]));
    let (status, headers, accepted) = reply.res();
    let location = location_of(status, &headers, &accepted);
    assert_eq!(accepted["enqueued"]["driftMessages"], 1);
    let messages = reply.output_messages("enqueue");
    assert_eq!(messages.len(), 1);
    assert!(messages[0]["messageKey"].is_string(), "{}", messages[0]);
    assert_eq!(messages[0]["origin"]["trigger"], "http", "{}", messages[0]);

    // Queued, not yet run.
    let (status, _, running) = app.get_status(&location).res();
    assert_eq!((status, &running["status"]), (202, &json!("running")), "{running}");

    let drained = app.drain(messages, true);
    assert!(drained.dead_letters.is_empty(), "{:?}", drained.dead_letters);
    let (body, results) = finished(&app, &location);
    assert_eq!(body["status"], "succeeded", "{body}");
    assert_eq!(ids_of(&results), [sample::ENG_DIEGO.to_owned()].into());
    assert_eq!(results[0]["outcome"], "accepted", "{results:?}");
    assert_eq!(
        app.emulator
            .state
            .tenant
            .lock()
            .unwrap()
            .reprocess_count(sample::ENG_DIEGO),
        1
    );
}

#[test]
fn more_drifted_than_http_sync_max_ids_poll_to_200_with_every_id_from_the_id_messages() {
    let app = spawn_tracked(EmulatorState::new(sample::tenant()), &[ON, ("HTTP_SYNC_MAX_IDS", "1")]);
    remove_from_engineering(&app, &[sample::USER_DIEGO, sample::USER_DIANA]);
    let reply = app.post_ids(&drift_body(&[sample::PACKAGE_ENGINEERING]));
    let (status, headers, accepted) = reply.res();
    let location = location_of(status, &headers, &accepted);

    // The drift message detects and enqueues one ID message: still running until that one is done.
    let first = app.queue_message(&reply.output_messages("enqueue")[0].to_string());
    let children = first.output_messages("enqueue");
    assert_eq!(children.len(), 1, "{}", first.json);
    assert!(children[0]["messageKey"].is_string(), "{}", children[0]);
    assert_eq!(children[0]["origin"]["trigger"], "http", "{}", children[0]);
    let (status, _, running) = app.get_status(&location).res();
    assert_eq!((status, &running["status"]), (202, &json!("running")), "{running}");

    app.drain(children, true);
    let (body, results) = finished(&app, &location);
    assert_eq!(body["status"], "succeeded", "{body}");
    assert_eq!(
        ids_of(&results),
        [sample::ENG_DIEGO.to_owned(), sample::ENG_DIANA.to_owned()].into()
    );
}

#[test]
fn a_dead_lettered_drift_message_ends_the_operation_naming_its_package() {
    let app = spawn_tracked(EmulatorState::new(sample::tenant()), &[ON]);
    let reply = app.post_ids(&drift_body(&[sample::PACKAGE_ENGINEERING]));
    let (status, headers, accepted) = reply.res();
    let location = location_of(status, &headers, &accepted);
    // The identity lost the membership read: detection dead-letters the message.
    app.emulator
        .state
        .tenant
        .lock()
        .unwrap()
        .directory
        .granted_reads
        .remove(reprocess_emulator::directory::GROUP_MEMBER_READ);
    let drained = app.drain(reply.output_messages("enqueue"), true);
    assert_eq!(drained.dead_letters.len(), 1);
    let (body, _) = finished(&app, &location);
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["deadLettered"][0]["id"], sample::PACKAGE_ENGINEERING, "{body}");
}

#[test]
fn a_drift_reprocess_and_a_drift_dry_run_are_audited_with_the_queue_message_and_the_caller() {
    let app = spawn_app_env(&[ON]);
    remove_from_engineering(&app, &[sample::USER_DIEGO]);

    // Dry run: one record naming the package, reprocessing nothing.
    let mut body: Value = serde_json::from_str(&drift_body(&[sample::PACKAGE_ENGINEERING])).unwrap();
    body["dryRun"] = json!(true);
    let (status, _, dry) = app.post_ids(&body.to_string()).res();
    assert_eq!(status, 200, "{dry}");
    let lines = audit_lines(&app);
    let dry_record = lines
        .iter()
        .find(|l| l["audit"] == "dry_run")
        .expect("a dry-run record");
    assert_eq!(dry_record["trigger"], "http");
    assert_eq!(dry_record["access_package_ids"], sample::PACKAGE_ENGINEERING);
    assert!(
        dry_record["detail"].as_str().unwrap().contains("\"drifted\":1"),
        "{dry_record}"
    );
    assert!(app.graph_posts().is_empty());

    // The real thing: the queue invocation's record names its message and the HTTP caller.
    let reply = app.post_ids(&drift_body(&[sample::PACKAGE_ENGINEERING]));
    assert_eq!(reply.res().0, 202);
    let http_invocation = reply.res().2["invocationId"].as_str().unwrap().to_owned();
    let queued = app.queue_message(&reply.output_messages("enqueue")[0].to_string());
    assert_eq!(queued.status, 200);
    assert!(app.stdout_contains(sample::ENG_DIEGO));
    let lines = audit_lines(&app);
    let record = lines
        .iter()
        .find(|l| l["audit"] == "reprocess" && l["assignment_ids"] == sample::ENG_DIEGO)
        .unwrap_or_else(|| panic!("no reprocess record for the drifted assignment: {lines:#?}"));
    assert_eq!(record["trigger"], "queue");
    assert_eq!(record["outcome"], "accepted");
    assert!(
        record["queue_message_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{record}"
    );
    assert_eq!(record["queue_dequeue_count"], 1);
    assert_eq!(record["origin_trigger"], "http", "{record}");
    assert_eq!(record["origin_invocation_id"], http_invocation.as_str(), "{record}");
    assert!(record["graph_request_id"].as_str().is_some_and(|id| !id.is_empty()));
}

#[test]
fn a_drift_package_outside_the_catalog_scope_is_refused_up_front() {
    let app = spawn_app_env(&[ON, ("ALLOWED_CATALOG_IDS", sample::CATALOG_GENERAL)]);
    for dry_run in [false, true] {
        let body = json!({
            "detectDriftFor": { "accessPackageIds": [sample::PACKAGE_ENGINEERING, sample::PACKAGE_PAYROLL] },
            "dryRun": dry_run,
        });
        let reply = app.post_ids(&body.to_string());
        let (status, _, body) = reply.res();
        assert_eq!(
            (status, &body["error"]["code"]),
            (400, &json!("out_of_scope")),
            "{body}"
        );
        let fields = body["error"]["fields"].as_array().unwrap();
        assert_eq!(fields.len(), 1, "{body}");
        assert_eq!(fields[0]["field"], "detectDriftFor.accessPackageIds");
        assert_eq!(fields[0]["id"], sample::PACKAGE_PAYROLL);
        assert!(
            fields[0]["reason"].as_str().unwrap().contains(sample::CATALOG_HR),
            "{body}"
        );
        assert!(reply.json["Outputs"].get("enqueue").is_none(), "nothing enqueued");
    }
    // Nothing was listed: only the scope check read Graph.
    assert!(
        app.emulator
            .state
            .graph_requests_with("GET")
            .iter()
            .all(|r| !r.path_and_query.contains("assignments")),
        "a refused drift call listed assignments"
    );
    let refused = audit_lines(&app);
    assert!(
        refused
            .iter()
            .any(|l| l["audit"] == "fan_out_refused" && l["access_package_ids"] == sample::PACKAGE_PAYROLL),
        "{refused:#?}"
    );
    // The package inside the scope alone is accepted.
    let reply = app.post_ids(&drift_body(&[sample::PACKAGE_ENGINEERING]));
    assert_eq!(reply.res().0, 202, "{}", reply.json);
}

#[test]
fn a_queued_drift_message_for_a_package_outside_the_scope_is_dropped_before_any_listing() {
    let app = spawn_app_env(&[ON, ("ALLOWED_CATALOG_IDS", sample::CATALOG_GENERAL)]);
    let reply = app.queue_message(&drift_body(&[sample::PACKAGE_PAYROLL]));
    assert_eq!(reply.status, 200);
    let outputs = &reply.json["Outputs"];
    assert!(outputs.get("enqueue").is_none(), "{outputs}");
    assert!(outputs.get("deadLetter").is_none(), "nothing to re-drive");
    let unbatched = app.emulator.state.unbatched_gets();
    assert_eq!(unbatched, 0, "the package was read for drift detection");
    assert!(app.stdout_contains("\"audit\":\"fan_out_refused\""));
}
