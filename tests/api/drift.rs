//! Drift detection (`detectDriftFor`), least privilege, and the scheduled heal timer, against
//! the emulated tenant's directory (groups, owners, app-role assignments, package role scopes).

use crate::helpers::*;
use reprocess_emulator::directory::{APPLICATION_READ, GROUP_MEMBER_READ, RoleScope};
use reprocess_emulator::functions::FUNCTION_HEAL_TIMER as TIMER_FUNCTION;
use reprocess_emulator::tenant::generated_id;
use reprocess_emulator::{EmulatorState, Tenant, sample};
use serde_json::Value;

const ON: &[(&str, &str)] = &[("DRIFT_DETECTION_ENABLED", "true")];

fn dry_run_drift(app: &TestApp, packages: &[&str]) -> (u16, Value) {
    let body = serde_json::json!({ "detectDriftFor": { "accessPackageIds": packages }, "dryRun": true });
    let (status, _, body) = app.post_ids(&body.to_string()).res();
    (status, body)
}

/// `count` users with delivered assignments of `package` (series 0x51 for users, 0x52 for
/// assignments), each delivered (so holding every role of the package).
fn add_delivered(t: &mut Tenant, package: &str, users: &[String], series: u32) -> Vec<String> {
    users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let id = generated_id(series, i);
            t.add_assignment(&id, "delivered", package, user);
            t.directory.grant(package, user);
            id
        })
        .collect()
}

fn users(n: usize) -> Vec<String> {
    (0..n).map(|i| generated_id(0x51, i)).collect()
}

fn gets_to(app: &TestApp, fragment: &str) -> Vec<String> {
    app.emulator
        .state
        .graph_requests_with("GET")
        .into_iter()
        .map(|r| r.path_and_query)
        .filter(|p| p.contains(fragment))
        .collect()
}

#[test]
fn dry_run_reports_drift_page_by_page_without_reprocessing() {
    let group = generated_id(0x61, 1);
    let mut t = Tenant::default();
    t.directory
        .add_package_role(sample::PACKAGE_SALES, RoleScope::group_member(&group, "Sales team"));
    let people = users(7);
    let assignments = add_delivered(&mut t, sample::PACKAGE_SALES, &people, 0x52);
    let state = EmulatorState::new(t);
    state.set_page_size(3);
    state.tenant.lock().unwrap().directory.remove_member(&group, &people[4]);
    let app = spawn_app_with(state, ON);

    let (status, body) = dry_run_drift(&app, &[sample::PACKAGE_SALES]);
    assert_eq!(status, 200, "{body}");
    let package = &body["drift"][0];
    assert_eq!(package["deliveredAssignments"], 7);
    let drifted = package["drifted"].as_array().unwrap();
    assert_eq!(drifted.len(), 1, "{package}");
    assert_eq!(drifted[0]["assignmentId"], assignments[4].as_str());
    assert_eq!(drifted[0]["userId"], people[4].as_str());
    assert_eq!(drifted[0]["missing"][0]["originSystem"], "AadGroup");
    assert_eq!(drifted[0]["missing"][0]["roleOriginId"], format!("Member_{group}"));
    assert_eq!(drifted[0]["wouldReprocess"], true);
    assert_eq!(package["checked"][0]["holders"], 6);
    // 7 assignments and 6 members at 3 a page: 3 + 2 pages, plus the package itself.
    let members = gets_to(&app, &format!("/groups/{group}/members"));
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(
        members
            .iter()
            .all(|m| m.contains("%24select=id") || m.contains("$select=id"))
    );
    assert!(members[1].contains("skiptoken"));
    assert_eq!(package["graphReads"], 1 + 3 + 2);
    assert_eq!(body["driftSummary"]["drifted"], 1);
    assert!(app.graph_posts().is_empty(), "a dry run reprocessed");
    app.assert_no_secrets_logged();
}

