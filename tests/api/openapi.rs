//! `openapi/reprocess-handler.json` against the handler's real answers, so the document cannot drift
//! from the code: every endpoint is driven through the emulated host for each status it documents
//! (where the host can produce it), and each answer's status must be documented, its body must match
//! the response schema declared for that status, and the headers declared for it must be there with
//! the declared type. The schemas are checked strictly: an object whose schema does not say otherwise
//! may carry only the properties the document lists, so a new field in an answer fails here until it
//! is documented. OpenAPI 2.0 schemas are a subset of JSON Schema draft 4 (with `#/definitions/...`
//! references, resolved by putting the document's `definitions` beside each schema).
//! The catalog scope's and drift detection's answers are driven from `openapi_scope`.
//! Also: the served document is the checked-in one; the Logic App workflows in `docs/logic-apps/` parse
//! and call only operations the document has.

use crate::helpers::*;
use reprocess_emulator::functions::FUNCTION_OPENAPI as OPENAPI_FUNCTION;
use reprocess_emulator::host::{HttpCall, http_envelope};
use reprocess_emulator::{EmulatorState, Fault, sample};
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn checked_in() -> Value {
    serde_json::from_str(&repo_file("openapi/reprocess-handler.json")).expect("the document is JSON")
}

/// Every object schema that lists `properties` and says nothing about others allows no others.
fn strict(schema: &Value) -> Value {
    let Value::Object(map) = schema else {
        return match schema {
            Value::Array(items) => Value::Array(items.iter().map(strict).collect()),
            other => other.clone(),
        };
    };
    let mut out = Map::new();
    for (key, value) in map {
        let value = match key.as_str() {
            // A map from names to schemas: each value is a schema, the keys are not keywords.
            "properties" | "definitions" => match value {
                Value::Object(named) => Value::Object(named.iter().map(|(k, v)| (k.clone(), strict(v))).collect()),
                other => other.clone(),
            },
            "items" | "allOf" | "additionalProperties" => strict(value),
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    if out.contains_key("properties") && !out.contains_key("additionalProperties") {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

pub(crate) struct Spec {
    doc: Value,
}

impl Spec {
    pub(crate) fn load() -> Self {
        Self { doc: checked_in() }
    }

    fn operation(&self, path: &str, method: &str) -> &Value {
        let op = &self.doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not in the document");
        op
    }

    fn documented(&self, path: &str, method: &str) -> BTreeSet<u16> {
        self.operation(path, method)["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.parse().expect("numeric status"))
            .collect()
    }

    /// Panics unless `status` is documented for the operation and `headers`/`body` match it.
    pub(crate) fn check(&self, path: &str, method: &str, status: u16, headers: &Value, body: &Value) {
        let what = format!("{method} {path} answered {status}");
        let response = &self.operation(path, method)["responses"][status.to_string()];
        assert!(response.is_object(), "{what}, which the document does not list: {body}");
        let mut schema = response["schema"].clone();
        schema["definitions"] = self.doc["definitions"].clone();
        let schema = strict(&schema);
        let validator = jsonschema::draft4::new(&schema).unwrap_or_else(|e| panic!("{what}: bad schema: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: the body does not match the document: {errors:#?}\n{body}"
        );
        let header = |name: &str| {
            headers
                .as_object()
                .unwrap()
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.as_str())
        };
        assert_eq!(header("Content-Type"), Some("application/json"), "{what}");
        // And the other way round: every header sent is declared, so a client generated from the
        // document (a connector, a Logic App) knows of it.
        for name in headers.as_object().unwrap().keys() {
            let declared = response["headers"]
                .as_object()
                .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case(name)));
            assert!(
                declared || name.eq_ignore_ascii_case("Content-Type"),
                "{what} with the header {name}, which the document does not declare"
            );
        }
        for (name, declared) in response["headers"].as_object().into_iter().flatten() {
            let value = header(name).unwrap_or_else(|| panic!("{what} without the header {name}: {headers}"));
            match declared["type"].as_str() {
                Some("integer") => assert!(
                    value.parse::<u64>().is_ok(),
                    "{what}: {name}: {value} is not an integer"
                ),
                Some("string") => assert!(!value.is_empty(), "{what}: {name} is empty"),
                other => panic!("{what}: header {name} of type {other:?}"),
            }
            if name.eq_ignore_ascii_case("Location") {
                let url =
                    url::Url::parse(value).unwrap_or_else(|e| panic!("{what}: Location {value} is not absolute: {e}"));
                assert!(matches!(url.scheme(), "https" | "http"), "{what}: Location {value}");
                // It names an operation of this document that can be polled with GET.
                let base = self.doc["basePath"].as_str().unwrap();
                let path = url
                    .path()
                    .strip_prefix(base)
                    .unwrap_or_else(|| panic!("{what}: Location {value}"));
                let pollable = self.doc["paths"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .any(|(template, ops)| template_matches(template, path) && ops.get("get").is_some());
                assert!(pollable, "{what}: Location {value} is not a documented GET");
            }
        }
    }
}

/// The statuses one operation answered, each checked against the document as it comes.
pub(crate) struct Coverage<'a> {
    pub(crate) spec: &'a Spec,
    path: &'static str,
    method: &'static str,
    seen: BTreeSet<u16>,
}

impl<'a> Coverage<'a> {
    pub(crate) fn new(spec: &'a Spec, path: &'static str, method: &'static str) -> Self {
        Self {
            spec,
            path,
            method,
            seen: BTreeSet::new(),
        }
    }

    /// Checks the reply against the document and returns it as (status, headers, body).
    pub(crate) fn answer(&mut self, reply: &HostReply) -> (u16, Value, Value) {
        assert_eq!(reply.status, 200, "the invocation itself failed: {}", reply.json);
        let (status, headers, body) = reply.res();
        self.spec.check(self.path, self.method, status, &headers, &body);
        self.seen.insert(status);
        (status, headers, body)
    }

    /// Every documented status was produced, except those named with the reason they cannot be.
    fn finish(self, not_driven: &[u16]) {
        let mut want = self.spec.documented(self.path, self.method);
        for status in not_driven {
            assert!(
                want.remove(status),
                "{status} is not documented for {} {}",
                self.method,
                self.path
            );
        }
        assert_eq!(
            self.seen, want,
            "statuses produced vs documented for {} {}",
            self.method, self.path
        );
    }
}

fn guid(i: usize) -> String {
    format!("a1b2c3d4-0000-4000-8000-{i:012x}")
}

fn ids_body(n: usize) -> String {
    json!({ "assignmentIds": (0..n).map(guid).collect::<Vec<_>>() }).to_string()
}

fn with_content_type(mut call: HttpCall, value: &str) -> HttpCall {
    call.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("Content-Type"));
    call.headers.push(("Content-Type".into(), value.into()));
    call
}

/// `500` is the answer to an envelope without a readable request, which the host never sends.
const HOST_NEVER_SENDS: u16 = 500;

/// The app with operation state in Azurite (a table of its own), as deployed: every 202 is tracked.
pub(crate) fn spawn_tracked(env: &[(&str, &str)]) -> TestApp {
    let connection = crate::azurite::azurite().connection_string();
    let table = format!("openapi{}", fastrand::u32(..));
    let mut all = vec![
        ("AzureWebJobsStorage", connection.as_str()),
        ("OPERATIONS_TABLE_NAME", table.as_str()),
    ];
    all.extend_from_slice(env);
    spawn_app_with(EmulatorState::new(sample::tenant()), &all)
}

/// The app with storage configured where nothing listens: the operation state cannot be written.
pub(crate) fn spawn_with_dead_storage() -> TestApp {
    spawn_with_dead_storage_env(&[])
}

pub(crate) fn spawn_with_dead_storage_env(env: &[(&str, &str)]) -> TestApp {
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let connection = format!(
        "DefaultEndpointsProtocol=http;AccountName={};AccountKey={};TableEndpoint=http://127.0.0.1:{port}/{}",
        crate::azurite::ACCOUNT,
        crate::azurite::KEY,
        crate::azurite::ACCOUNT
    );
    let mut all = vec![("AzureWebJobsStorage", connection.as_str())];
    all.extend_from_slice(env);
    spawn_app_env(&all)
}

#[test]
fn reprocess_answers_match_the_document() {
    let spec = Spec::load();
    let app = spawn_tracked(&[
        ("MAX_IDS_PER_CALL", "150"),
        ("MAX_BODY_BYTES", "20000"),
        ("GRAPH_MAX_ATTEMPTS", "1"),
    ]);
    let mut c = Coverage::new(&spec, "/reprocess", "post");

    // 200: every outcome Graph can give, then a dry run of IDs and a user.
    let body = json!({
        "assignmentIds": [sample::DELIVERED_1, sample::EXPIRED, sample::UNKNOWN],
        "assignmentRequestIds": [sample::REQUEST_FAILED, sample::REQUEST_STALE],
    });
    let (status, _, body) = c.answer(&app.post_ids(&body.to_string()));
    assert_eq!((status, body["summary"]["total"].as_u64()), (200, Some(5)));
    let call = TestApp::call_with_query(
        "reprocess",
        &json!({ "assignmentIds": [sample::DELIVERED_1, sample::UNKNOWN], "userIds": [sample::USER_ADELE] })
            .to_string(),
        &[("dryRun", "true")],
    );
    let (status, _, body) = c.answer(&app.invoke_http(&call));
    assert_eq!((status, &body["dryRun"]), (200, &json!(true)));
    assert!(!body["expansions"][0]["assignments"].as_array().unwrap().is_empty());
    app.emulator.state.set_app_role_granted(false);
    let (status, _, body) = c.answer(&app.post_ids(&json!({ "assignmentId": sample::DELIVERED_2 }).to_string()));
    assert_eq!(
        (status, &body["results"][0]["outcome"]),
        (200, &json!("permission_denied"))
    );
    app.emulator.state.set_app_role_granted(true);

    // 503 + Retry-After: Graph stays unavailable for one ID (one attempt per invocation here).
    app.emulator
        .state
        .faults
        .script(sample::DELIVERED_3, [Fault::status(503)]);
    let (status, _, body) = c.answer(&app.post_ids(&json!({ "assignmentIds": [sample::DELIVERED_3] }).to_string()));
    assert_eq!((status, &body["results"][0]["outcome"]), (503, &json!("transient")));

    // 202: a package and a user (fan-out), and more than HTTP_SYNC_MAX_IDS IDs (split into messages).
    let fan_out = json!({ "accessPackageIds": [sample::PACKAGE_SALES], "userIds": [sample::USER_BRIAN] });
    let (status, _, body) = c.answer(&app.post_ids(&fan_out.to_string()));
    assert_eq!((status, &body["status"]), (202, &json!("accepted")));
    // 409: a later call naming that operation's ID.
    let mut again = fan_out.clone();
    again["correlationId"] = body["correlationId"].clone();
    let (status, _, body) = c.answer(&app.post_ids(&again.to_string()));
    assert_eq!((status, &body["error"]["code"]), (409, &json!("operation_exists")));
    let (status, _, body) = c.answer(&app.post_ids(&ids_body(101)));
    assert_eq!(
        (status, &body["status"], &body["ids"]),
        (202, &json!("queued"), &json!(101))
    );
    // 503 also when the operation's state cannot be recorded (nothing is queued then).
    let dead = spawn_with_dead_storage();
    let (status, _, body) = c.answer(&dead.post_ids(&fan_out.to_string()));
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("status_store_unavailable"))
    );

    // 400: each kind of refusal.
    let nil = "00000000-0000-4000-8000-000000000000";
    for text in [
        "{not json".to_owned(),
        format!(r#"{{"assignmentIds":["{nil}"],"assignmentIds":["{nil}"]}}"#),
        r#"{"assignmentIds":["nope"]}"#.to_owned(),
        r#"{"assignmentIds":[]}"#.to_owned(),
        format!(r#"{{"accessPackageIds":["{nil}"],"nextLink":"https://graph.microsoft.com/v1.0/x"}}"#),
    ] {
        let (status, _, _) = c.answer(&app.post_ids(&text));
        assert_eq!(status, 400, "{text}");
    }
    let mut empty = HttpCall::post_json("reprocess", "");
    empty.body = None;
    assert_eq!(c.answer(&app.invoke_http(&empty)).0, 400);
    let call = TestApp::call_with_query("reprocess", &ids_body(1), &[("dryRun", "maybe")]);
    assert_eq!(c.answer(&app.invoke_http(&call)).0, 400);

    // 413: more than MAX_IDS_PER_CALL IDs, and a body over MAX_BODY_BYTES.
    let (status, _, body) = c.answer(&app.post_ids(&ids_body(151)));
    assert_eq!((status, &body["error"]["code"]), (413, &json!("too_many_ids")));
    let (status, _, body) = c.answer(&app.post_ids(&ids_body(600)));
    assert_eq!((status, &body["error"]["code"]), (413, &json!("body_too_large")));

    // 415: a body declared as something else.
    let call = with_content_type(HttpCall::post_json("reprocess", &ids_body(1)), "text/plain");
    assert_eq!(c.answer(&app.invoke_http(&call)).0, 415);

    // The catalog scope and drift detection: their 200s, 202, 400s, 403s and 503.
    crate::openapi_scope::drive(&mut c, &app);

    // 401 and 403: Entra-authenticated callers.
    crate::callers::drive_refusals(&mut c, HTTP_FUNCTION, HttpCall::post_json("reprocess", &ids_body(1)));

    c.finish(&[HOST_NEVER_SENDS]);
}

#[test]
fn alert_answers_match_the_document() {
    let spec = Spec::load();
    let app = spawn_tracked(&[("MAX_IDS_PER_CALL", "3")]);
    let mut c = Coverage::new(&spec, "/alert", "post");
    let fired = |pairs: Vec<Value>| {
        json!({ "schemaId": "azureMonitorCommonAlertSchema", "data": {
            "essentials": { "monitorCondition": "Fired", "alertRule": "assignment drift", "signalType": "Log" },
            "alertContext": { "condition": { "allOf": [ { "dimensions": pairs } ] } } } })
    };
    let user = |id: &str| json!({ "name": "TargetUserId", "value": id });

    // 200: Resolved (Microsoft's sample payload), and a dry run.
    let resolved = repo_file("tests/fixtures/alerts/common_schema_sample.json");
    let (status, _, body) = c.answer(&app.post_alert(&resolved));
    assert_eq!((status, &body["status"]), (200, &json!("nothing to do")));
    let alert = fired(vec![
        user(sample::USER_ADELE),
        json!({ "name": "userId", "value": "not-a-guid" }),
    ]);
    let call = TestApp::call_with_query("alert", &alert.to_string(), &[("dryRun", "true")]);
    let (status, _, body) = c.answer(&app.post_alert_call(&call));
    assert_eq!(
        (status, &body["wouldEnqueue"][0]["userIds"][0]),
        (200, &json!(sample::USER_ADELE))
    );

    // 202: queued, with the skipped value named.
    let (status, _, body) = c.answer(&app.post_alert(&alert.to_string()));
    assert_eq!((status, body["skipped"].as_array().map(Vec::len)), (202, Some(1)));

    // 503: the operation's state cannot be recorded, nothing is enqueued (action groups retry 503).
    let dead = spawn_with_dead_storage();
    let (status, _, body) = c.answer(&dead.post_alert(&alert.to_string()));
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("status_store_unavailable"))
    );

    // 400: not JSON; a repeated key.
    assert_eq!(c.answer(&app.post_alert("{")).0, 400);
    let text = format!(
        r#"{{"schemaId":"azureMonitorCommonAlertSchema","schemaId":"x","data":{{"customProperties":{{"userId":"{}"}}}}}}"#,
        sample::USER_ADELE
    );
    assert_eq!(c.answer(&app.post_alert(&text)).0, 400);

    // 413: more than MAX_IDS_PER_CALL IDs.
    let ids = [
        sample::DELIVERED_1,
        sample::DELIVERED_2,
        sample::DELIVERED_3,
        sample::EXPIRED,
    ];
    let alert = fired(
        ids.iter()
            .map(|id| json!({ "name": "assignmentId", "value": id }))
            .collect(),
    );
    let (status, _, body) = c.answer(&app.post_alert(&alert.to_string()));
    assert_eq!((status, &body["error"]["code"]), (413, &json!("too_many_ids")));

    // 415.
    let call = with_content_type(HttpCall::post_json("alert", "{}"), "application/xml");
    assert_eq!(c.answer(&app.post_alert_call(&call)).0, 415);

    // 401 and 403: Entra-authenticated callers.
    crate::callers::drive_refusals(&mut c, ALERT_FUNCTION, HttpCall::post_json("alert", "{}"));

    c.finish(&[HOST_NEVER_SENDS]);
}

