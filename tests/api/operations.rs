//! Asynchronous operations: every 202 carries `Location` and `Retry-After`; `GET /api/operations/{id}` answers 202 while
//! work is queued or running and 200 with every ID when finished; the state lives in Table Storage (real
//! Azurite) and stays right with fan-out, redelivery after a crash, superseded children and dead letters.

use crate::azurite::azurite;
use crate::helpers::{ReplyExt, TestApp, delivered_tenant, spawn_app_with};
use reprocess_emulator::{EmulatorState, sample};
use serde_json::{Value, json};
use std::collections::BTreeSet;

pub(crate) fn table_name() -> String {
    format!("ops{}", fastrand::u32(..))
}

/// The app with Azurite as its storage (a fresh table per test) plus `env`.
pub(crate) fn spawn_tracked(state: EmulatorState, env: &[(&str, &str)]) -> TestApp {
    spawn_tracked_in(state, env, &table_name())
}

pub(crate) fn spawn_tracked_in(state: EmulatorState, env: &[(&str, &str)], table: &str) -> TestApp {
    let connection = azurite().connection_string();
    let mut all = vec![
        ("AzureWebJobsStorage", connection.as_str()),
        ("OPERATIONS_TABLE_NAME", table),
    ];
    all.extend_from_slice(env);
    spawn_app_with(state, &all)
}

pub(crate) fn header<'a>(headers: &'a Value, name: &str) -> Option<&'a str> {
    headers
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// Checks a 202's `Location`, `Retry-After` and `statusUrl`; returns the status URL.
pub(crate) fn location_of(status: u16, headers: &Value, body: &Value) -> String {
    assert_eq!(status, 202, "{body}");
    let location = header(headers, "Location").expect("a 202 carries Location").to_owned();
    assert_eq!(header(headers, "Retry-After"), Some("10"));
    assert_eq!(body["statusUrl"], json!(location));
    let id = body["correlationId"].as_str().unwrap();
    assert_eq!(location, format!("https://localhost/api/operations/{id}"));
    location
}

/// Polls `url`, following `nextLink`s: the final body of the first page and every result of all pages.
pub(crate) fn finished(app: &TestApp, url: &str) -> (Value, Vec<Value>) {
    let (status, _, first) = app.get_status(url).res();
    assert_eq!(status, 200, "{first}");
    let mut results: Vec<Value> = first["results"].as_array().unwrap().clone();
    let mut next = first.get("nextLink").and_then(Value::as_str).map(str::to_owned);
    while let Some(link) = next {
        assert!(link.starts_with(url), "{link}");
        let (status, _, page) = app.get_status(&link).res();
        assert_eq!(status, 200, "{page}");
        results.extend(page["results"].as_array().unwrap().iter().cloned());
        next = page.get("nextLink").and_then(Value::as_str).map(str::to_owned);
    }
    (first, results)
}

pub(crate) fn ids_of(results: &[Value]) -> BTreeSet<String> {
    results.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_fan_out_is_polled_from_202_to_200_with_every_id() {
    let app = spawn_tracked(
        EmulatorState::new(sample::tenant()),
        &[("OPERATIONS_RESULTS_PAGE_SIZE", "100")],
    );
    let body = json!({ "accessPackageIds": [sample::PACKAGE_BULK] }).to_string();
    let call = TestApp::call_with_query("reprocess", &body, &[("code", "SECRET-KEY")]);
    let reply = app.invoke_http(&call);
    let (status, headers, accepted) = reply.res();
    let location = location_of(status, &headers, &accepted);
    assert!(!location.contains("SECRET") && !location.contains('?'), "{location}");
    assert_eq!(accepted["status"], "accepted", "the existing body fields stay");
    let enqueued = reply.output_messages("enqueue");
    assert!(
        enqueued
            .iter()
            .all(|m| m["messageKey"].as_str().is_some_and(|k| k.len() == 24))
    );

    // Queued, not yet run: 202 again, pointing at itself.
    let (status, headers, running) = app.get_status(&location).res();
    assert_eq!(
        (status, running["status"].as_str()),
        (202, Some("running")),
        "{running}"
    );
    assert_eq!(header(&headers, "Location"), Some(location.as_str()));
    assert_eq!(header(&headers, "Retry-After"), Some("10"));
    assert!(running["pendingMessages"].as_u64().unwrap() >= 1);

    let drained = app.drain(enqueued, true);
    assert!(drained.dead_letters.is_empty());
    let (done, results) = finished(&app, &location);
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["pendingMessages"], 0);
    assert_eq!(done["summary"]["accepted"], 260);
    assert_eq!(done["summary"]["dead_lettered"], 0);
    assert_eq!(
        done["listing"],
        json!({ "scopes": 1, "pagesListed": 3, "idsFound": 260 })
    );
    assert_eq!(
        done["results"].as_array().unwrap().len(),
        100,
        "a page holds OPERATIONS_RESULTS_PAGE_SIZE"
    );
    assert_eq!(results.len(), 260, "nextLink pages hold every result once");
    let want: BTreeSet<String> = (0..260).map(sample::bulk_assignment).collect();
    assert_eq!(ids_of(&results), want);
    assert!(
        results
            .iter()
            .all(|r| r["outcome"] == "accepted" && r["kind"] == "assignment")
    );
}

