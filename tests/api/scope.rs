//! Catalog scope (`ALLOWED_CATALOG_IDS`, `ALLOWED_ACCESS_PACKAGE_IDS`): out-of-scope IDs are refused per
//! ID with `out_of_scope` and never sent to reprocess; the check costs one `$batch` of GETs per chunk of
//! 20; packages outside the scope are refused up front; user fan-out lists only what is in scope.
//! The sample tenant: catalog General (Sales, All staff, Visitors), catalog Human resources (Payroll);
//! Carlos has a Visitors and a Payroll assignment.

use crate::helpers::*;
use reprocess_emulator::{LoggedRequest, sample};
use serde_json::{Value, json};

const GENERAL_ONLY: &[(&str, &str)] = &[("ALLOWED_CATALOG_IDS", sample::CATALOG_GENERAL)];

fn result<'a>(body: &'a Value, id: &str) -> &'a Value {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no result for {id}: {body}"))
}

/// `$batch` requests themselves (not their sub-requests).
fn batches(app: &TestApp) -> Vec<LoggedRequest> {
    app.emulator
        .state
        .graph_requests()
        .into_iter()
        .filter(|r| !r.batched && r.path_and_query.ends_with("/$batch"))
        .collect()
}

fn batched_gets(app: &TestApp) -> Vec<LoggedRequest> {
    app.emulator
        .state
        .graph_requests()
        .into_iter()
        .filter(|r| r.batched && r.method == "GET")
        .collect()
}

fn reprocess_count(app: &TestApp, id: &str) -> u32 {
    app.emulator.state.tenant.lock().unwrap().reprocess_count(id)
}

#[test]
fn an_out_of_scope_id_is_refused_and_never_sent_to_reprocess() {
    for version in ["v1.0", "beta"] {
        let app = spawn_app_env(&[
            ("ALLOWED_CATALOG_IDS", sample::CATALOG_GENERAL),
            ("GRAPH_API_VERSION", version),
        ]);
        let body = json!({ "assignmentIds": [sample::DELIVERED_1, sample::PAYROLL_CARLOS, sample::UNKNOWN],
                           "assignmentRequestIds": [sample::REQUEST_FAILED] });
        let (status, _, body) = app.post_ids(&body.to_string()).res();
        assert_eq!(status, 200, "{version}: {body}");
        let refused = result(&body, sample::PAYROLL_CARLOS);
        assert_eq!(refused["outcome"], "out_of_scope", "{version}");
        assert_eq!(refused["catalogId"], sample::CATALOG_HR);
        assert_eq!(refused["accessPackageId"], sample::PACKAGE_PAYROLL);
        assert_eq!(refused["httpStatus"], 200, "Graph's answer to the read");
        assert!(refused["graphRequestId"].as_str().is_some_and(|s| !s.is_empty()));
        assert_eq!(result(&body, sample::DELIVERED_1)["outcome"], "accepted");
        assert_eq!(result(&body, sample::REQUEST_FAILED)["outcome"], "accepted");
        assert_eq!(result(&body, sample::UNKNOWN)["outcome"], "not_found");
        assert_eq!(body["summary"]["outOfScope"], 1);
        assert_eq!(reprocess_count(&app, sample::PAYROLL_CARLOS), 0);
        let posted: Vec<String> = app.graph_posts().into_iter().map(|r| r.path_and_query).collect();
        assert_eq!(posted.len(), 2, "only the IDs in scope are sent: {posted:?}");
        assert!(!posted.iter().any(|p| p.contains(sample::PAYROLL_CARLOS)));
        app.assert_no_secrets_logged();
    }
}

#[test]
fn the_scope_check_costs_one_batched_get_per_chunk_of_twenty() {
    let app = spawn_app_env(&[("ALLOWED_ACCESS_PACKAGE_IDS", sample::PACKAGE_BULK)]);
    let ids: Vec<String> = (0..45).map(sample::bulk_assignment).collect();
    let (status, _, body) = app.post_ids(&json!({ "assignmentIds": ids }).to_string()).res();
    assert_eq!(status, 200);
    assert_eq!(body["summary"]["accepted"], 45);
    let gets = batched_gets(&app);
    assert_eq!(gets.len(), 45, "each ID read once");
    assert!(
        gets[0]
            .path_and_query
            .contains("$expand=accessPackage%28%24expand%3Dcatalog%29")
    );
    let top_level_gets = app
        .emulator
        .state
        .graph_requests()
        .into_iter()
        .filter(|r| !r.batched && r.method == "GET")
        .count();
    assert_eq!(top_level_gets, 0, "no GET on its own");
    // Three chunks (20, 20, 5): three $batch reads and three $batch reprocesses.
    assert_eq!(batches(&app).len(), 6);
    assert_eq!(app.graph_posts().len(), 45);
}

