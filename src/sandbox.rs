//! `reprocess-handler sandbox`: the real handler against the emulated tenant, with a small emulated
//! Functions host in front so plain `curl` calls work:
//!
//! - `POST http://127.0.0.1:7071/api/reprocess` — your JSON body is wrapped into the envelope the host
//!   sends, the handler is invoked, and `Outputs.res` is unwrapped into the HTTP answer;
//! - `POST http://127.0.0.1:7071/queue/reprocess-requests` — the body is a queue message; an in-memory
//!   queue invokes the queue function, follows `enqueue` outputs and keeps `deadLetter` outputs;
//! - `POST http://127.0.0.1:7071/api/alert` — an Azure Monitor common-alert-schema webhook;
//! - HTTP functions' `enqueue` outputs go to the same in-memory queue, so a package fan-out runs to the
//!   end (page by page, then chunks of 20 IDs);
//! - `GET /queue/reprocess-requests-poison` and `GET /tenant` show what happened.

use crate::config::Settings;
use crate::emulator::host::{HttpCall, QueueMessageMeta, http_envelope, queue_envelope};
use crate::emulator::host_client::{ALERT_FUNCTION, HOST_VERSION, HTTP_FUNCTION, QUEUE_FUNCTION};
use crate::emulator::{Emulator, EmulatorState, Fault, sample};
use crate::startup::Application;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

struct Shim {
    handler: String,
    client: reqwest::Client,
    queue: mpsc::UnboundedSender<(String, u32)>,
    poison: Mutex<Vec<Value>>,
    emulator: Emulator,
}

fn flag(args: &[String], name: &str, default: u16) -> anyhow::Result<u16> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .with_context(|| format!("{name} needs a value"))?
            .parse()
            .with_context(|| format!("{name} must be a port number")),
        None => Ok(default),
    }
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let host_port = flag(args, "--port", 7071)?;
    let handler_port = flag(args, "--handler-port", 7072)?;
    let emulator_listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("binding the emulated tenant")?;
    let emulator_url = format!("http://{}", emulator_listener.local_addr()?);
    let state = EmulatorState::new(sample::tenant());
    // SAFETY: no other thread exists yet; azure_identity reads these when the credential is built and used.
    unsafe {
        std::env::set_var("IDENTITY_ENDPOINT", format!("{emulator_url}/msi/token"));
        std::env::set_var("IDENTITY_HEADER", &state.identity_header);
        if std::env::var_os("RUST_LOG").is_none() {
            std::env::set_var("RUST_LOG", "warn");
        }
    }
    crate::telemetry::init();
    let emulator = Emulator::start_on(emulator_listener, state).context("starting the emulated tenant")?;
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.retain(|(k, _)| {
        !matches!(
            k.as_str(),
            "GRAPH_BASE_URL" | "FUNCTIONS_CUSTOMHANDLER_PORT" | "CREDENTIAL_SOURCE" | "AZURE_CLIENT_ID"
        )
    });
    vars.push(("GRAPH_BASE_URL".into(), emulator.graph_base_url()));
    vars.push(("FUNCTIONS_CUSTOMHANDLER_PORT".into(), handler_port.to_string()));
    let settings = Settings::from_vars(vars).context("invalid settings")?;

    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(settings).context("starting the handler")?;
        let handler = format!("http://127.0.0.1:{}", app.port());
        let (tx, rx) = mpsc::unbounded_channel();
        let shim = web::Data::new(Shim {
            handler,
            client: reqwest::Client::new(),
            queue: tx,
            poison: Mutex::new(Vec::new()),
            emulator,
        });
        actix_web::rt::spawn(queue_worker(shim.clone().into_inner(), rx));
        let shim_data = shim.clone();
        let host = HttpServer::new(move || {
            App::new()
                .app_data(shim_data.clone())
                .route("/api/reprocess", web::post().to(http_call))
                .route("/api/alert", web::post().to(alert_call))
                .route("/queue/reprocess-requests", web::post().to(enqueue))
                .route("/queue/reprocess-requests-poison", web::get().to(poison))
                .route("/tenant", web::get().to(tenant))
        })
        .workers(1)
        .bind(("127.0.0.1", host_port))
        .with_context(|| format!("binding the emulated Functions host on 127.0.0.1:{host_port} (use --port)"))?
        .run();
        let handle = host.handle();
        actix_web::rt::spawn(host);
        let handler_task = actix_web::rt::spawn(app.run_until_stopped());
        tokio::time::sleep(Duration::from_millis(100)).await;
        demo(&shim, host_port).await;
        println!("\nsandbox: serving until Ctrl-C. Try your own payloads:\n");
        print_curl_lines(host_port);
        let _ = tokio::signal::ctrl_c().await;
        handle.stop(true).await;
        handler_task.abort();
        Ok(())
    })
}