#[test]
fn a_user_in_several_packages_and_a_role_granted_by_two_packages() {
    let (g1, g2, shared) = (generated_id(0x61, 1), generated_id(0x61, 2), generated_id(0x61, 3));
    let (p1, p2) = (sample::PACKAGE_SALES, sample::PACKAGE_BULK);
    let mut t = Tenant::default();
    for (p, g) in [(p1, &g1), (p2, &g2), (p1, &shared), (p2, &shared)] {
        t.directory.add_package_role(p, RoleScope::group_member(g, "group"));
    }
    let people = users(3);
    let in_p1 = add_delivered(&mut t, p1, &people[..2], 0x52);
    let in_p2 = add_delivered(&mut t, p2, &people[..3], 0x53);
    // people[0] is in both packages; it loses g1 (only p1 grants it) and the shared group (both grant it).
    t.directory.remove_member(&g1, &people[0]);
    t.directory.remove_member(&shared, &people[0]);
    let app = spawn_app_with(EmulatorState::new(t), ON);

    let (status, body) = dry_run_drift(&app, &[p1, p2]);
    assert_eq!(status, 200, "{body}");
    let missing = |package: &Value| -> Vec<(String, Vec<String>)> {
        package["drifted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let roles = d["missing"].as_array().unwrap();
                let mut groups: Vec<String> = roles
                    .iter()
                    .map(|r| r["resourceOriginId"].as_str().unwrap().to_owned())
                    .collect();
                groups.sort();
                (d["assignmentId"].as_str().unwrap().to_owned(), groups)
            })
            .collect()
    };
    let mut both = vec![g1.clone(), shared.clone()];
    both.sort();
    assert_eq!(missing(&body["drift"][0]), vec![(in_p1[0].clone(), both)]);
    assert_eq!(
        missing(&body["drift"][1]),
        vec![(in_p2[0].clone(), vec![shared.clone()])]
    );
    // One members listing per group per package, never one call per user.
    assert_eq!(gets_to(&app, &format!("/groups/{shared}/members")).len(), 2);
    assert!(app.graph_posts().is_empty());
}

#[test]
fn roles_that_cannot_be_checked_are_reported_with_the_reason_and_app_roles_are_checked() {
    let app = spawn_app_env(ON);
    app.emulator.state.tenant.lock().unwrap().directory.remove_app_role(
        sample::SP_BUILD_PORTAL,
        sample::USER_DIANA,
        sample::APP_ROLE_BUILDER,
    );
    let (status, body) = dry_run_drift(&app, &[sample::PACKAGE_ENGINEERING]);
    assert_eq!(status, 200, "{body}");
    let package = &body["drift"][0];
    let not_checked = package["notChecked"].as_array().unwrap();
    assert_eq!(not_checked.len(), 1, "{package}");
    assert_eq!(not_checked[0]["originSystem"], "SharePointOnline");
    assert!(not_checked[0]["reason"].as_str().unwrap().contains("SharePoint Online"));
    assert_eq!(package["checked"].as_array().unwrap().len(), 2);
    let drifted = package["drifted"].as_array().unwrap();
    assert_eq!(drifted.len(), 1, "{package}");
    assert_eq!(drifted[0]["assignmentId"], sample::ENG_DIANA);
    assert_eq!(drifted[0]["missing"][0]["originSystem"], "AadApplication");
    assert_eq!(drifted[0]["missing"][0]["roleOriginId"], sample::APP_ROLE_BUILDER);
    assert_eq!(gets_to(&app, "/appRoleAssignedTo").len(), 1);
}

#[test]
fn without_the_read_permissions_drift_detection_is_off_and_says_which_app_role_is_missing() {
    // Off by setting: the call is refused naming both app roles; a queue message is dead-lettered.
    let app = spawn_app();
    let (status, body) = dry_run_drift(&app, &[sample::PACKAGE_ENGINEERING]);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "drift_detection_off");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(GROUP_MEMBER_READ) && message.contains(APPLICATION_READ),
        "{message}"
    );
    let reply = app.queue_message(&format!(
        r#"{{"detectDriftFor":{{"accessPackageIds":["{}"]}}}}"#,
        sample::PACKAGE_ENGINEERING
    ));
    let dead = reply.output_messages("deadLetter");
    assert!(
        dead[0]["reason"].as_str().unwrap().contains(GROUP_MEMBER_READ),
        "{dead:?}"
    );
    assert!(app.emulator.state.graph_requests().is_empty());

    // On, but Graph refuses the membership read: 403 naming GroupMember.Read.All, and a dead letter.
    let app = spawn_app_env(ON);
    app.emulator
        .state
        .tenant
        .lock()
        .unwrap()
        .directory
        .granted_reads
        .remove(GROUP_MEMBER_READ);
    let (status, body) = dry_run_drift(&app, &[sample::PACKAGE_ENGINEERING]);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "missing_permission");
    assert_eq!(body["error"]["missingAppRole"], GROUP_MEMBER_READ);
    let reply = app.queue_message(&format!(
        r#"{{"detectDriftFor":{{"accessPackageIds":["{}"]}}}}"#,
        sample::PACKAGE_ENGINEERING
    ));
    let dead = reply.output_messages("deadLetter");
    assert_eq!(dead.len(), 1, "{}", reply.json);
    assert!(
        dead[0]["reason"].as_str().unwrap().contains(GROUP_MEMBER_READ),
        "{dead:?}"
    );
    assert!(app.graph_posts().is_empty());
}

