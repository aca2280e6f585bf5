//! `function-reprocess-alert` with Azure Monitor's common alert schema samples, taken verbatim from
//! MicrosoftDocs/azure-docs `articles/azure-monitor/alerts/alerts-common-schema.md` (see
//! `tests/fixtures/alerts/README.md`): Resolved and other alert shapes are "nothing to do", log search
//! dimensions and custom properties become queue messages, answered fast with 202.

use crate::helpers::*;
use reprocess_emulator::sample;
use serde_json::{Value, json};
use std::collections::HashSet;

fn fixture_json(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/alerts/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The docs' full sample envelope, Fired, carrying another sample's `alertContext`.
fn fired_with(context: &str, service: &str) -> Value {
    let mut alert = fixture_json("common_schema_sample.json");
    alert["data"]["alertContext"] = fixture_json(context)["alertContext"].clone();
    alert["data"]["essentials"]["monitorCondition"] = json!("Fired");
    alert["data"]["essentials"]["signalType"] = json!("Log");
    alert["data"]["essentials"]["monitoringService"] = json!(service);
    alert["data"]["customProperties"] = Value::Null;
    alert
}

fn assert_nothing_to_do(app: &TestApp, alert: &Value, reason: &str) {
    let reply = app.post_alert(&alert.to_string());
    assert_eq!(reply.status, 200);
    let (status, _, body) = reply.res();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "nothing to do");
    assert!(body["reason"].as_str().unwrap().contains(reason), "{body}");
    assert!(reply.output_messages("enqueue").is_empty());
}

#[test]
fn the_resolved_sample_from_the_docs_is_nothing_to_do() {
    let app = spawn_app();
    // Verbatim "Sample alert payload": a metric alert, monitorCondition Resolved.
    assert_nothing_to_do(&app, &fixture_json("common_schema_sample.json"), "Resolved");
    // Resolved wins even when the alert names targets.
    let mut resolved = fired_with("log_alerts_v2_context.json", "Log Alerts V2");
    resolved["data"]["essentials"]["monitorCondition"] = json!("Resolved");
    resolved["data"]["alertContext"]["condition"]["allOf"][0]["dimensions"] =
        json!([{ "name": "assignmentId", "value": sample::DELIVERED_1 }]);
    assert_nothing_to_do(&app, &resolved, "Resolved");
    assert!(app.emulator.state.graph_requests().is_empty());
}

#[test]
fn other_alert_shapes_are_nothing_to_do_with_a_reason() {
    let app = spawn_app();
    assert_nothing_to_do(
        &app,
        &fired_with("log_alerts_v2_context.json", "Log Alerts V2"),
        "no usable dimension",
    );
    assert_nothing_to_do(
        &app,
        &fired_with("log_platform_context.json", "Platform"),
        "no usable dimension",
    );
    assert_nothing_to_do(
        &app,
        &fired_with(
            "activity_log_administrative_context.json",
            "Activity Log - Administrative",
        ),
        "no usable dimension",
    );
    let mut metric = fixture_json("common_schema_sample.json");
    metric["data"]["essentials"]["monitorCondition"] = json!("Fired");
    assert_nothing_to_do(&app, &metric, "no usable dimension");
    assert_nothing_to_do(
        &app,
        &json!({ "schemaId": "AzureMonitorMetricAlert", "data": {} }),
        "schemaId",
    );
    assert_nothing_to_do(&app, &json!(["not", "an", "alert"]), "schemaId");
    // Not JSON at all is a client error, not an alert shape.
    assert_eq!(app.post_alert("{oops").res().0, 400);
    assert!(app.emulator.state.graph_requests().is_empty());
}

#[test]
fn log_search_dimensions_are_enqueued_fast_and_then_reprocessed() {
    let app = spawn_app();
    let mut alert = fired_with("log_alerts_v2_context.json", "Log Alerts V2");
    alert["data"]["alertContext"]["condition"]["allOf"][0]["dimensions"] = json!([
        { "name": "TargetUserId", "value": sample::USER_ADELE },
        { "name": "assignmentId", "value": sample::DELIVERED_2 },
        { "name": "assignmentId", "value": "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10/../../users" },
        { "name": "Computer", "value": "TestComputer" }
    ]);
    let reply = app.post_alert(&alert.to_string());
    // Action groups time out quickly: the answer comes from enqueuing, with no Graph call in between.
    assert!(
        app.emulator.state.graph_requests().is_empty(),
        "the alert invocation called Graph"
    );
    let (status, _, body) = reply.res();
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"]["userIds"], json!([sample::USER_ADELE]));
    assert_eq!(body["accepted"]["assignmentIds"], 1);
    assert_eq!(body["alertRule"], "WCUS-R2-Gen2");
    assert_eq!(body["skipped"].as_array().unwrap().len(), 1);
    assert_eq!(body["skipped"][0]["name"], "assignmentId");
    assert!(
        !body.to_string().contains("../../users"),
        "hostile values are not echoed"
    );
    assert!(
        app.emulator.state.graph_requests().is_empty(),
        "the alert answer waits for no Graph call"
    );

    let drained = app.drain(reply.output_messages("enqueue"), true);
    let ids: HashSet<String> = drained.assignment_ids().into_iter().collect();
    let want: HashSet<String> = [sample::DELIVERED_1, sample::DELIVERED_2, sample::DELIVERED_3]
        .map(str::to_owned)
        .into();
    assert_eq!(ids, want);
    let tenant = app.emulator.state.tenant.lock().unwrap();
    assert_eq!(tenant.reprocess_count(sample::DELIVERED_2), 1);
    assert_eq!(tenant.reprocess_count(sample::DELIVERED_1), 1);
    assert_eq!(tenant.reprocess_count(sample::DELIVERING), 0);
}