#[test]
fn operations_answers_match_the_document() {
    let spec = Spec::load();
    let app = spawn_tracked(&[("OPERATIONS_RESULTS_PAGE_SIZE", "2"), ("HTTP_SYNC_MAX_IDS", "2")]);
    let mut c = Coverage::new(&spec, "/operations/{correlationId}", "get");
    let location = |reply: &HostReply| {
        let (status, headers, body) = reply.res();
        assert_eq!(status, 202, "{body}");
        spec.check("/reprocess", "post", status, &headers, &body);
        headers["Location"].as_str().unwrap().to_owned()
    };

    // A package: 202 while its messages are queued, then 200 with every ID, page by page.
    let reply = app.post_ids(&json!({ "accessPackageIds": [sample::PACKAGE_SALES] }).to_string());
    let url = location(&reply);
    let (status, _, body) = c.answer(&app.get_status(&url));
    assert_eq!((status, &body["status"]), (202, &json!("running")));
    app.drain(reply.output_messages("enqueue"), true);
    let (status, _, mut page) = c.answer(&app.get_status(&url));
    assert_eq!((status, &page["status"]), (200, &json!("succeeded")));
    let mut pages = 1;
    while let Some(next) = page.get("nextLink").and_then(Value::as_str).map(str::to_owned) {
        let (status, _, next_page) = c.answer(&app.get_status(&next));
        assert_eq!(status, 200);
        page = next_page;
        pages += 1;
    }
    assert!(pages > 1, "the page size of 2 was not reached");

    // IDs the identity may not reprocess: finished, failed, every ID dead-lettered with its reason.
    let ids = [sample::DELIVERED_1, sample::DELIVERED_2, sample::DELIVERED_3];
    let reply = app.post_ids(&json!({ "assignmentIds": ids }).to_string());
    let url = location(&reply);
    app.emulator.state.set_app_role_granted(false);
    app.drain(reply.output_messages("enqueue"), true);
    let (status, _, body) = c.answer(&app.get_status(&url));
    assert_eq!((status, &body["status"]), (200, &json!("failed")));
    assert_eq!(body["deadLettered"].as_array().map(Vec::len), Some(3), "{body}");

    // 404 unknown; 400 malformed ID or page; 503 without storage.
    let (status, _, _) = c.answer(&app.get_status("https://localhost/api/operations/no-such-operation"));
    assert_eq!(status, 404);
    assert_eq!(
        c.answer(&app.get_status("https://localhost/api/operations/bad_id!")).0,
        400
    );
    assert_eq!(
        c.answer(&app.get_status("https://localhost/api/operations/abc?page=zzz"))
            .0,
        400
    );
    let untracked = spawn_app();
    assert_eq!(
        c.answer(&untracked.get_status("https://localhost/api/operations/abc"))
            .0,
        503
    );
    // 503 also when the state store cannot be read.
    let dead = spawn_with_dead_storage();
    let (status, _, body) = c.answer(&dead.get_status("https://localhost/api/operations/abc"));
    assert_eq!(
        (status, &body["error"]["code"]),
        (503, &json!("status_store_unavailable"))
    );

    // 401 and 403: Entra-authenticated callers.
    let call = HttpCall::get_status_url("https://localhost/api/operations/abc").unwrap();
    crate::callers::drive_refusals(&mut c, OPERATIONS_FUNCTION, call);

    c.finish(&[HOST_NEVER_SENDS]);
}

