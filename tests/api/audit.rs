//! Audit records: one per reprocess sent to Graph (and per ID the scope refused), one per dry run, for
//! every trigger kind, in both sinks — the JSON log line (`"audit":…`) and the durable table in the
//! app's storage account (real Azurite) — naming who asked and what Graph answered, and never a secret.

use crate::azurite::azurite;
use crate::helpers::*;
use reprocess_emulator::host::{HttpCall, QueueMessageMeta, queue_envelope};
use reprocess_emulator::sample;
use reprocess_handler::storage::{Entity, Filter, StorageSettings, TableClient, TableKey, TableName};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.SECRET-CALLER-TOKEN";
const FUNCTION_KEY: &str = "SECRET-function-key-b64==";
const QUERY_CODE: &str = "SECRET-query-code-xyz";

/// An app whose audit table is fresh (tests share one Azurite).
fn spawn_audited(extra: &[(&str, &str)]) -> (TestApp, TableName) {
    let table = TableName::parse(&format!("audit{}", fastrand::u32(..))).unwrap();
    let storage = azurite().connection_string();
    let mut env = vec![
        ("AzureWebJobsStorage", storage.as_str()),
        ("AUDIT_TABLE_NAME", table.as_str()),
    ];
    env.extend_from_slice(extra);
    (spawn_app_env(&env), table)
}

/// The audit lines on the handler's stdout.
fn audit_lines(app: &TestApp) -> Vec<Value> {
    std::thread::sleep(Duration::from_millis(50));
    app.stdout()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["audit_schema"] == 1)
        .collect()
}

fn table_client() -> TableClient {
    let vars = vec![("AzureWebJobsStorage".to_owned(), azurite().connection_string())];
    TableClient::new(&StorageSettings::from_vars(&vars).unwrap().unwrap(), None).unwrap()
}