#[test]
fn a_large_id_list_is_tracked_through_the_queue() {
    let (state, ids) = delivered_tenant(71, 45);
    let app = spawn_tracked(state, &[("HTTP_SYNC_MAX_IDS", "10")]);
    let reply = app.post_ids(&json!({ "assignmentIds": ids }).to_string());
    let (status, headers, queued) = reply.res();
    let location = location_of(status, &headers, &queued);
    assert_eq!(queued["status"], "queued");
    app.drain(reply.output_messages("enqueue"), true);
    let (done, results) = finished(&app, &location);
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["summary"]["accepted"], 45);
    assert_eq!(ids_of(&results), ids.iter().cloned().collect());
    assert!(done.get("nextLink").is_none());
}

#[test]
fn dead_lettered_ids_are_listed_with_their_reason() {
    let (state, ids) = delivered_tenant(73, 25);
    *state.app_role_granted.lock().unwrap() = false;
    let app = spawn_tracked(state, &[("HTTP_SYNC_MAX_IDS", "10")]);
    let reply = app.post_ids(&json!({ "assignmentIds": ids }).to_string());
    let (status, headers, queued) = reply.res();
    let location = location_of(status, &headers, &queued);
    let drained = app.drain(reply.output_messages("enqueue"), true);
    assert!(!drained.dead_letters.is_empty());
    let (done, _) = finished(&app, &location);
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["summary"]["permission_denied"], 25);
    assert_eq!(done["summary"]["dead_lettered"], 25);
    let dead = done["deadLettered"].as_array().unwrap();
    assert_eq!(ids_of(dead), ids.iter().cloned().collect());
    assert!(dead.iter().all(|d| {
        d["kind"] == "assignment"
            && d["reason"]
                .as_str()
                .unwrap()
                .contains("EntitlementManagement.ReadWrite.All")
    }));
}

#[test]
fn unknown_malformed_and_expired_operations() {
    let table_text = table_name();
    let app = spawn_tracked_in(EmulatorState::new(sample::tenant()), &[], &table_text);
    let (status, _, body) = app
        .get_status("https://localhost/api/operations/no-such-operation")
        .res();
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "operation_not_found");
    let (status, _, body) = app.get_status("https://localhost/api/operations/bad_id!").res();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["fields"][0]["field"], "correlationId");
    let (status, _, body) = app.get_status("https://localhost/api/operations/abc?page=zzz").res();
    assert_eq!(status, 400, "{body}");
    let mut post = reprocess_emulator::host::HttpCall::get_status_url("https://localhost/api/operations/abc").unwrap();
    post.method = "POST".into();
    let envelope = reprocess_emulator::host::http_envelope(crate::helpers::OPERATIONS_FUNCTION, "req", &post);
    let (status, headers, _) = app
        .invoke(crate::helpers::OPERATIONS_FUNCTION, envelope.as_bytes())
        .res();
    assert_eq!((status, header(&headers, "Allow")), (405, Some("GET")));

    // An operation whose retention has passed answers 404 like an unknown one.
    let reply = app.post_ids(&json!({ "accessPackageIds": [sample::PACKAGE_SALES] }).to_string());
    let (status, headers, accepted) = reply.res();
    let location = location_of(status, &headers, &accepted);
    assert_eq!(app.get_status(&location).res().0, 202);
    let table = reprocess_handler::storage::TableName::parse(&table_text).unwrap();
    let client = storage_client();
    let op = reprocess_handler::storage::TableKey::parse(accepted["correlationId"].as_str().unwrap()).unwrap();
    let expired =
        reprocess_handler::storage::Entity::new(op, reprocess_handler::storage::TableKey::parse("op").unwrap())
            .with("expiresAt", "2020-01-01T00:00:00Z");
    tokio_run(client.upsert(&table, &expired, reprocess_handler::storage::UpsertMode::Merge)).unwrap();
    assert_eq!(app.get_status(&location).res().0, 404);
}