fn get_openapi(app: &TestApp, url: &str) -> HostReply {
    let mut call = HttpCall::post_json("openapi", "");
    call.method = "GET".into();
    call.url = url.into();
    call.body = None;
    call.headers = vec![("Host".into(), url::Url::parse(url).unwrap().authority().into())];
    app.invoke(
        OPENAPI_FUNCTION,
        http_envelope(OPENAPI_FUNCTION, "req", &call).as_bytes(),
    )
}

#[test]
fn the_served_document_is_the_checked_in_one_with_the_callers_host() {
    let spec = Spec::load();
    let app = spawn_app();
    let mut c = Coverage::new(&spec, "/openapi", "get");
    for (url, host, scheme) in [
        (
            "https://myapp.azurewebsites.net/api/openapi?code=k",
            "myapp.azurewebsites.net",
            "https",
        ),
        ("http://localhost:7071/api/openapi", "localhost:7071", "http"),
        (
            "http://myapp.azurewebsites.net/api/openapi",
            "myapp.azurewebsites.net",
            "https",
        ),
    ] {
        let (status, _, mut served) = c.answer(&get_openapi(&app, url));
        assert_eq!(status, 200);
        assert_eq!(served["host"], host);
        assert_eq!(served["schemes"], json!([scheme]));
        let mut want = checked_in();
        served.as_object_mut().unwrap().remove("host");
        served["schemes"] = json!(["https"]);
        want.as_object_mut().unwrap().remove("host");
        assert_eq!(served, want, "the served document is the checked-in one");
    }
    c.finish(&[HOST_NEVER_SENDS]);
}