async fn demo(shim: &Shim, port: u16) {
    println!(
        "sandbox: emulated tenant at {} (Graph + managed-identity endpoint)",
        shim.emulator.base_url
    );
    println!(
        "sandbox: handler at {}, emulated Functions host at http://127.0.0.1:{port}\n",
        shim.handler
    );
    // One throttled answer so the demo shows a Retry-After being honoured.
    shim.emulator
        .state
        .faults
        .script(sample::DELIVERED_2, [Fault::throttled(1)]);
    let body = json!({
        "assignmentIds": [sample::DELIVERED_1, sample::DELIVERED_2, sample::EXPIRED, sample::UNKNOWN],
        "assignmentRequestIds": [sample::REQUEST_FAILED],
    })
    .to_string();
    println!("sandbox: 1) HTTP trigger  POST /api/reprocess {body}");
    let HttpOutcome {
        status, body: reply, ..
    } = invoke_http(shim, HTTP_FUNCTION, "reprocess", "", &body).await;
    println!("   -> HTTP {status}");
    for r in reply["results"].as_array().into_iter().flatten() {
        let detail = r["error"]["message"].as_str().or(r["reason"].as_str()).unwrap_or("");
        println!(
            "      {:<18} {}  {:<17} graph {} after {} attempt(s)  {}",
            r["kind"].as_str().unwrap_or(""),
            r["id"].as_str().unwrap_or(""),
            r["outcome"].as_str().unwrap_or(""),
            r["httpStatus"],
            r["attempts"],
            detail
        );
    }
    println!("      summary: {}", reply["summary"]);

    let message = json!({ "assignmentIds": [sample::DELIVERED_3] }).to_string();
    println!("\nsandbox: 2) queue trigger  message {message}");
    run_queue_message(shim, &message, 1).await;
    println!("\nsandbox: 3) queue trigger  malformed message \"not-a-guid\"");
    run_queue_message(shim, "not-a-guid", 1).await;
    if let Some(dead) = shim.poison.lock().expect("poison lock").last() {
        println!("   -> dead-lettered to reprocess-requests-poison: {}", dead["reason"]);
    }

    let body = json!({ "accessPackageIds": [sample::PACKAGE_BULK] }).to_string();
    println!(
        "\nsandbox: 4) package fan-out  POST /api/reprocess {body}  ({} delivered + {} other assignments)",
        sample::BULK_DELIVERED,
        sample::BULK_OTHER
    );
    let outcome = invoke_http(shim, HTTP_FUNCTION, "reprocess", "", &body).await;
    println!(
        "   -> HTTP {} {}",
        outcome.status,
        json!({ "correlationId": outcome.body["correlationId"], "enqueued": outcome.body["enqueued"] })
    );
    for message in outcome.enqueued {
        run_queue_message(shim, &message, 1).await;
    }
    let tenant = shim.emulator.state.tenant.lock().expect("tenant lock");
    let done = (0..sample::BULK_DELIVERED + sample::BULK_OTHER)
        .filter(|i| tenant.reprocess_count(&sample::bulk_assignment(*i)) == 1)
        .count();
    let lists = shim.emulator.state.graph_requests_with("GET").len();
    println!("   -> {done} assignments of the package reprocessed once each, after {lists} list pages");
}

fn print_curl_lines(port: u16) {
    println!(
        "  curl -s localhost:{port}/api/reprocess -H 'Content-Type: application/json' \\\n    -d '{{\"assignmentIds\":[\"{}\",\"{}\"]}}'",
        sample::DELIVERED_1,
        sample::EXPIRED
    );
    println!(
        "  curl -s localhost:{port}/queue/reprocess-requests -d '{}'",
        sample::DELIVERED_2
    );
    println!(
        "  curl -s localhost:{port}/api/reprocess -H 'Content-Type: application/json' \\\n    -d '{{\"accessPackageIds\":[\"{}\"]}}'",
        sample::PACKAGE_BULK
    );
    println!(
        "  curl -s 'localhost:{port}/api/reprocess?dryRun=true' -H 'Content-Type: application/json' \\\n    -d '{{\"userIds\":[\"{}\"]}}'",
        sample::USER_ADELE
    );
    println!("  curl -s localhost:{port}/queue/reprocess-requests-poison");
    println!("  curl -s localhost:{port}/tenant");
}

fn host_headers(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request
        .header("X-Azure-Functions-HostVersion", HOST_VERSION)
        .header(
            "X-Azure-Functions-InvocationId",
            crate::domain::Guid::new_random().to_string(),
        )
        .header("User-Agent", format!("Azure-Functions-Host/{HOST_VERSION}"))
        .header("Content-Type", "application/json; charset=utf-8")
}

async fn invoke(shim: &Shim, function: &str, envelope: String) -> Result<Value, String> {
    let response = host_headers(shim.client.post(format!("{}/{function}", shim.handler)))
        .body(envelope)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("handler answered {status}: {body}"))
    }
}

/// What an HTTP function answered, unwrapped as the host would, plus its queue outputs.
struct HttpOutcome {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
    enqueued: Vec<String>,
}

