//! The answers of `POST /reprocess` that the catalog scope and drift detection
//! add, driven through the emulated host and checked against `openapi/reprocess-handler.json` by
//! `openapi::Coverage` (strict schemas: an undocumented field fails).

use crate::helpers::*;
use crate::openapi::{Coverage, spawn_tracked, spawn_with_dead_storage_env};
use reprocess_emulator::directory::GROUP_MEMBER_READ;
use reprocess_emulator::{Fault, sample};
use serde_json::{Value, json};

fn drift(packages: &[&str], dry_run: bool) -> String {
    json!({ "detectDriftFor": { "accessPackageIds": packages }, "dryRun": dry_run }).to_string()
}

fn code(body: &Value) -> &Value {
    &body["error"]["code"]
}

fn headers_location(reply: &HostReply) -> String {
    let (_, headers, _) = reply.res();
    headers["Location"].as_str().expect("a 202 with Location").to_owned()
}

/// No reprocess was sent to Graph by the refused calls.
fn reply_enqueued_nothing(app: &TestApp) -> bool {
    app.emulator
        .state
        .tenant
        .lock()
        .unwrap()
        .reprocess_count(sample::PAYROLL_CARLOS)
        == 0
}

/// `app` has neither a catalog scope nor drift detection on.
pub(crate) fn drive(c: &mut Coverage<'_>, app: &TestApp) {
    // 400: fields only the handler's own queue messages carry.
    let nil = "00000000-0000-4000-8000-000000000000";
    let origin = json!({ "assignmentIds": [nil], "origin": { "trigger": "http" } });
    let (status, _, body) = c.answer(&app.post_ids(&origin.to_string()));
    assert_eq!((status, code(&body)), (400, &json!("invalid_field")), "{body}");

    // 403: drift detection off.
    let (status, _, body) = c.answer(&app.post_ids(&drift(&[sample::PACKAGE_ENGINEERING], true)));
    assert_eq!((status, code(&body)), (403, &json!("drift_detection_off")), "{body}");

    let scoped = spawn_tracked(&[
        ("ALLOWED_CATALOG_IDS", sample::CATALOG_GENERAL),
        ("DRIFT_DETECTION_ENABLED", "true"),
        ("GRAPH_MAX_ATTEMPTS", "1"),
    ]);
    // 200: an ID outside the scope (out_of_scope with its package and catalog).
    let ids = json!({ "assignmentIds": [sample::VISITORS_CARLOS, sample::PAYROLL_CARLOS] });
    let (status, _, body) = c.answer(&scoped.post_ids(&ids.to_string()));
    assert_eq!((status, &body["summary"]["outOfScope"]), (200, &json!(1)), "{body}");
    let refused = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["outcome"] == "out_of_scope")
        .unwrap();
    assert_eq!(refused["catalogId"], sample::CATALOG_HR, "{refused}");

    // 400: packages outside the scope, named directly or for drift detection.
    for body in [
        json!({ "accessPackageIds": [sample::PACKAGE_PAYROLL] }).to_string(),
        drift(&[sample::PACKAGE_PAYROLL], false),
    ] {
        let (status, _, answer) = c.answer(&scoped.post_ids(&body));
        assert_eq!((status, code(&answer)), (400, &json!("out_of_scope")), "{answer}");
        assert_eq!(answer["error"]["fields"][0]["id"], sample::PACKAGE_PAYROLL);
    }

    // 200: a drift dry run finds the member removed by hand.
    scoped
        .emulator
        .state
        .tenant
        .lock()
        .unwrap()
        .directory
        .remove_member(sample::GROUP_ENGINEERING, sample::USER_DIEGO);
    let (status, _, body) = c.answer(&scoped.post_ids(&drift(&[sample::PACKAGE_ENGINEERING], true)));
    assert_eq!((status, &body["driftSummary"]["drifted"]), (200, &json!(1)), "{body}");
    assert_eq!(body["drift"][0]["drifted"][0]["assignmentId"], sample::ENG_DIEGO);

    // 202 with Location + Retry-After: drift detection queued; its message carries the caller.
    let reply = scoped.post_ids(&drift(&[sample::PACKAGE_ENGINEERING], false));
    let (status, _, body) = c.answer(&reply);
    assert_eq!((status, &body["enqueued"]["driftMessages"]), (202, &json!(1)), "{body}");
    assert!(reply.output_messages("enqueue")[0]["origin"].is_object());
    // Its Location polls to a documented 200 naming the reprocessed assignment.
    let location = headers_location(&reply);
    scoped.drain(reply.output_messages("enqueue"), true);
    let (status, headers, done) = scoped.get_status(&location).res();
    c.spec
        .check("/operations/{correlationId}", "get", status, &headers, &done);
    assert_eq!(
        (status, &done["results"][0]["id"]),
        (200, &json!(sample::ENG_DIEGO)),
        "{done}"
    );

    // 200: a dry run shows what is out of scope, by ID and in a user's listing.
    let dry = json!({ "assignmentIds": [sample::PAYROLL_CARLOS], "userIds": [sample::USER_CARLOS], "dryRun": true });
    let (status, _, body) = c.answer(&scoped.post_ids(&dry.to_string()));
    assert_eq!(
        (status, &body["items"][0]["outcome"]),
        (200, &json!("out_of_scope")),
        "{body}"
    );
    assert_eq!(body["expansions"][0]["outOfScope"], 1, "{body}");

    // 503: the drift operation's state cannot be recorded.
    let dead = spawn_with_dead_storage_env(&[("DRIFT_DETECTION_ENABLED", "true")]);
    let (status, _, body) = c.answer(&dead.post_ids(&drift(&[sample::PACKAGE_ENGINEERING], false)));
    assert_eq!(
        (status, code(&body)),
        (503, &json!("status_store_unavailable")),
        "{body}"
    );

    // 403: Graph refuses the membership read of a drift dry run.
    scoped
        .emulator
        .state
        .tenant
        .lock()
        .unwrap()
        .directory
        .granted_reads
        .remove(GROUP_MEMBER_READ);
    let (status, _, body) = c.answer(&scoped.post_ids(&drift(&[sample::PACKAGE_ENGINEERING], true)));
    assert_eq!((status, code(&body)), (403, &json!("missing_permission")), "{body}");
    assert_eq!(body["error"]["missingAppRole"], GROUP_MEMBER_READ);

    // 503: the packages' catalogs cannot be read from Graph in time (a package whose catalog the
    // handler has not read yet).
    scoped.emulator.state.faults.script_batches([Fault::status(503); 20]);
    let (status, headers, body) = c.answer(&scoped.post_ids(&drift(&[sample::PACKAGE_BULK], false)));
    assert_eq!(
        (status, code(&body)),
        (503, &json!("scope_check_unavailable")),
        "{body}"
    );
    assert!(headers["Retry-After"].is_string(), "{headers}");
    assert!(reply_enqueued_nothing(&scoped));
}