/// Bodies the handler refuses (400) for a rule the document can state are invalid in the document too,
/// so a client (or a fuzzer) that trusts it does not send them.
#[test]
fn bodies_the_handler_refuses_for_their_shape_are_invalid_in_the_document() {
    let doc = checked_in();
    let mut schema = doc["definitions"]["ReprocessRequest"].clone();
    schema["definitions"] = doc["definitions"].clone();
    let validator = jsonschema::draft4::new(&schema).unwrap();
    let app = spawn_app_env(&[("DRIFT_DETECTION_ENABLED", "true")]);
    let id = sample::DELIVERED_1;
    for body in [
        json!({ "detectDriftFor": { "accessPackageIds": [] } }),
        json!({ "detectDriftFor": { "accessPackageIds": [sample::PACKAGE_SALES], "userIds": [] } }),
        json!({ "assignmentIds": [id], "assignmentIdz": [id] }),
    ] {
        let (status, _, answer) = app.post_ids(&body.to_string()).res();
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            !validator.is_valid(&body),
            "the document takes {body}, which the handler refuses: {answer}"
        );
    }
    // And what it takes stays valid.
    for body in [
        json!({ "assignmentIds": [id], "dryRun": true, "correlationId": "c-1" }),
        json!({ "detectDriftFor": { "accessPackageIds": [sample::PACKAGE_SALES] }, "dryRun": true }),
    ] {
        assert!(validator.is_valid(&body), "{body}");
        let (status, _, answer) = app.post_ids(&body.to_string()).res();
        assert_eq!(status, 200, "{body}: {answer}");
    }
}

