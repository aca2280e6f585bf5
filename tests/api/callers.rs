//! Entra-authenticated callers: the client principal App Service authentication sets is trusted only
//! while the platform says authentication is on (`WEBSITE_AUTH_ENABLED`); `CALLER_SCOPES` narrows the
//! deployment's scope to what the caller's app roles grant, for IDs, users, packages, drift, alerts and
//! the queue messages a call enqueues; `REQUIRE_AUTHENTICATED_CALLER` refuses calls without a caller.
//! The sample tenant: catalog General (Sales, All staff, Visitors, Engineering), catalog Human
//! resources (Payroll); Carlos has a Visitors and a Payroll assignment.

use crate::helpers::*;
use crate::openapi::Spec;
use base64::Engine;
use reprocess_emulator::host::{HttpCall, http_envelope};
use reprocess_emulator::sample;
use serde_json::{Value, json};

const GENERAL_ROLE: &str = "Reprocess.Catalog.General";

fn caller_scopes() -> String {
    json!({ "Reprocess.All": {}, GENERAL_ROLE: { "catalogIds": [sample::CATALOG_GENERAL] } }).to_string()
}

/// The platform's `X-MS-CLIENT-PRINCIPAL` for an app token holding `roles`.
fn principal(object_id: &str, roles: &[&str]) -> String {
    let mut claims = vec![
        json!({ "typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": object_id }),
        json!({ "typ": "azp", "val": "app-of-the-logic-app" }),
    ];
    claims.extend(roles.iter().map(|r| json!({ "typ": "roles", "val": r })));
    let json = json!({
        "auth_typ": "aad",
        "claims": claims,
        "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
    });
    base64::engine::general_purpose::STANDARD.encode(json.to_string())
}

fn as_caller(mut call: HttpCall, object_id: &str, roles: &[&str]) -> HttpCall {
    call.headers
        .push(("X-MS-CLIENT-PRINCIPAL".into(), principal(object_id, roles)));
    call.headers.push(("X-MS-CLIENT-PRINCIPAL-ID".into(), object_id.into()));
    call.headers.push(("X-MS-CLIENT-PRINCIPAL-IDP".into(), "aad".into()));
    call
}

fn post(app: &TestApp, body: &Value, roles: &[&str]) -> (u16, Value, Value) {
    let call = as_caller(HttpCall::post_json("reprocess", &body.to_string()), "oid-caller", roles);
    app.invoke_http(&call).res()
}

fn result<'a>(body: &'a Value, id: &str) -> &'a Value {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no result for {id}: {body}"))
}

fn reprocess_count(app: &TestApp, id: &str) -> u32 {
    app.emulator.state.tenant.lock().unwrap().reprocess_count(id)
}

fn ids_body() -> Value {
    json!({ "assignmentIds": [sample::DELIVERED_1, sample::PAYROLL_CARLOS] })
}

fn alert_for(assignment: &str) -> Value {
    let path = format!("{}/tests/fixtures/alerts/", env!("CARGO_MANIFEST_DIR"));
    let read = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(format!("{path}{name}")).unwrap()).unwrap()
    };
    let mut alert = read("common_schema_sample.json");
    alert["data"]["alertContext"] = read("log_alerts_v2_context.json")["alertContext"].clone();
    alert["data"]["essentials"]["monitorCondition"] = json!("Fired");
    alert["data"]["essentials"]["signalType"] = json!("Log");
    alert["data"]["essentials"]["monitoringService"] = json!("Log Alerts V2");
    alert["data"]["customProperties"] = Value::Null;
    alert["data"]["alertContext"]["condition"]["allOf"][0]["dimensions"] =
        json!([{ "name": "assignmentId", "value": assignment }]);
    alert
}