#[test]
fn queued_drift_detection_reprocesses_the_drifted_and_the_membership_comes_back() {
    let app = spawn_app_env(ON);
    let state = &app.emulator.state;
    // A member removed by hand.
    assert!(
        state
            .tenant
            .lock()
            .unwrap()
            .directory
            .is_member(sample::GROUP_ENGINEERING, sample::USER_DIEGO)
    );
    state
        .tenant
        .lock()
        .unwrap()
        .directory
        .remove_member(sample::GROUP_ENGINEERING, sample::USER_DIEGO);

    let body = format!(
        r#"{{"detectDriftFor":{{"accessPackageIds":["{}"]}}}}"#,
        sample::PACKAGE_ENGINEERING
    );
    let reply = app.post_ids(&body);
    let (status, _, accepted) = reply.res();
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["enqueued"]["driftMessages"], 1);
    let messages = reply.output_messages("enqueue");
    assert_eq!(messages.len(), 1);
    assert!(
        app.emulator.state.graph_requests().is_empty(),
        "the HTTP call read Graph"
    );
    let reply = app.queue_message(&messages[0].to_string());
    assert_eq!(reply.status, 200);
    let log = reply.json["Logs"][0].as_str().unwrap().to_owned();
    assert!(log.contains("1 drifted, 1 reprocessed here"), "{log}");
    let tenant = state.tenant.lock().unwrap();
    assert_eq!(tenant.reprocess_count(sample::ENG_DIEGO), 1);
    assert_eq!(tenant.reprocess_count(sample::ENG_DIANA), 0);
    assert!(
        tenant
            .directory
            .is_member(sample::GROUP_ENGINEERING, sample::USER_DIEGO)
    );
    drop(tenant);
    assert!(app.stdout_contains("drift detected"));
    assert!(app.stdout().contains(r#"\"outcome\":\"accepted\""#) || app.stdout().contains(r#""outcome":"accepted""#));
}

#[test]
fn the_timer_heals_failed_requests_inside_the_window_only_and_reports_failed_assignments() {
    let app = spawn_app_env(&[
        ("DRIFT_DETECTION_ENABLED", "true"),
        ("DRIFT_PACKAGE_IDS", sample::PACKAGE_ENGINEERING),
    ]);
    // The envelope exactly as the host sends it for a timer trigger (tests/fixtures/host/timer_past_due.json).
    let reply = app.invoke(TIMER_FUNCTION, &fixture("timer_past_due.json"));
    assert_eq!(reply.status, 200, "{}", reply.json);
    let messages = reply.output_messages("enqueue");
    let requests: Vec<&Value> = messages
        .iter()
        .filter(|m| m.get("assignmentRequestIds").is_some())
        .collect();
    assert_eq!(requests.len(), 1, "{messages:?}");
    assert_eq!(
        requests[0]["assignmentRequestIds"],
        serde_json::json!([sample::REQUEST_FAILED])
    );
    let correlation = requests[0]["correlationId"].as_str().unwrap();
    assert!(correlation.starts_with("heal-"), "{correlation}");
    let drift: Vec<&Value> = messages.iter().filter(|m| m.get("detectDriftFor").is_some()).collect();
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0]["correlationId"], correlation);
    let log = reply.json["Logs"][0].as_str().unwrap();
    assert!(
        log.contains("1 enqueued for reprocess, 1 outside the 14-day window"),
        "{log}"
    );
    assert!(log.contains("10 failed assignments reported"), "{log}");
    assert!(app.stdout_contains("heal run summary"));
    // Graph filtered the state; the window was applied to the pages (no completedDateTime filter).
    let lists = gets_to(&app, "assignmentRequests");
    assert!(lists.iter().any(|p| p.contains("deliveryFailed")), "{lists:?}");
    assert!(
        lists
            .iter()
            .all(|p| !p.contains("completedDateTime%20") && !p.contains("completedDateTime+"))
    );
    assert!(
        app.graph_posts().is_empty(),
        "the timer reprocessed in its own invocation"
    );

    // Through the queue: the request in the window is reprocessed, the stale one never.
    let drained = app.drain(requests.into_iter().cloned().collect(), true);
    assert!(drained.dead_letters.is_empty(), "{:?}", drained.dead_letters);
    let tenant = app.emulator.state.tenant.lock().unwrap();
    assert_eq!(tenant.reprocess_count(sample::REQUEST_FAILED), 1);
    assert_eq!(tenant.reprocess_count(sample::REQUEST_STALE), 0);
}

