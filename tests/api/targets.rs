//! Access-package and user targets: fan-out through the queue page by page, filter encoding as Graph
//! receives it, nextLink origin checks, nothing lost or duplicated, dry runs that never POST, and
//! hostile values that never reach Graph.

use crate::helpers::*;
use reprocess_emulator::{Emulator, EmulatorState, Fault, sample};
use serde_json::{Value, json};
use std::collections::HashSet;

fn bulk_delivered() -> HashSet<String> {
    (0..sample::BULK_DELIVERED).map(sample::bulk_assignment).collect()
}

fn gets(app: &TestApp) -> Vec<String> {
    app.emulator
        .state
        .graph_requests_with("GET")
        .into_iter()
        .map(|r| r.path_and_query)
        .collect()
}

/// Every listed ID is in exactly one chunk: none lost, none twice, nothing undelivered.
fn assert_exactly_once(drained: &Drained, want: &HashSet<String>) {
    let ids = drained.assignment_ids();
    let unique: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(ids.len(), unique.len(), "an ID was enqueued twice");
    assert_eq!(&unique, want);
    for chunk in &drained.id_messages {
        assert!(chunk["assignmentIds"].as_array().unwrap().len() <= 20);
    }
}

#[test]
fn package_fan_out_pages_through_graph_and_every_id_lands_in_exactly_one_chunk() {
    let app = spawn_app();
    let reply = app.post_ids(&json!({ "accessPackageIds": [sample::PACKAGE_BULK] }).to_string());
    let (status, _, body) = reply.res();
    assert_eq!(status, 202);
    assert!(
        app.emulator.state.graph_requests().is_empty(),
        "the HTTP call only enqueues"
    );
    assert_eq!(body["accepted"]["accessPackageIds"], json!([sample::PACKAGE_BULK]));
    assert_eq!(body["enqueued"]["expansionMessages"], 1);
    let correlation = body["correlationId"].as_str().unwrap().to_owned();
    assert!(
        app.emulator.state.graph_requests().is_empty(),
        "the HTTP call itself lists nothing"
    );

    let drained = app.drain(reply.output_messages("enqueue"), true);
    assert_eq!(drained.expansion_invocations, 3, "260 assignments at 100 per page");
    assert_eq!(drained.id_messages.len(), 5 + 5 + 3);
    assert_exactly_once(&drained, &bulk_delivered());
    assert!(drained.dead_letters.is_empty());
    assert!(
        drained
            .all_messages
            .iter()
            .all(|m| m["correlationId"] == correlation.as_str())
    );

    let gets = gets(&app);
    assert_eq!(gets.len(), 3);
    assert_eq!(
        gets[0],
        format!(
            "/v1.0/identityGovernance/entitlementManagement/assignments?$filter=state%20eq%20%27delivered%27%20and%20accessPackage/id%20eq%20%27{}%27&$expand=target,accessPackage%28%24expand%3Dcatalog%29&$select=id,state,status",
            sample::PACKAGE_BULK
        )
    );
    assert!(gets[1].starts_with(&gets[0]) && gets[1].contains("&$skiptoken="));
    assert!(gets[2].contains("&$skiptoken=") && gets[2] != gets[1]);

    // Only delivered assignments were reprocessed, each exactly once.
    assert_eq!(app.graph_posts().len(), sample::BULK_DELIVERED);
    let tenant = app.emulator.state.tenant.lock().unwrap();
    for i in 0..sample::BULK_DELIVERED + sample::BULK_OTHER {
        let want = u32::from(i < sample::BULK_DELIVERED);
        assert_eq!(
            tenant.reprocess_count(&sample::bulk_assignment(i)),
            want,
            "assignment {i}"
        );
    }
    drop(tenant);
    app.assert_no_secrets_logged();
}

#[test]
fn user_fan_out_filters_on_the_target_and_follows_next_links() {
    let app = spawn_app();
    app.emulator.state.set_page_size(1);
    let reply =
        app.post_ids(&json!({ "userIds": [sample::USER_ADELE], "assignmentIds": [sample::DELIVERED_2] }).to_string());
    assert_eq!(reply.res().0, 202);
    let drained = app.drain(reply.output_messages("enqueue"), false);
    let want: HashSet<String> = [sample::DELIVERED_1, sample::DELIVERED_3, sample::DELIVERED_2]
        .map(str::to_owned)
        .into();
    assert_exactly_once(&drained, &want);
    let gets = gets(&app);
    assert_eq!(gets.len(), 2, "one page per delivered assignment at page size 1");
    assert!(gets[0].contains(&format!(
        "$filter=state%20eq%20%27delivered%27%20and%20target/objectId%20eq%20%27{}%27",
        sample::USER_ADELE
    )));
}