#[test]
fn the_document_describes_its_body_parameters_and_names_a_contact() {
    let doc = checked_in();
    assert!(
        doc["info"]["contact"].as_object().is_some_and(|c| !c.is_empty()),
        "info.contact"
    );
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for parameter in op["parameters"].as_array().into_iter().flatten() {
                let described = parameter["description"].as_str().is_some_and(|d| !d.trim().is_empty());
                assert!(
                    described,
                    "{method} {path}: parameter {} has no description",
                    parameter["name"]
                );
            }
        }
    }
}

#[test]
fn every_operation_is_connector_ready() {
    let spec = Spec::load();
    // Every response and body field has a title in the designer (references carry their own).
    for (name, definition) in spec.doc["definitions"].as_object().unwrap() {
        for (field, schema) in definition["properties"].as_object().into_iter().flatten() {
            assert!(
                schema.get("$ref").is_some() || schema["x-ms-summary"].is_string(),
                "{name}.{field} has no x-ms-summary"
            );
        }
    }
    let mut ids = BTreeSet::new();
    for (path, methods) in spec.doc["paths"].as_object().unwrap() {
        for (method, op) in methods.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            assert!(op["summary"].is_string(), "{id} has no summary");
            let visibility = op["x-ms-visibility"].as_str();
            assert!(
                matches!(visibility, Some("important" | "advanced" | "internal")),
                "{id}: x-ms-visibility {visibility:?}"
            );
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] != "body" {
                    assert!(
                        p["x-ms-summary"].is_string(),
                        "{id}: parameter {} has no x-ms-summary",
                        p["name"]
                    );
                }
            }
        }
    }
}