#[test]
fn metric_custom_properties_and_old_log_dimensions_name_targets() {
    let app = spawn_app();
    let mut metric = fixture_json("common_schema_sample.json");
    metric["data"]["essentials"]["monitorCondition"] = json!("Fired");
    metric["data"]["customProperties"] = json!({ "Key1": "Value1", "accessPackageId": sample::PACKAGE_BULK });
    let reply = app.post_alert(&metric.to_string());
    assert_eq!(reply.res().0, 202);
    let out = reply.output_messages("enqueue");
    assert_eq!(
        out,
        [
            json!({ "accessPackageIds": [sample::PACKAGE_BULK], "correlationId": out[0]["correlationId"], "origin": out[0]["origin"] })
        ]
    );
    // Who asked travels with the work: the alert rule and alert ID, for the queue function's audit records.
    assert_eq!(out[0]["origin"]["trigger"], "alert");
    assert_eq!(out[0]["origin"]["alertRule"], metric["data"]["essentials"]["alertRule"]);
    assert_eq!(out[0]["origin"]["alertId"], metric["data"]["essentials"]["alertId"]);

    let mut log = fired_with("log_platform_context.json", "Platform");
    log["data"]["alertContext"]["Dimensions"] =
        json!([{ "name": "assignmentRequestId", "value": sample::REQUEST_FAILED }]);
    let reply = app.post_alert(&log.to_string());
    assert_eq!(reply.res().0, 202);
    assert_eq!(
        reply.output_messages("enqueue")[0]["assignmentRequestIds"],
        json!([sample::REQUEST_FAILED])
    );
}

#[test]
fn alert_dry_run_shows_the_messages_and_enqueues_nothing() {
    let app = spawn_app();
    let mut alert = fired_with("log_alerts_v2_context.json", "Log Alerts V2");
    alert["data"]["alertContext"]["properties"] = json!({ "userId": sample::USER_BRIAN });
    let call = TestApp::call_with_query("alert", &alert.to_string(), &[("dryRun", "true")]);
    let reply = app.post_alert_call(&call);
    let (status, _, body) = reply.res();
    assert_eq!(status, 200);
    assert_eq!(body["wouldEnqueue"][0]["userIds"], json!([sample::USER_BRIAN]));
    assert!(reply.output_messages("enqueue").is_empty());
    assert!(app.emulator.state.graph_requests().is_empty());
}

#[test]
fn an_alert_that_cannot_be_read_in_full_is_refused_with_a_4xx_naming_the_limit() {
    let app = spawn_app_env(&[("MAX_IDS_PER_CALL", "3")]);
    let dims = |entries: Vec<Value>| {
        let mut alert = fired_with("log_alerts_v2_context.json", "Log Alerts V2");
        alert["data"]["alertContext"]["condition"]["allOf"][0]["dimensions"] = Value::Array(entries);
        alert
    };
    // ~2,000 other pairs before the IDs: refused, nothing enqueued (main enqueued a subset).
    let mut entries: Vec<Value> = (0..2_000)
        .map(|i| json!({ "name": format!("Column{i}"), "value": "x" }))
        .collect();
    entries.push(json!({ "name": "assignmentId", "value": sample::DELIVERED_1 }));
    let reply = app.post_alert(&dims(entries).to_string());
    let (status, _, body) = reply.res();
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "too_many_pairs");
    assert_eq!(body["error"]["limit"], 2_000);
    assert!(reply.output_messages("enqueue").is_empty());

    // More IDs than MAX_IDS_PER_CALL: 413, not 200 "nothing to do" (which the action group takes as done).
    let ids = [
        sample::DELIVERED_1,
        sample::DELIVERED_2,
        sample::DELIVERED_3,
        sample::EXPIRED,
    ];
    let entries = ids
        .iter()
        .map(|id| json!({ "name": "assignmentId", "value": id }))
        .collect();
    let reply = app.post_alert(&dims(entries).to_string());
    let (status, _, body) = reply.res();
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["setting"], "MAX_IDS_PER_CALL");
    assert!(reply.output_messages("enqueue").is_empty());

    // A repeated key hides values: refused as a whole, naming the key.
    let text = format!(
        r#"{{"schemaId":"azureMonitorCommonAlertSchema","data":{{"essentials":{{"monitorCondition":"Fired"}},"customProperties":{{"assignmentId":"{}","assignmentId":"{}"}}}}}}"#,
        sample::DELIVERED_1,
        sample::DELIVERED_2
    );
    let reply = app.post_alert(&text);
    let (status, _, body) = reply.res();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "duplicate_key");
    assert_eq!(
        body["error"]["fields"][0]["field"],
        "$.data.customProperties.assignmentId"
    );
    assert!(reply.output_messages("enqueue").is_empty());
    assert!(app.emulator.state.graph_requests().is_empty());
}