#[test]
fn forged_principal_headers_without_platform_auth_widen_and_narrow_nothing() {
    // Widen nothing: the deployment's scope holds whatever role the headers claim.
    let app = spawn_app_env(&[
        ("ALLOWED_CATALOG_IDS", sample::CATALOG_GENERAL),
        ("CALLER_SCOPES", &caller_scopes()),
    ]);
    let (status, _, body) = post(&app, &ids_body(), &["Reprocess.All"]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(result(&body, sample::PAYROLL_CARLOS)["outcome"], "out_of_scope");
    // The headers are recorded as the caller's unverified hints, never as a verified principal.
    assert!(app.stdout_contains("\"principal_id\":\"oid-caller\""));
    assert!(app.stdout_contains("\"verified_principal_id\":\"\""));
    assert!(!app.stdout().contains("\"verified_roles\":\"Reprocess"));
    // A malformed principal is not even read.
    let mut call = HttpCall::post_json("reprocess", &ids_body().to_string());
    call.headers
        .push(("X-MS-CLIENT-PRINCIPAL".into(), "%%% not base64".into()));
    assert_eq!(app.invoke_http(&call).res().0, 200);

    // Narrow nothing: without a deployment scope, a role claiming one catalog limits nothing.
    let app = spawn_app_env(&[("CALLER_SCOPES", &caller_scopes())]);
    let (status, _, body) = post(&app, &ids_body(), &[GENERAL_ROLE]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(result(&body, sample::PAYROLL_CARLOS)["outcome"], "accepted");
    // And a forged principal without any configured role is not refused either.
    assert_eq!(post(&app, &ids_body(), &["Other"]).0, 200);
}

fn general_caller_app() -> TestApp {
    spawn_app_env(&[
        ("WEBSITE_AUTH_ENABLED", "True"),
        ("CALLER_SCOPES", &caller_scopes()),
        ("DRIFT_DETECTION_ENABLED", "true"),
    ])
}

#[test]
fn a_catalog_role_cannot_reach_another_catalog_through_ids_packages_or_drift() {
    let app = general_caller_app();
    let (status, _, body) = post(&app, &ids_body(), &[GENERAL_ROLE]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(result(&body, sample::DELIVERED_1)["outcome"], "accepted");
    let refused = result(&body, sample::PAYROLL_CARLOS);
    assert_eq!(refused["outcome"], "out_of_scope");
    assert_eq!(refused["catalogId"], sample::CATALOG_HR);
    assert_eq!(reprocess_count(&app, sample::PAYROLL_CARLOS), 0);
    // The audit record names the verified principal apart from the caller's hints.
    assert!(app.stdout_contains("\"verified_principal_id\":\"oid-caller\""));
    assert!(app.stdout_contains("\"verified_app_id\":\"app-of-the-logic-app\""));
    assert!(app.stdout_contains(&format!("\"verified_roles\":\"{GENERAL_ROLE}\"")));

    let (status, _, body) = post(
        &app,
        &json!({ "accessPackageIds": [sample::PACKAGE_PAYROLL] }),
        &[GENERAL_ROLE],
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "out_of_scope");
    assert_eq!(body["error"]["fields"][0]["id"], sample::PACKAGE_PAYROLL);

    let drift = json!({ "detectDriftFor": { "accessPackageIds": [sample::PACKAGE_PAYROLL] } });
    let (status, _, body) = post(&app, &drift, &[GENERAL_ROLE]);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["fields"][0]["field"], "detectDriftFor.accessPackageIds");

    // The whole-scope role reaches it.
    let (status, _, body) = post(
        &app,
        &json!({ "assignmentIds": [sample::PAYROLL_CARLOS] }),
        &["Reprocess.All"],
    );
    assert_eq!(status, 200);
    assert_eq!(result(&body, sample::PAYROLL_CARLOS)["outcome"], "accepted");
}

#[test]
fn a_catalog_role_cannot_reach_another_catalog_through_users_alerts_or_queue_messages() {
    let app = general_caller_app();
    // User fan-out: the narrowing travels with the messages, so the listing keeps General only.
    let call = as_caller(
        HttpCall::post_json("reprocess", &json!({ "userIds": [sample::USER_CARLOS] }).to_string()),
        "oid-caller",
        &[GENERAL_ROLE],
    );
    let reply = app.invoke_http(&call);
    assert_eq!(reply.res().0, 202, "{}", reply.json);
    let messages = reply.output_messages("enqueue");
    assert_eq!(messages[0]["scope"], json!({ "catalogIds": [sample::CATALOG_GENERAL] }));
    let drained = app.drain(messages, true);
    assert_eq!(drained.assignment_ids(), [sample::VISITORS_CARLOS]);
    assert_eq!(reprocess_count(&app, sample::PAYROLL_CARLOS), 0);

    // An alert sent by the catalog caller: enqueued with its narrowing, refused by the queue function.
    let alert = alert_for(sample::PAYROLL_CARLOS);
    let reply = app.post_alert_call(&as_caller(
        HttpCall::post_json("alert", &alert.to_string()),
        "oid-caller",
        &[GENERAL_ROLE],
    ));
    assert_eq!(reply.res().0, 202, "{}", reply.json);
    app.drain(reply.output_messages("enqueue"), true);
    assert_eq!(reprocess_count(&app, sample::PAYROLL_CARLOS), 0);

    // A queue message carrying a scope is held to it.
    let message = json!({ "assignmentIds": [sample::PAYROLL_CARLOS, sample::DELIVERED_2],
                          "scope": { "catalogIds": [sample::CATALOG_GENERAL] } });
    assert_eq!(app.queue_message(&message.to_string()).status, 200);
    assert_eq!(reprocess_count(&app, sample::PAYROLL_CARLOS), 0);
    assert_eq!(reprocess_count(&app, sample::DELIVERED_2), 1);
    let drift = json!({ "detectDriftFor": { "accessPackageIds": [sample::PACKAGE_PAYROLL] },
                        "scope": { "catalogIds": [sample::CATALOG_GENERAL] } });
    let reply = app.queue_message(&drift.to_string());
    assert_eq!(reply.status, 200);
    assert!(app.stdout_contains("\"audit\":\"fan_out_refused\""));

    // Over HTTP the field is queue-only.
    let (status, _, body) = post(
        &app,
        &json!({ "assignmentIds": [sample::PAYROLL_CARLOS], "scope": { "catalogIds": [sample::CATALOG_HR] } }),
        &["Reprocess.All"],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("scope"));
}

#[test]
fn a_queue_message_scope_narrows_but_never_widens_the_deployment_scope() {
    let app = spawn_app_env(&[("ALLOWED_CATALOG_IDS", sample::CATALOG_GENERAL)]);
    let message = json!({ "assignmentIds": [sample::PAYROLL_CARLOS],
                          "scope": { "catalogIds": [sample::CATALOG_HR] } });
    assert_eq!(app.queue_message(&message.to_string()).status, 200);
    assert_eq!(reprocess_count(&app, sample::PAYROLL_CARLOS), 0);
    assert!(app.stdout_contains("\"outcome\":\"out_of_scope\""));
}

#[test]
fn a_verified_caller_without_a_configured_role_is_refused_with_the_roles_it_lacks() {
    let app = general_caller_app();
    let (status, headers, body) = post(&app, &ids_body(), &["Something.Else"]);
    assert_eq!(status, 403, "{body}");
    assert!(
        headers.to_string().to_ascii_lowercase().contains("application/json"),
        "{headers}"
    );
    assert_eq!(body["error"]["code"], "forbidden");
    Spec::load().check("/reprocess", "post", status, &headers, &body);
    assert_eq!(body["error"]["requiredRoles"], json!(["Reprocess.All", GENERAL_ROLE]));
    assert!(body["error"]["message"].as_str().unwrap().contains(GENERAL_ROLE));
    assert!(app.graph_posts().is_empty());
    let alert = alert_for(sample::DELIVERED_1);
    let reply = app.post_alert_call(&as_caller(HttpCall::post_json("alert", &alert.to_string()), "x", &[]));
    assert_eq!(reply.res().0, 403);
    assert!(reply.output_messages("enqueue").is_empty());
}

#[test]
fn a_required_caller_is_refused_401_naming_what_is_missing() {
    // Authentication off: the headers are no proof, whatever they say.
    let app = spawn_app_env(&[("REQUIRE_AUTHENTICATED_CALLER", "true")]);
    let (status, headers, body) = post(&app, &ids_body(), &["Reprocess.All"]);
    assert_eq!(status, 401, "{body}");
    assert!(
        headers.to_string().to_ascii_lowercase().contains("application/json"),
        "{headers}"
    );
    assert_eq!(body["error"]["code"], "unauthenticated");
    assert_eq!(body["error"]["missing"], "WEBSITE_AUTH_ENABLED");
    Spec::load().check("/reprocess", "post", status, &headers, &body);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("WEBSITE_AUTH_ENABLED")
    );

    // Authentication on, but no principal header (or a malformed one).
    let app = spawn_app_env(&[
        ("REQUIRE_AUTHENTICATED_CALLER", "true"),
        ("WEBSITE_AUTH_ENABLED", "true"),
    ]);
    let (status, _, body) = app.post_ids(&ids_body().to_string()).res();
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["missing"], "X-MS-CLIENT-PRINCIPAL");
    let reply = app.post_alert(&alert_for(sample::DELIVERED_1).to_string());
    let (status, headers, body) = reply.res();
    assert_eq!(status, 401);
    Spec::load().check("/alert", "post", status, &headers, &body);
    assert!(reply.output_messages("enqueue").is_empty());
    let (status, headers, body) = app.get_status("https://localhost/api/operations/abc").res();
    assert_eq!(status, 401, "{body}");
    Spec::load().check("/operations/{correlationId}", "get", status, &headers, &body);
    let mut call = HttpCall::post_json("reprocess", &ids_body().to_string());
    call.headers.push(("X-MS-CLIENT-PRINCIPAL".into(), "e30=!!".into()));
    let (status, headers, body) = app.invoke_http(&call).res();
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["header"], "X-MS-CLIENT-PRINCIPAL");
    Spec::load().check("/reprocess", "post", status, &headers, &body);
    assert!(app.graph_posts().is_empty());

    // With a principal the call goes through (no CALLER_SCOPES: any verified caller).
    let (status, _, body) = post(&app, &ids_body(), &[]);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_bad_caller_setting_stops_start_up_naming_the_variable() {
    for (var, value) in [
        ("CALLER_SCOPES", r#"{"Reprocess.X": {"catalogIds": ["nope"]}}"#),
        ("REQUIRE_AUTHENTICATED_CALLER", "perhaps"),
        ("WEBSITE_AUTH_ENABLED", "maybe"),
    ] {
        let output = std::process::Command::new(binary())
            .env_clear()
            .env(var, value)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{var}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(var), "{var}: {stderr}");
    }
}