#[test]
fn beta_lists_access_package_assignments_with_the_beta_names() {
    let app = spawn_app_env(&[("GRAPH_API_VERSION", "beta")]);
    let reply = app.post_ids(&json!({ "accessPackageId": sample::PACKAGE_BULK }).to_string());
    let drained = app.drain(reply.output_messages("enqueue"), false);
    assert_exactly_once(&drained, &bulk_delivered());
    let gets = gets(&app);
    assert!(gets[0].starts_with(
        "/beta/identityGovernance/entitlementManagement/accessPackageAssignments?$filter=assignmentState%20eq%20%27Delivered%27%20and%20accessPackage/id%20eq%20%27"
    ));
    assert_eq!(gets.len(), 3);
}

#[test]
fn a_failed_page_is_retried_from_its_own_next_link_without_losing_or_repeating_ids() {
    let app = spawn_app_env(&[("GRAPH_MAX_ATTEMPTS", "1")]);
    let state = &app.emulator.state;
    let reply = app.post_ids(&json!({ "accessPackageIds": [sample::PACKAGE_BULK] }).to_string());
    let first = reply.output_messages("enqueue");
    // Page 1 succeeds; then the listing endpoint fails once (503) and once more throttled (429).
    let page1 = app.queue_message(&first[0].to_string());
    let continuation = page1.output_messages("enqueue").pop().unwrap();
    assert!(continuation["nextLink"].as_str().unwrap().contains("$skiptoken="));
    state.faults.script("list", [Fault::status(503), Fault::throttled(1)]);
    let failed = app.queue_message(&continuation.to_string());
    let retry = failed.output_messages("enqueue");
    assert_eq!(retry.len(), 1, "only the same expansion comes back");
    assert_eq!(retry[0]["nextLink"], continuation["nextLink"]);
    assert_eq!(retry[0]["attempt"], 1);
    assert!(retry[0]["notBefore"].is_string());

    let mut drained = app.drain(retry, false);
    let mut first_page = page1.output_messages("enqueue");
    first_page.pop();
    drained.id_messages.extend(first_page);
    assert_exactly_once(&drained, &bulk_delivered());
    assert_eq!(gets(&app).len(), 5, "3 pages + 2 failed attempts");
}

#[test]
fn a_next_link_off_the_graph_origin_is_refused_and_never_called() {
    let foreign = Emulator::start(EmulatorState::new(sample::tenant())).unwrap();
    let app = spawn_app();
    app.emulator.state.set_next_link_origin(Some(&foreign.base_url));
    let reply = app.post_ids(&json!({ "accessPackageIds": [sample::PACKAGE_BULK] }).to_string());
    let drained = app.drain(reply.output_messages("enqueue"), false);
    assert!(
        drained.id_messages.is_empty(),
        "a page with a forged link is not trusted"
    );
    assert_eq!(drained.dead_letters.len(), 1);
    let dead = &drained.dead_letters[0];
    assert!(
        dead["reason"].as_str().unwrap().contains("refused a nextLink"),
        "{dead}"
    );
    assert_eq!(dead["accessPackageIds"], json!([sample::PACKAGE_BULK]));
    assert_eq!(gets(&app).len(), 1);

    // A queue message carrying a forged link is refused before any request.
    for link in [
        format!(
            "{}/v1.0/identityGovernance/entitlementManagement/assignments?$skiptoken=x",
            foreign.base_url
        ),
        format!("{}/v1.0/users?$skiptoken=x", app.emulator.base_url),
        "javascript:alert(1)".to_owned(),
        "/v1.0/identityGovernance/entitlementManagement/assignments".to_owned(),
    ] {
        let message = json!({ "userIds": [sample::USER_ADELE], "nextLink": link });
        let reply = app.queue_message(&message.to_string());
        assert_eq!(reply.status, 200);
        assert!(reply.output_messages("enqueue").is_empty());
        let dead = reply.output_messages("deadLetter");
        assert!(dead[0]["reason"].as_str().unwrap().contains("nextLink"), "{link}");
    }
    assert_eq!(gets(&app).len(), 1);
    assert!(
        foreign.state.graph_requests().is_empty(),
        "nothing went to the foreign host"
    );
    app.assert_no_secrets_logged();
}