#[test]
fn without_a_scope_nothing_is_read_before_reprocessing() {
    let app = spawn_app();
    let (status, _, body) = app
        .post_ids(&json!({ "assignmentIds": [sample::PAYROLL_CARLOS] }).to_string())
        .res();
    assert_eq!(status, 200);
    assert_eq!(result(&body, sample::PAYROLL_CARLOS)["outcome"], "accepted");
    assert!(
        app.emulator.state.graph_requests_with("GET").is_empty(),
        "no read at all"
    );
}

#[test]
fn a_package_outside_the_scope_is_refused_up_front() {
    // Catalog scope: the packages not listed by themselves are read in one $batch.
    let app = spawn_app_env(GENERAL_ONLY);
    let call = json!({ "accessPackageIds": [sample::PACKAGE_VISITORS, sample::PACKAGE_PAYROLL] });
    let reply = app.post_ids(&call.to_string());
    let (status, _, body) = reply.res();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "out_of_scope");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(sample::PACKAGE_PAYROLL)
    );
    assert_eq!(body["error"]["fields"][0]["id"], sample::PACKAGE_PAYROLL);
    assert!(
        body["error"]["fields"][0]["reason"]
            .as_str()
            .unwrap()
            .contains(sample::CATALOG_HR)
    );
    assert_eq!(body["error"]["fields"].as_array().unwrap().len(), 1);
    assert!(reply.json["Outputs"].get("enqueue").is_none(), "nothing enqueued");
    assert_eq!(batches(&app).len(), 1);
    assert_eq!(batched_gets(&app).len(), 2);

    // Package scope: decided without calling Graph.
    let app = spawn_app_env(&[("ALLOWED_ACCESS_PACKAGE_IDS", sample::PACKAGE_SALES)]);
    let (status, _, body) = app
        .post_ids(&json!({ "accessPackageId": sample::PACKAGE_VISITORS, "dryRun": true }).to_string())
        .res();
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "out_of_scope");
    assert!(app.emulator.state.graph_requests().is_empty());
    let reply = app.post_ids(&json!({ "accessPackageId": sample::PACKAGE_SALES }).to_string());
    assert_eq!(reply.res().0, 202);
}

#[test]
fn user_fan_out_lists_only_within_the_allowed_catalogs() {
    let app = spawn_app_env(GENERAL_ONLY);
    let reply = app.post_ids(&json!({ "userIds": [sample::USER_CARLOS] }).to_string());
    assert_eq!(reply.res().0, 202);
    let drained = app.drain(reply.output_messages("enqueue"), true);
    assert_eq!(drained.assignment_ids(), [sample::VISITORS_CARLOS]);
    assert!(drained.dead_letters.is_empty());
    assert_eq!(reprocess_count(&app, sample::VISITORS_CARLOS), 1);
    assert_eq!(reprocess_count(&app, sample::PAYROLL_CARLOS), 0);
    assert!(app.stdout_contains("listed assignments outside the catalog scope were not enqueued"));
}

#[test]
fn a_queue_message_for_an_out_of_scope_package_is_refused_before_listing() {
    let app = spawn_app_env(GENERAL_ONLY);
    let reply = app.queue_message(&json!({ "accessPackageIds": [sample::PACKAGE_PAYROLL] }).to_string());
    assert_eq!(reply.status, 200);
    let outputs = &reply.json["Outputs"];
    assert!(outputs.get("enqueue").is_none(), "{outputs}");
    assert!(outputs.get("deadLetter").is_none(), "nothing to re-drive");
    let listings = app.emulator.state.unbatched_gets();
    assert_eq!(listings, 0, "never listed");
    assert_eq!(batched_gets(&app).len(), 1, "one read of the package's catalog");
    assert!(app.stdout_contains("\"audit\":\"fan_out_refused\""));
}

#[test]
fn a_dry_run_shows_what_is_out_of_scope() {
    let app = spawn_app_env(GENERAL_ONLY);
    let body = json!({ "assignmentIds": [sample::DELIVERED_1, sample::PAYROLL_CARLOS], "userIds": [sample::USER_CARLOS], "dryRun": true });
    let (status, _, body) = app.post_ids(&body.to_string()).res();
    assert_eq!(status, 200);
    let items = body["items"].as_array().unwrap();
    let by_id = |id: &str| items.iter().find(|i| i["id"] == id).unwrap().clone();
    assert_eq!(by_id(sample::DELIVERED_1)["wouldReprocess"], true);
    assert_eq!(
        by_id(sample::DELIVERED_1)["accessPackage"]["catalog"]["id"],
        sample::CATALOG_GENERAL
    );
    assert_eq!(by_id(sample::PAYROLL_CARLOS)["wouldReprocess"], false);
    assert_eq!(by_id(sample::PAYROLL_CARLOS)["outcome"], "out_of_scope");
    assert_eq!(body["expansions"][0]["count"], 1);
    assert_eq!(body["expansions"][0]["outOfScope"], 1);
    assert_eq!(body["expansions"][0]["assignments"][0]["id"], sample::VISITORS_CARLOS);
    assert!(app.graph_posts().is_empty());
}