/// A tracked operation with an ID outside the catalog scope ends `completedWithErrors`, counting it in
/// `summary.out_of_scope`, and its answers match the document.
#[test]
fn an_out_of_scope_id_in_a_tracked_operation_is_counted_and_documented() {
    let spec = crate::openapi::Spec::load();
    let app = spawn_tracked(&[
        ("ALLOWED_CATALOG_IDS", sample::CATALOG_GENERAL),
        ("HTTP_SYNC_MAX_IDS", "1"),
    ]);
    let reply =
        app.post_ids(&json!({ "assignmentIds": [sample::PAYROLL_CARLOS, sample::VISITORS_CARLOS] }).to_string());
    let (status, headers, body) = reply.res();
    spec.check("/reprocess", "post", status, &headers, &body);
    assert_eq!(status, 202, "{body}");
    let location = headers_location(&reply);
    app.drain(reply.output_messages("enqueue"), true);
    let (status, headers, done) = app.get_status(&location).res();
    spec.check("/operations/{correlationId}", "get", status, &headers, &done);
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["summary"]["out_of_scope"], 1, "{done}");
    assert_eq!(done["summary"]["accepted"], 1, "{done}");
    assert_eq!(done["status"], "completedWithErrors", "{done}");
    let refused = done["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == sample::PAYROLL_CARLOS)
        .unwrap();
    assert_eq!(refused["outcome"], "out_of_scope", "{refused}");
}
