//! Alert parsing against the samples in `tests/fixtures/alerts/` (Microsoft's common alert schema docs,
//! `MicrosoftDocs/azure-docs` `articles/azure-monitor/alerts/alerts-common-schema.md`; see the README there).

use super::*;
use serde_json::json;

const FULL: &str = include_str!("../../tests/fixtures/alerts/common_schema_sample.json");
const LOG_V2: &str = include_str!("../../tests/fixtures/alerts/log_alerts_v2_context.json");
const LOG_V1: &str = include_str!("../../tests/fixtures/alerts/log_platform_context.json");
const ACTIVITY: &str = include_str!("../../tests/fixtures/alerts/activity_log_administrative_context.json");
const A: &str = "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10";
const P: &str = "9a1d6e2c-3b4f-4c5d-8e6f-7a8b9c0d1e2f";
const U: &str = "c5a1b2d3-e4f5-4a6b-9c7d-8e9f0a1b2c3d";

/// The full sample's envelope, Fired, with another sample's `alertContext`.
fn fired_with(context: &str, signal: &str, service: &str) -> Value {
    let mut alert: Value = serde_json::from_str(FULL).unwrap();
    let context: Value = serde_json::from_str(context).unwrap();
    alert["data"]["alertContext"] = context["alertContext"].clone();
    alert["data"]["essentials"]["monitorCondition"] = json!("Fired");
    alert["data"]["essentials"]["signalType"] = json!(signal);
    alert["data"]["essentials"]["monitoringService"] = json!(service);
    alert["data"]["customProperties"] = Value::Null;
    alert
}

fn reason(v: &AlertVerdict) -> &str {
    match v {
        AlertVerdict::NothingToDo { reason, .. } => reason,
        other => panic!("expected nothing to do, got {other:?}"),
    }
}

#[test]
fn the_docs_samples_as_published_are_nothing_to_do() {
    let full: Value = serde_json::from_str(FULL).unwrap();
    assert!(reason(&parse_alert(&full)).contains("Resolved"));
    for (context, signal, service) in [
        (LOG_V2, "Log", "Log Alerts V2"),
        (LOG_V1, "Log", "Platform"),
        (ACTIVITY, "Activity Log", "Activity Log - Administrative"),
    ] {
        let verdict = parse_alert(&fired_with(context, signal, service));
        assert!(reason(&verdict).contains("no usable dimension"), "{service}");
    }
    let mut metric = full.clone();
    metric["data"]["essentials"]["monitorCondition"] = json!("Fired");
    assert!(reason(&parse_alert(&metric)).contains("monitoringService \"Platform\""));
    assert!(reason(&parse_alert(&json!({ "schemaId": "Microsoft.Insights/activityLogs" }))).contains("schemaId"));
    assert!(reason(&parse_alert(&json!([1, 2]))).contains("schemaId"));
}

#[test]
fn log_search_v2_dimensions_and_properties_name_targets() {
    let mut alert = fired_with(LOG_V2, "Log", "Log Alerts V2");
    alert["data"]["alertContext"]["condition"]["allOf"][0]["dimensions"] = json!([
        { "name": "TargetUserId", "value": U },
        { "name": "ASSIGNMENTID", "value": A.to_uppercase() },
        { "name": "assignmentId", "value": "../../users" },
        { "name": "userId", "value": 42 },
        { "name": "Computer", "value": "TestComputer" }
    ]);
    alert["data"]["alertContext"]["properties"] = json!({ "accessPackageId": P, "name1": "value1" });
    let AlertVerdict::Work {
        targets,
        scopes,
        skipped,
        alert_rule,
    } = parse_alert(&alert)
    else {
        panic!("expected work")
    };
    assert_eq!(targets.assignment_ids()[0].as_str(), A);
    assert_eq!(scopes.iter().map(|s| s.id()).collect::<Vec<_>>(), [U, P]);
    assert_eq!(alert_rule.as_deref(), Some("WCUS-R2-Gen2"));
    assert_eq!(skipped.len(), 2);
    assert_eq!(
        (skipped[0].source, skipped[0].name.as_str()),
        ("dimension", "assignmentId")
    );
    assert!(skipped[0].reason.contains("GUID") && !skipped[0].reason.contains("users"));
    assert!(skipped[1].reason.contains("not a string"));
}

#[test]
fn metric_custom_properties_and_old_log_dimensions_name_targets() {
    let mut metric: Value = serde_json::from_str(FULL).unwrap();
    metric["data"]["essentials"]["monitorCondition"] = json!("Fired");
    metric["data"]["customProperties"] = json!({ "Key1": "Value1", "assignmentRequestId": A });
    let AlertVerdict::Work { targets, .. } = parse_alert(&metric) else {
        panic!()
    };
    assert_eq!(targets.assignment_request_ids()[0].as_str(), A);

    let mut log = fired_with(LOG_V1, "Log", "Platform");
    log["data"]["alertContext"]["Dimensions"] = json!([{ "name": "userid", "value": U }]);
    let AlertVerdict::Work { scopes, .. } = parse_alert(&log) else {
        panic!()
    };
    assert_eq!(scopes, [Scope::User(UserId::parse(U).unwrap())]);
}

#[test]
fn only_invalid_values_is_nothing_to_do_with_the_reasons() {
    let mut alert = fired_with(LOG_V2, "Log", "Log Alerts V2");
    alert["data"]["alertContext"]["condition"]["allOf"][0]["dimensions"] =
        json!([{ "name": "accessPackageId", "value": "00000000-0000-0000-0000-000000000000" }]);
    let AlertVerdict::NothingToDo { skipped, .. } = parse_alert(&alert) else {
        panic!()
    };
    assert!(skipped[0].reason.contains("nil GUID"));
}

#[test]
fn too_many_pairs_refuse_the_whole_alert_whatever_their_order() {
    // 2,000 other pairs first used to push the IDs past the read cap: some were enqueued, silently.
    let mut alert = fired_with(LOG_V2, "Log", "Log Alerts V2");
    let mut dims: Vec<Value> = (0..MAX_PAIRS)
        .map(|i| json!({ "name": format!("Column{i}"), "value": "x" }))
        .collect();
    dims.push(json!({ "name": "assignmentId", "value": A }));
    alert["data"]["alertContext"]["condition"]["allOf"][0]["dimensions"] = Value::Array(dims);
    assert!(matches!(
        parse_alert(&alert),
        AlertVerdict::TooManyPairs { pairs, limit: MAX_PAIRS } if pairs > MAX_PAIRS
    ));
    // Unnamed entries count too, so they cannot be used to hide the size.
    let unnamed: Vec<Value> = (0..=MAX_PAIRS).map(|_| json!({ "value": A })).collect();
    alert["data"]["alertContext"]["condition"]["allOf"][0]["dimensions"] = Value::Array(unnamed);
    assert!(matches!(parse_alert(&alert), AlertVerdict::TooManyPairs { .. }));
}