#[test]
fn a_heal_listing_resumes_page_by_page_on_the_queue_and_refuses_a_widened_link() {
    let mut t = Tenant::default();
    for i in 0..5 {
        t.add_request(&generated_id(0x71, i), "deliveryFailed", i as i64 * 4);
    }
    let state = EmulatorState::new(t);
    state.set_page_size(2);
    let app = spawn_app_with(state, &[]);
    let drained = app.drain(vec![serde_json::json!({ "heal": "requests:deliveryFailed" })], true);
    assert!(drained.dead_letters.is_empty(), "{:?}", drained.dead_letters);
    assert_eq!(drained.expansion_invocations, 0);
    let tenant = app.emulator.state.tenant.lock().unwrap();
    // Completed 0, 4, 8, 12 days ago are inside the window; 16 days ago is not.
    for i in 0..5 {
        assert_eq!(
            tenant.reprocess_count(&generated_id(0x71, i)),
            u32::from(i < 4),
            "request {i}"
        );
    }
    drop(tenant);
    let pages = gets_to(&app, "assignmentRequests");
    assert_eq!(pages.len(), 3, "{pages:?}");

    let base = app.emulator.base_url.clone();
    let forged = format!(
        "{base}/v1.0/identityGovernance/entitlementManagement/assignmentRequests?$filter=state%20eq%20%27delivered%27&$select=id,state,completedDateTime&$skiptoken=RFNwdF2x2"
    );
    let reply =
        app.queue_message(&serde_json::json!({ "heal": "requests:deliveryFailed", "nextLink": forged }).to_string());
    let dead = reply.output_messages("deadLetter");
    assert_eq!(dead.len(), 1, "{}", reply.json);
    assert!(dead[0]["reason"].as_str().unwrap().contains("$filter"), "{dead:?}");
}

#[test]
fn beta_reads_the_beta_names_for_role_scopes_and_requests() {
    let app = spawn_app_env(&[("DRIFT_DETECTION_ENABLED", "true"), ("GRAPH_API_VERSION", "beta")]);
    app.emulator
        .state
        .tenant
        .lock()
        .unwrap()
        .directory
        .remove_member(sample::GROUP_ENGINEERING, sample::USER_DIANA);
    let (status, body) = dry_run_drift(&app, &[sample::PACKAGE_ENGINEERING]);
    assert_eq!(status, 200, "{body}");
    let drifted = body["drift"][0]["drifted"].as_array().unwrap();
    assert_eq!(drifted.len(), 1, "{body}");
    assert_eq!(drifted[0]["assignmentId"], sample::ENG_DIANA);
    let package = gets_to(&app, "/accessPackages/");
    assert!(package[0].contains("accessPackageResourceRoleScopes"), "{package:?}");
    assert!(gets_to(&app, "/beta/groups/").len() == 1);

    let reply = app.invoke(TIMER_FUNCTION, &fixture("timer_past_due.json"));
    let messages = reply.output_messages("enqueue");
    let ids: Vec<&Value> = messages.iter().filter_map(|m| m.get("assignmentRequestIds")).collect();
    assert_eq!(ids, [&serde_json::json!([sample::REQUEST_FAILED])], "{messages:?}");
    let lists = gets_to(&app, "accessPackageAssignmentRequests");
    assert!(
        lists
            .iter()
            .any(|p| p.contains("requestState%20eq%20%27DeliveryFailed%27")),
        "{lists:?}"
    );
}

#[test]
fn more_drifted_than_http_sync_max_ids_go_out_as_id_messages() {
    let app = spawn_app_env(&[("DRIFT_DETECTION_ENABLED", "true"), ("HTTP_SYNC_MAX_IDS", "1")]);
    {
        let mut tenant = app.emulator.state.tenant.lock().unwrap();
        tenant
            .directory
            .remove_member(sample::GROUP_ENGINEERING, sample::USER_DIEGO);
        tenant
            .directory
            .remove_member(sample::GROUP_ENGINEERING, sample::USER_DIANA);
    }
    let message = format!(
        r#"{{"detectDriftFor":{{"accessPackageIds":["{}"]}},"correlationId":"drift-1"}}"#,
        sample::PACKAGE_ENGINEERING
    );
    let reply = app.queue_message(&message);
    let out = reply.output_messages("enqueue");
    assert_eq!(out.len(), 1, "{}", reply.json);
    let mut ids: Vec<&str> = out[0]["assignmentIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, [sample::ENG_DIEGO, sample::ENG_DIANA]);
    assert_eq!(out[0]["correlationId"], "drift-1");
    assert!(app.graph_posts().is_empty(), "reprocessed in the detecting invocation");
    let drained = app.drain(out, true);
    assert!(drained.dead_letters.is_empty());
    let tenant = app.emulator.state.tenant.lock().unwrap();
    assert!(
        tenant
            .directory
            .is_member(sample::GROUP_ENGINEERING, sample::USER_DIEGO)
    );
    assert!(
        tenant
            .directory
            .is_member(sample::GROUP_ENGINEERING, sample::USER_DIANA)
    );
}