async fn invoke_http(shim: &Shim, function: &str, route: &str, query: &str, body: &str) -> HttpOutcome {
    let mut call = HttpCall::post_json(route, body);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        call.query.push((k.to_owned(), v.to_owned()));
    }
    if !query.is_empty() {
        call.url = format!("{}?{query}", call.url);
    }
    let envelope = http_envelope(function, "req", &call);
    match invoke(shim, function, envelope).await {
        Ok(reply) => {
            let res = &reply["Outputs"]["res"];
            let status = res["statusCode"].as_str().and_then(|s| s.parse().ok()).unwrap_or(200);
            let headers = res["headers"]
                .as_object()
                .map(|h| {
                    h.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let body = res["body"]
                .as_str()
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or(Value::Null);
            let enqueued = reply["Outputs"]["enqueue"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            HttpOutcome {
                status,
                headers,
                body,
                enqueued,
            }
        }
        // What the host does when the invocation fails: 500 with an empty body.
        Err(e) => HttpOutcome {
            status: 500,
            headers: Vec::new(),
            body: json!({ "sandbox": e }),
            enqueued: Vec::new(),
        },
    }
}

fn short(text: &str) -> String {
    if text.chars().count() > 140 {
        format!("{}…", text.chars().take(140).collect::<String>())
    } else {
        text.to_owned()
    }
}

/// Invokes the queue function for one message and follows its outputs until the work settles.
async fn run_queue_message(shim: &Shim, text: &str, dequeue_count: u32) {
    let mut pending = vec![(text.to_owned(), dequeue_count)];
    while let Some((text, dequeue)) = pending.pop() {
        let envelope = queue_envelope(QUEUE_FUNCTION, "message", &text, &QueueMessageMeta::now(dequeue));
        match invoke(shim, QUEUE_FUNCTION, envelope).await {
            Ok(reply) => {
                for line in reply["Logs"].as_array().into_iter().flatten() {
                    println!("   -> log: {}", line.as_str().unwrap_or(""));
                }
                for message in reply["Outputs"]["enqueue"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    println!("   -> enqueued: {}", short(message));
                    pending.push((message.to_owned(), 1));
                }
                for message in reply["Outputs"]["deadLetter"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    shim.poison
                        .lock()
                        .expect("poison lock")
                        .push(serde_json::from_str(message).unwrap_or(json!(message)));
                }
            }
            // The host's own rule: retry until maxDequeueCount (5), then copy to <queue>-poison.
            Err(e) if dequeue < 5 => {
                println!("   -> invocation failed ({e}); retrying as the host would");
                tokio::time::sleep(Duration::from_secs(1)).await;
                pending.push((text, dequeue + 1));
            }
            Err(e) => {
                println!("   -> invocation failed 5 times ({e}); moved to poison");
                shim.poison
                    .lock()
                    .expect("poison lock")
                    .push(json!({ "hostPoisoned": text }));
            }
        }
    }
}

async fn queue_worker(shim: Arc<Shim>, mut rx: mpsc::UnboundedReceiver<(String, u32)>) {
    while let Some((text, dequeue)) = rx.recv().await {
        let shim = Arc::clone(&shim);
        actix_web::rt::spawn(async move {
            println!("sandbox: queue message {text}");
            run_queue_message(&shim, &text, dequeue).await;
        });
    }
}

async fn http_call(request: HttpRequest, body: String, shim: web::Data<Shim>) -> HttpResponse {
    forward(&shim, HTTP_FUNCTION, "reprocess", request.query_string(), &body).await
}

async fn alert_call(request: HttpRequest, body: String, shim: web::Data<Shim>) -> HttpResponse {
    forward(&shim, ALERT_FUNCTION, "alert", request.query_string(), &body).await
}

/// Runs an HTTP function, hands its `enqueue` outputs to the in-memory queue, returns `res`.
async fn forward(shim: &Shim, function: &str, route: &str, query: &str, body: &str) -> HttpResponse {
    let outcome = invoke_http(shim, function, route, query, body).await;
    for message in outcome.enqueued {
        let _ = shim.queue.send((message, 1));
    }
    let mut response = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(outcome.status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    );
    for (name, value) in outcome
        .headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("content-type"))
    {
        response.insert_header((name.as_str(), value.as_str()));
    }
    response.json(outcome.body)
}

async fn enqueue(_request: HttpRequest, body: String, shim: web::Data<Shim>) -> HttpResponse {
    let _ = shim.queue.send((body, 1));
    HttpResponse::Accepted()
        .json(json!({ "queued": true, "see": "the sandbox output, then GET /queue/reprocess-requests-poison" }))
}

async fn poison(shim: web::Data<Shim>) -> HttpResponse {
    HttpResponse::Ok().json(shim.poison.lock().expect("poison lock").clone())
}

async fn tenant(shim: web::Data<Shim>) -> HttpResponse {
    let tenant = shim.emulator.state.tenant.lock().expect("tenant lock");
    let assignments: Vec<Value> = tenant
        .assignments
        .values()
        .map(|a| json!({ "id": a.id, "state": a.state, "accessPackageId": a.access_package_id, "targetObjectId": a.target_object_id, "reprocessCount": a.reprocess_count }))
        .collect();
    let requests: Vec<Value> = tenant
        .requests
        .values()
        .map(|r| json!({ "id": r.id, "state": r.state, "reprocessCount": r.reprocess_count }))
        .collect();
    HttpResponse::Ok().json(json!({ "assignments": assignments, "assignmentRequests": requests }))
}