#[test]
fn dry_run_reads_everything_and_never_posts() {
    let app = spawn_app();
    let body = json!({
        "assignmentIds": [sample::DELIVERED_1, sample::EXPIRED, sample::UNKNOWN],
        "assignmentRequestIds": [sample::REQUEST_FAILED, sample::REQUEST_STALE],
        "accessPackageIds": [sample::PACKAGE_SALES],
        "dryRun": true,
    });
    let reply = app.post_ids(&body.to_string());
    assert!(
        reply.json["Outputs"].get("enqueue").is_none(),
        "a dry run enqueues nothing"
    );
    let (status, _, body) = reply.res();
    assert_eq!(status, 200);
    assert_eq!(body["dryRun"], true);
    assert_eq!(body["truncated"], false);
    let items = body["items"].as_array().unwrap();
    let by_id = |id: &str| items.iter().find(|i| i["id"] == id).unwrap().clone();
    assert_eq!(by_id(sample::DELIVERED_1)["wouldReprocess"], true);
    assert_eq!(by_id(sample::DELIVERED_1)["accessPackage"]["displayName"], "Sales");
    assert_eq!(by_id(sample::DELIVERED_1)["target"]["objectId"], sample::USER_ADELE);
    assert_eq!(by_id(sample::EXPIRED)["wouldReprocess"], false);
    assert_eq!(by_id(sample::EXPIRED)["state"], "expired");
    assert_eq!(by_id(sample::UNKNOWN)["found"], false);
    assert_eq!(by_id(sample::REQUEST_FAILED)["wouldReprocess"], true);
    assert_eq!(by_id(sample::REQUEST_STALE)["wouldReprocess"], false);
    let listed: Vec<&str> = body["expansions"][0]["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 3, "delivered only: {listed:?}");
    assert!(!listed.contains(&sample::EXPIRED));
    assert!(app.graph_posts().is_empty(), "a dry run never POSTs");
}

#[test]
fn dry_run_by_query_parameter_caps_the_listing_and_says_truncated() {
    let app = spawn_app();
    // 800 unknown IDs + the bulk package: the cap of 1,000 items leaves 200 for the listing.
    let unknown: Vec<String> = (0..800).map(|i| format!("dddddddd-0000-4000-8000-{i:012x}")).collect();
    let request = json!({ "assignmentIds": unknown, "accessPackageIds": [sample::PACKAGE_BULK] }).to_string();
    let reply = app.invoke_http(&TestApp::call_with_query("reprocess", &request, &[("dryRun", "true")]));
    let (status, _, body) = reply.res();
    assert_eq!(status, 200);
    assert_eq!(body["truncated"], true);
    assert_eq!(body["expansions"][0]["count"], 200);
    assert_eq!(body["expansions"][0]["truncated"], true);
    assert_eq!(body["summary"]["ids"], 800);
    assert!(app.graph_posts().is_empty());
    let reply = app.invoke_http(&TestApp::call_with_query("reprocess", &request, &[("dryRun", "maybe")]));
    let (status, _, body) = reply.res();
    assert_eq!(status, 400);
    assert_eq!(body["error"]["fields"][0]["field"], "dryRun");
}

#[test]
fn hostile_scope_values_and_links_never_reach_graph() {
    let app = spawn_app();
    for value in [
        json!("9a1d6e2c-3b4f-4c5d-8e6f-7a8b9c0d1e2f' or 1 eq 1 or id eq '"),
        json!("9a1d6e2c-3b4f-4c5d-8e6f-7a8b9c0d1e2f&$filter=true"),
        json!("9a1d6e2c-3b4f-4c5d-8e6f-7a8b9c0d1e2%27"),
        json!("../../users"),
        json!(12),
    ] {
        for field in ["accessPackageIds", "userIds"] {
            let (status, _, body) = app.post_ids(&json!({ field: [value] }).to_string()).res();
            assert_eq!(status, 400, "{field}: {value}");
            assert_eq!(body["error"]["fields"][0]["field"], format!("{field}[0]"));
        }
        let reply = app.queue_message(&json!({ "userIds": [value] }).to_string());
        assert!(
            reply.output_messages("deadLetter")[0]["reason"]
                .as_str()
                .unwrap()
                .starts_with("malformed")
        );
    }
    let with_link = json!({ "accessPackageIds": [sample::PACKAGE_BULK], "nextLink": "https://graph.microsoft.com/x" });
    assert_eq!(app.post_ids(&with_link.to_string()).res().0, 400);
    let dry_queue = json!({ "accessPackageIds": [sample::PACKAGE_BULK], "dryRun": true });
    let reply = app.queue_message(&dry_queue.to_string());
    let dead = reply.output_messages("deadLetter");
    assert!(dead[0]["reason"].as_str().unwrap().contains("only for HTTP"));
    assert!(app.emulator.state.graph_requests().is_empty());
}

#[test]
fn a_queue_message_with_several_scopes_is_split_without_calling_graph() {
    let app = spawn_app();
    let message = json!({
        "accessPackageIds": [sample::PACKAGE_SALES, sample::PACKAGE_BULK],
        "userIds": [sample::USER_BRIAN],
        "assignmentIds": [sample::DELIVERED_1],
        "correlationId": "ops-1",
    });
    let reply = app.queue_message(&message.to_string());
    let out: Vec<Value> = reply.output_messages("enqueue");
    assert_eq!(out.len(), 4);
    assert!(out.iter().all(|m| m["correlationId"] == "ops-1"));
    assert!(app.emulator.state.graph_requests().is_empty());
    let drained = app.drain(out, false);
    let mut want = bulk_delivered();
    want.extend([sample::DELIVERED_1, sample::DELIVERED_2, sample::DELIVERED_3].map(str::to_owned));
    // DELIVERED_2 is both Sales and Brian's: listed under both scopes, so it may appear twice.
    let ids: HashSet<String> = drained.assignment_ids().into_iter().collect();
    assert_eq!(ids, want);
}