#[test]
fn without_storage_a_202_says_its_status_is_unavailable() {
    let app = crate::helpers::spawn_app();
    let reply = app.post_ids(&json!({ "accessPackageIds": [sample::PACKAGE_SALES] }).to_string());
    let (status, headers, body) = reply.res();
    assert_eq!(status, 202);
    assert!(header(&headers, "Location").is_none());
    assert_eq!(body["statusUrl"], Value::Null);
    assert!(
        body["statusUnavailable"]
            .as_str()
            .unwrap()
            .contains("AzureWebJobsStorage")
    );
    assert!(
        reply
            .output_messages("enqueue")
            .iter()
            .all(|m| m.get("messageKey").is_none())
    );
    let (status, _, body) = app.get_status("https://localhost/api/operations/abc").res();
    assert_eq!(status, 503, "{body}");
}

pub(crate) fn storage_client() -> reprocess_handler::storage::TableClient {
    let vars = vec![("AzureWebJobsStorage".to_owned(), azurite().connection_string())];
    let settings = reprocess_handler::storage::StorageSettings::from_vars(&vars)
        .unwrap()
        .unwrap();
    reprocess_handler::storage::TableClient::new(&settings, None).unwrap()
}

pub(crate) fn tokio_run<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

#[test]
fn the_cleanup_timer_deletes_expired_operations_only() {
    use reprocess_emulator::host::timer_envelope;
    use reprocess_handler::storage::{Entity, Filter, TableKey, TableName};
    let table_text = table_name();
    let app = spawn_tracked_in(EmulatorState::new(sample::tenant()), &[], &table_text);
    let reply = app.post_ids(&json!({ "accessPackageIds": [sample::PACKAGE_SALES] }).to_string());
    let (status, headers, accepted) = reply.res();
    let kept = location_of(status, &headers, &accepted);

    // An operation whose retention ended in 2020, written as the handler writes one.
    let table = TableName::parse(&table_text).unwrap();
    let client = storage_client();
    let old = TableKey::parse("old-operation").unwrap();
    let k = |s: &str| TableKey::parse(s).unwrap();
    tokio_run(async {
        for row in [
            Entity::new(old.clone(), k("op")).with("expiresAt", "2020-01-01T00:00:00Z"),
            Entity::new(old.clone(), k("m|00000000000000000000000a")).with("state", "done"),
            Entity::new(old.clone(), k("r|0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10")).with("outcome", "accepted"),
            Entity::new(k("_expiry"), k("2020-01-01T00:00:00Z|old-operation")).with("correlationId", "old-operation"),
        ] {
            client.insert(&table, &row).await.unwrap();
        }
    });
    let envelope = timer_envelope(crate::helpers::CLEANUP_FUNCTION, "timer", false);
    let reply = app.invoke(crate::helpers::CLEANUP_FUNCTION, envelope.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.json);
    assert_eq!(reply.json["Logs"][0], "deleted 1 expired operations (3 rows)");
    let (left, index) = tokio_run(async {
        let left = client.query_all(&table, &Filter::partition(&old)).await.unwrap();
        let index = client
            .query_all(&table, &Filter::partition(&k("_expiry")))
            .await
            .unwrap();
        (left, index)
    });
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(index.len(), 1, "only the live operation's index row is left: {index:?}");
    assert_eq!(app.get_status(&kept).res().0, 202, "the live operation is untouched");
}