/// The Logic App workflows parse, and call only what the document has.
#[test]
fn the_logic_app_workflows_parse_and_use_documented_operations() {
    let spec = Spec::load();
    let dir = format!("{}/docs/logic-apps", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("docs/logic-apps exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    let mut connector_calls = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let workflow: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let definition = &workflow["definition"];
        assert!(
            definition["$schema"]
                .as_str()
                .is_some_and(|s| s.contains("workflowdefinition.json")),
            "{}",
            file.display()
        );
        assert!(definition["actions"].as_object().is_some_and(|a| !a.is_empty()));
        // Connector actions name a path and method of the document.
        let mut stack = vec![definition["actions"].clone()];
        while let Some(actions) = stack.pop() {
            for (name, action) in actions.as_object().into_iter().flatten() {
                for nested in ["actions", "else"] {
                    let inner = if nested == "else" {
                        &action["else"]["actions"]
                    } else {
                        &action[nested]
                    };
                    if inner.is_object() {
                        stack.push(inner.clone());
                    }
                }
                if action["type"] == "ApiConnection" {
                    let path = action["inputs"]["path"].as_str().unwrap();
                    let method = action["inputs"]["method"].as_str().unwrap();
                    let path = path.strip_prefix("/api").unwrap_or(path);
                    let documented = spec.doc["paths"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .any(|(p, m)| template_matches(p, path) && m.get(method).is_some());
                    assert!(
                        documented,
                        "{}: {name} calls {method} {path}, not in the document",
                        file.display()
                    );
                    connector_calls += 1;
                }
            }
        }
    }
    assert!(connector_calls > 0, "no workflow uses the custom connector");
}

/// `/operations/{correlationId}` matches `/operations/@{...}`.
fn template_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}')))
}