/// The 401 and 403 every HTTP function answers, for the OpenAPI coverage of `function`'s `call`.
pub(crate) fn drive_refusals(c: &mut crate::openapi::Coverage<'_>, function: &str, call: HttpCall) {
    let app = spawn_app_env(&[
        ("WEBSITE_AUTH_ENABLED", "True"),
        ("REQUIRE_AUTHENTICATED_CALLER", "true"),
        ("CALLER_SCOPES", &caller_scopes()),
    ]);
    let invoke = |call: &HttpCall| app.invoke(function, http_envelope(function, "req", call).as_bytes());
    let (status, _, body) = c.answer(&invoke(&call));
    assert_eq!((status, &body["error"]["code"]), (401, &json!("unauthenticated")));
    let (status, _, body) = c.answer(&invoke(&as_caller(call, "oid-caller", &["Other"])));
    assert_eq!((status, &body["error"]["code"]), (403, &json!("forbidden")));
}

/// An operation a verified caller started is that caller's: another verified caller (even one with the
/// whole deployment's role) gets the same 404 as for an unknown ID, and sees nothing of its results.
#[test]
fn only_the_verified_caller_that_started_an_operation_may_poll_it() {
    let state = reprocess_emulator::EmulatorState::new(reprocess_emulator::sample::tenant());
    let app = crate::operations::spawn_tracked(
        state,
        &[("WEBSITE_AUTH_ENABLED", "True"), ("CALLER_SCOPES", &caller_scopes())],
    );
    let body = json!({ "accessPackageIds": [sample::PACKAGE_VISITORS] });
    let call = as_caller(
        HttpCall::post_json("reprocess", &body.to_string()),
        "oid-owner",
        &[GENERAL_ROLE],
    );
    let (status, headers, accepted) = app.invoke_http(&call).res();
    let url = crate::operations::location_of(status, &headers, &accepted);
    let poll = |object_id: &str, roles: &[&str]| {
        let call = as_caller(HttpCall::get_status_url(&url).unwrap(), object_id, roles);
        app.invoke(
            OPERATIONS_FUNCTION,
            http_envelope(OPERATIONS_FUNCTION, "req", &call).as_bytes(),
        )
        .res()
    };
    let (status, _, body) = poll("oid-owner", &[GENERAL_ROLE]);
    assert!(status == 200 || status == 202, "{body}");
    assert_eq!(body["correlationId"], accepted["correlationId"]);
    for (object_id, roles) in [
        ("oid-other", &[GENERAL_ROLE][..]),
        ("oid-admin", &["Reprocess.All"][..]),
    ] {
        let (status, _, body) = poll(object_id, roles);
        assert_eq!(status, 404, "{object_id}: {body}");
        assert_eq!(body["error"]["code"], "operation_not_found");
        assert!(body.get("results").is_none() && body.get("status").is_none(), "{body}");
    }
}