/// Identity-based storage settings, as Bicep sets them: the handler gets a token for
/// `https://storage.azure.com` from the managed identity and sends it as a bearer token. Azurite takes
/// bearer tokens only over https, so the emulator's Table front checks the token (issued by its identity
/// endpoint, Storage audience) and forwards to Azurite re-signed.
#[test]
fn identity_based_storage_sends_managed_identity_tokens_for_storage() {
    let app = tracked_through_the_table_front(Some("managedidentity"));

    // The front refuses what Storage refuses: a token for another audience (Graph's), or none.
    let table_uri = format!("{}/devstoreaccount1", app.emulator.base_url);
    let graph_token = app.emulator.state.issue_token(&app.emulator.base_url);
    let tables = format!("{table_uri}/Tables");
    let statuses = tokio_run(async {
        let client = reqwest::Client::new();
        let with_graph = client.get(&tables).bearer_auth(&graph_token).send().await.unwrap();
        let without = client.get(&tables).send().await.unwrap();
        (with_graph.status().as_u16(), without.status().as_u16())
    });
    assert_eq!(statuses, (401, 401));
    assert_eq!(app.emulator.state.storage_requests().1, 2);
}

/// Without `__credential` the handler's own credential (`CREDENTIAL_SOURCE`, here the managed identity)
/// serves Storage too, from the same token cache as Graph.
#[test]
fn identity_based_storage_without_a_credential_uses_the_handlers_own() {
    let app = tracked_through_the_table_front(None);
    assert_eq!(app.emulator.state.storage_requests().1, 0);
}

/// A tracked fan-out with identity-based storage behind the emulator's Table front, run to 200.
fn tracked_through_the_table_front(credential: Option<&str>) -> TestApp {
    let state = EmulatorState::new(sample::tenant());
    let azurite = azurite();
    state.set_table_upstream(&format!("http://127.0.0.1:{}", azurite.port), crate::azurite::KEY);
    let emulator = reprocess_emulator::Emulator::start(state).unwrap();
    let table_uri = format!("{}/devstoreaccount1", emulator.base_url);
    let table = table_name();
    let mut env = vec![
        ("AzureWebJobsStorage__tableServiceUri", table_uri.as_str()),
        ("OPERATIONS_TABLE_NAME", table.as_str()),
    ];
    if let Some(credential) = credential {
        env.push(("AzureWebJobsStorage__credential", credential));
    }
    let handler = reprocess_emulator::host_client::HandlerProcess::start(
        &crate::helpers::binary(),
        &emulator,
        reprocess_emulator::host_client::Readiness::LoggedPort,
        &env,
    )
    .unwrap();
    let app = TestApp { emulator, handler };
    let reply = app.post_ids(&json!({ "accessPackageIds": [sample::PACKAGE_SALES] }).to_string());
    let (status, headers, accepted) = reply.res();
    let location = location_of(status, &headers, &accepted);
    app.drain(reply.output_messages("enqueue"), true);
    let (done, _) = finished(&app, &location);
    assert_eq!(done["status"], "succeeded", "{done}");
    let (forwarded, refused) = app.emulator.state.storage_requests();
    assert!(forwarded > 5, "{forwarded} Table requests carried a Storage token");
    assert_eq!(refused, 0);
    app.assert_no_secrets_logged();
    app
}

/// Storage that cannot be written: a call that would answer 202 enqueues nothing and answers 503 with
/// `Retry-After`; a tracked queue message fails its invocation, so the host retries it.
#[test]
fn unwritable_storage_refuses_rather_than_losing_track() {
    let dead = "AccountName=devstoreaccount1;AccountKey=c2VjcmV0;TableEndpoint=http://127.0.0.1:9/devstoreaccount1";
    let app = spawn_app_with(EmulatorState::new(sample::tenant()), &[("AzureWebJobsStorage", dead)]);
    let reply = app.post_ids(&json!({ "accessPackageIds": [sample::PACKAGE_SALES] }).to_string());
    let (status, headers, body) = reply.res();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "status_store_unavailable");
    assert_eq!(header(&headers, "Retry-After"), Some("30"));
    assert!(reply.output_messages("enqueue").is_empty(), "nothing enqueued");
    let tracked = json!({ "assignmentIds": [sample::DELIVERED_1], "messageKey": "0123456789abcdef01234567",
                          "correlationId": "op-1" });
    let reply = app.queue_message(&tracked.to_string());
    assert_eq!(reply.status, 500, "the host retries the message: {}", reply.json);
}