/// Today's entities in the audit table, waiting (up to 10 s) until there are `count` of them: the
/// handler writes them in the background after answering.
fn table_records(table: &TableName, count: usize) -> Vec<Entity> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = table_client();
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let started = Instant::now();
    loop {
        let entities = runtime
            .block_on(client.query_all(table, &Filter::partition(&TableKey::parse(&today).unwrap())))
            .unwrap_or_default();
        if entities.len() >= count || started.elapsed() > Duration::from_secs(10) {
            return entities;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_no_secret(text: &str) {
    for secret in [TOKEN, "SECRET-CALLER-TOKEN", FUNCTION_KEY, QUERY_CODE, "code="] {
        assert!(!text.contains(secret), "{secret:?} reached a sink");
    }
}

#[test]
fn an_http_reprocess_is_recorded_with_its_caller_and_graphs_answer_and_no_secret() {
    let (app, table) = spawn_audited(&[]);
    let body = json!({ "assignmentIds": [sample::DELIVERED_1, sample::EXPIRED] }).to_string();
    let mut call = TestApp::call_with_query("reprocess", &body, &[("code", QUERY_CODE)]);
    call.headers.extend(
        [
            ("Authorization", format!("Bearer {TOKEN}")),
            ("x-functions-key", FUNCTION_KEY.to_owned()),
            ("x-ms-workflow-name", "onboarding-drift".to_owned()),
            ("x-ms-workflow-run-id", "08584521123456789012345678901CU00".to_owned()),
            ("x-ms-client-tracking-id", "ticket-4711".to_owned()),
            ("x-ms-client-principal-name", "adelev@contoso.example".to_owned()),
            ("x-ms-client-principal-id", sample::USER_ADELE.to_owned()),
            ("x-ms-client-principal-idp", "aad".to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let reply = app.invoke_http(&call);
    let (status, _, body) = reply.res();
    assert_eq!(status, 200);
    let request_id_of = |id: &str| {
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["graphRequestId"]
            .clone()
    };

    let lines = audit_lines(&app);
    assert_eq!(lines.len(), 2, "one record per reprocess: {lines:?}");
    for line in &lines {
        assert_eq!(line["audit"], "reprocess");
        assert_eq!(line["trigger"], "http");
        assert_eq!(line["function"], "function-reprocess");
        assert_eq!(line["invocation_id"], body["invocationId"]);
        assert_eq!(line["workflow_name"], "onboarding-drift");
        assert_eq!(line["workflow_run_id"], "08584521123456789012345678901CU00");
        assert_eq!(line["client_tracking_id"], "ticket-4711");
        assert_eq!(line["principal_name"], "adelev@contoso.example");
        assert_eq!(line["principal_id"], sample::USER_ADELE);
        assert_eq!(line["principal_idp"], "aad");
        assert_eq!(line["key_name"], "default", "the key's name, never the key");
    }
    let line_for = |id: &str| lines.iter().find(|l| l["assignment_ids"] == id).unwrap().clone();
    let accepted = line_for(sample::DELIVERED_1);
    assert_eq!(accepted["outcome"], "accepted");
    assert_eq!(accepted["http_status"], 202);
    assert_eq!(accepted["graph_request_id"], request_id_of(sample::DELIVERED_1));
    let rejected = line_for(sample::EXPIRED);
    assert_eq!(rejected["outcome"], "rejected");
    assert_eq!(rejected["http_status"], 400);
    assert_eq!(rejected["error_code"], "BadRequest");

    let stored = table_records(&table, 2);
    assert_eq!(stored.len(), 2, "one entity per record");
    for entity in &stored {
        let line = line_for(entity.str("assignment_ids").unwrap());
        for field in [
            "outcome",
            "graph_request_id",
            "workflow_run_id",
            "principal_name",
            "invocation_id",
            "time",
        ] {
            assert_eq!(entity.properties[field], line[field], "{field}");
        }
        assert_eq!(entity.partition_key.as_str(), &line["time"].as_str().unwrap()[..10]);
        assert!(
            entity
                .row_key
                .as_str()
                .starts_with(&line["time"].as_str().unwrap()[11..])
        );
    }

    let logs = format!("{}\n{}", app.stdout(), app.stderr());
    assert_no_secret(&logs);
    assert_no_secret(&serde_json::to_string(&stored.iter().map(|e| &e.properties).collect::<Vec<_>>()).unwrap());
    app.assert_no_secrets_logged();
}

#[test]
fn an_alert_is_named_in_the_records_of_the_queue_invocation_that_reprocesses() {
    let (app, table) = spawn_audited(&[]);
    let alert_id =
        "/subscriptions/11111111-2222-4333-8444-555555555555/providers/Microsoft.AlertsManagement/alerts/9f8e7d6c";
    let alert = json!({ "schemaId": "azureMonitorCommonAlertSchema", "data": {
        "essentials": { "monitorCondition": "Fired", "alertRule": "assignment drift", "alertId": alert_id },
        "alertContext": { "condition": { "allOf": [{ "dimensions": [{ "name": "assignmentId", "value": sample::DELIVERED_2 }] }] } } } });
    // A dry run of the alert is one record naming it; nothing is enqueued.
    let dry = app.post_alert_call(&TestApp::call_with_query(
        "alert",
        &alert.to_string(),
        &[("dryRun", "true")],
    ));
    assert_eq!(dry.res().0, 200);
    let lines = audit_lines(&app);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["audit"], "dry_run");
    assert_eq!(lines[0]["trigger"], "alert");
    assert_eq!(lines[0]["alert_rule"], "assignment drift");
    assert_eq!(lines[0]["assignment_ids"], sample::DELIVERED_2);

    let reply = app.post_alert(&alert.to_string());
    assert_eq!(reply.res().0, 202);
    assert_eq!(audit_lines(&app).len(), 1, "the alert only enqueues");
    let messages = reply.output_messages("enqueue");
    assert_eq!(messages.len(), 1);

    let meta = QueueMessageMeta::now(2);
    let envelope = queue_envelope(QUEUE_FUNCTION, "message", &messages[0].to_string(), &meta);
    let reply = app.invoke(QUEUE_FUNCTION, envelope.as_bytes());
    assert_eq!(reply.status, 200);
    let lines = audit_lines(&app);
    assert_eq!(lines.len(), 2);
    let line = &lines[1];
    assert_eq!(line["trigger"], "queue");
    assert_eq!(line["function"], "function-reprocess-queue");
    assert_eq!(line["origin_trigger"], "alert");
    assert_eq!(line["origin_function"], "function-reprocess-alert");
    assert_eq!(line["alert_rule"], "assignment drift");
    assert_eq!(line["alert_id"], alert_id);
    assert_eq!(line["queue_message_id"], meta.id);
    assert_eq!(line["queue_insertion_time"], meta.insertion_time);
    assert_eq!(line["queue_dequeue_count"], 2);
    assert_eq!(line["correlation_id"], messages[0]["correlationId"]);
    assert_eq!(line["assignment_ids"], sample::DELIVERED_2);
    assert_eq!(line["outcome"], "accepted");
    assert!(line["graph_request_id"].as_str().is_some_and(|s| !s.is_empty()));
    let stored = table_records(&table, 2);
    assert_eq!(stored.len(), 2);
    let reprocessed = stored.iter().find(|e| e.str("audit") == Some("reprocess")).unwrap();
    assert_eq!(reprocessed.properties["alert_id"], alert_id);
    assert_eq!(reprocessed.properties["queue_message_id"], json!(meta.id));
}

#[test]
fn a_queue_message_and_a_fan_out_carry_who_asked_to_every_record() {
    let (app, table) = spawn_audited(&[]);
    // A bare ID put on the queue by a batch job: no origin, the queue message names it.
    let reply = app.queue_message(sample::DELIVERED_3);
    assert_eq!(reply.status, 200);
    let lines = audit_lines(&app);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["trigger"], "queue");
    assert_eq!(lines[0]["origin_trigger"], "");
    assert!(lines[0]["queue_message_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(lines[0]["outcome"], "accepted");

    // A Logic App's fan-out: every reprocess, pages and chunks later, names the workflow run.
    let mut call = HttpCall::post_json("reprocess", &json!({ "userIds": [sample::USER_BRIAN] }).to_string());
    call.headers.push(("x-ms-workflow-run-id".into(), "run-77".into()));
    let reply = app.invoke_http(&call);
    assert_eq!(reply.res().0, 202);
    app.drain(reply.output_messages("enqueue"), true);
    let lines: Vec<Value> = audit_lines(&app).into_iter().skip(1).collect();
    let ids: Vec<&str> = lines.iter().map(|l| l["assignment_ids"].as_str().unwrap()).collect();
    assert_eq!(ids, [sample::DELIVERED_2], "Brian's one delivered assignment");
    assert!(
        lines
            .iter()
            .all(|l| l["workflow_run_id"] == "run-77" && l["origin_trigger"] == "http")
    );
    assert_eq!(table_records(&table, 2).len(), 2);
}

#[test]
fn a_dry_run_is_one_record_and_reprocesses_nothing() {
    let (app, table) = spawn_audited(&[]);
    let body = json!({ "assignmentIds": [sample::DELIVERED_1], "userIds": [sample::USER_ADELE], "dryRun": true });
    let mut call = HttpCall::post_json("reprocess", &body.to_string());
    call.headers
        .push(("x-ms-client-tracking-id".into(), "preview-1".into()));
    let reply = app.invoke_http(&call);
    assert_eq!(reply.res().0, 200);
    let lines = audit_lines(&app);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["audit"], "dry_run");
    assert_eq!(lines[0]["outcome"], "dry_run");
    assert_eq!(lines[0]["assignment_ids"], sample::DELIVERED_1);
    assert_eq!(lines[0]["user_ids"], sample::USER_ADELE);
    assert_eq!(lines[0]["client_tracking_id"], "preview-1");
    assert!(lines[0]["detail"].as_str().unwrap().contains("idsWouldReprocess"));
    assert!(app.graph_posts().is_empty());
    assert_eq!(table_records(&table, 1).len(), 1);
}

#[test]
fn a_scope_refusal_is_recorded_and_an_unreachable_table_never_fails_the_reprocess() {
    // Storage that does not answer: records still reach the log, the reprocess is unaffected.
    let dead = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;TableEndpoint=http://127.0.0.1:9/devstoreaccount1";
    let app = spawn_app_env(&[
        ("AzureWebJobsStorage", dead),
        ("ALLOWED_CATALOG_IDS", sample::CATALOG_GENERAL),
    ]);
    let (status, _, body) = app
        .post_ids(&json!({ "assignmentIds": [sample::DELIVERED_1, sample::PAYROLL_CARLOS] }).to_string())
        .res();
    assert_eq!(status, 200);
    assert_eq!(body["summary"]["accepted"], 1);
    let lines = audit_lines(&app);
    let refused = lines
        .iter()
        .find(|l| l["assignment_ids"] == sample::PAYROLL_CARLOS)
        .unwrap();
    assert_eq!(refused["outcome"], "out_of_scope");
    assert!(refused["detail"].as_str().unwrap().contains(sample::CATALOG_HR));
    assert!(app.stdout_contains("audit records not written to the durable sink"));
}
