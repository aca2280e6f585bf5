//! `reprocess-handler sandbox`: the real handler against the emulated tenant, with a small emulated
//! Functions host in front so plain `curl` calls work:
//!
//! - `POST http://127.0.0.1:7071/api/reprocess` — your JSON body is wrapped into the envelope the host
//!   sends, the handler is invoked, and `Outputs.res` is unwrapped into the HTTP answer;
//! - `POST http://127.0.0.1:7071/queue/reprocess-requests` — the body is a queue message; an in-memory
//!   queue invokes the queue function, follows `enqueue` outputs and keeps `deadLetter` outputs;
//! - `POST http://127.0.0.1:7071/api/alert` — an Azure Monitor common-alert-schema webhook;
//! - `GET http://127.0.0.1:7071/api/openapi` — the OpenAPI 2.0 document, its `host` this address;
//! - HTTP functions' `enqueue` outputs go to the same in-memory queue, so a package fan-out runs to the
//!   end (page by page, then chunks of 20 IDs);
//! - `GET /queue/reprocess-requests-poison` and `GET /tenant` show what happened.
//!
//! The emulated host is as strict as the real one, so the sandbox teaches what production does: the
//! caller's headers (Content-Type included) pass through unchanged, a body sent without Content-Length
//! (chunked) is dropped, repeated query keys arrive joined with "," (`?dryRun=true&dryRun=false` is
//! `"true,false"`, which the handler refuses), and the handler — not the sandbox — answers oversized
//! bodies. It stops on SIGINT or SIGTERM.

mod demo;
mod front;
mod storage;
mod views;

use crate::config::Settings;
use crate::emulator::host::{QueueMessageMeta, queue_envelope};
use crate::emulator::host_client::QUEUE_FUNCTION;
use crate::emulator::{Emulator, EmulatorState, sample};
use crate::startup::Application;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context;
use front::{HttpOutcome, invoke, invoke_http};
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
    /// Audit records, as the durable sink would store them (`GET /audit`).
    audit: Arc<views::MemorySink>,
}

pub const USAGE: &str = "usage: reprocess-handler sandbox [--port <port>] [--handler-port <port>] [--storage <connection string>]\n\
    --port          the emulated Functions host (default 7071)\n\
    --handler-port  the handler itself (default 7072)\n\
    --storage       AzureWebJobsStorage for operation status (default: start tools/azurite if installed)\n\
    -h, --help      this text";

/// Largest request the emulated front end takes: the Functions host's default request body limit
/// (`FUNCTIONS_REQUEST_BODY_SIZE_LIMIT`, 100 MB). Smaller bodies reach the handler, which answers them.
const FRONT_END_BODY_LIMIT: usize = 104_857_600;

struct Options {
    host_port: u16,
    handler_port: u16,
    storage: Option<String>,
}

/// `None` for `--help`; unknown flags and stray arguments are errors, so a typo never starts a sandbox.
fn parse_args(args: &[String]) -> anyhow::Result<Option<Options>> {
    let mut options = Options {
        host_port: 7071,
        handler_port: 7072,
        storage: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let port = match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--storage" => {
                let value = args.next().with_context(|| format!("{arg} needs a value\n{USAGE}"))?;
                options.storage = Some(value.clone());
                continue;
            }
            "--port" => &mut options.host_port,
            "--handler-port" => &mut options.handler_port,
            other => anyhow::bail!("unknown argument {other:?}\n{USAGE}"),
        };
        *port = args
            .next()
            .with_context(|| format!("{arg} needs a value\n{USAGE}"))?
            .parse()
            .with_context(|| format!("{arg} must be a port number\n{USAGE}"))?;
    }
    Ok(Some(options))
}

/// SIGINT (Ctrl-C) or SIGTERM (`kill`, container stop), whichever comes first.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let Some(Options {
        host_port,
        handler_port,
        storage,
    }) = parse_args(args)?
    else {
        println!("{USAGE}");
        return Ok(());
    };
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
    let storage = storage::prepare(storage)?;
    let emulator = Emulator::start_on(emulator_listener, state).context("starting the emulated tenant")?;
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.retain(|(k, _)| {
        !matches!(
            k.as_str(),
            "GRAPH_BASE_URL" | "FUNCTIONS_CUSTOMHANDLER_PORT" | "CREDENTIAL_SOURCE" | "AZURE_CLIENT_ID"
        ) && !k.to_ascii_lowercase().starts_with("azurewebjobsstorage")
    });
    if let Some(connection) = &storage.connection {
        vars.push(("AzureWebJobsStorage".into(), connection.clone()));
    }
    vars.push(("GRAPH_BASE_URL".into(), emulator.graph_base_url()));
    // The emulated identity holds the read app roles drift detection needs (step 5).
    if !vars.iter().any(|(k, _)| k == "DRIFT_DETECTION_ENABLED") {
        vars.push(("DRIFT_DETECTION_ENABLED".into(), "true".into()));
    }
    vars.push(("FUNCTIONS_CUSTOMHANDLER_PORT".into(), handler_port.to_string()));
    // A catalog scope, unless you set one: catalog General, so Payroll (Human resources) is refused.
    if !vars.iter().any(|(k, _)| k.starts_with("ALLOWED_")) {
        vars.push(("ALLOWED_CATALOG_IDS".into(), sample::CATALOG_GENERAL.into()));
    }
    let settings = Settings::from_vars(vars).context("invalid settings")?;
    let audit = Arc::new(views::MemorySink::default());

    actix_web::rt::System::new().block_on(async move {
        let sink: Arc<dyn crate::audit::sink::AuditSink> = audit.clone();
        let app = Application::build_with_audit_sink(settings, Some(sink)).context("starting the handler")?;
        let handler = format!("http://127.0.0.1:{}", app.port());
        let (tx, rx) = mpsc::unbounded_channel();
        println!("sandbox: {}", storage.note);
        let shim = web::Data::new(Shim {
            handler,
            client: reqwest::Client::new(),
            queue: tx,
            poison: Mutex::new(Vec::new()),
            emulator,
            audit,
        });
        actix_web::rt::spawn(queue_worker(shim.clone().into_inner(), rx));
        let shim_data = shim.clone();
        let host = HttpServer::new(move || {
            App::new()
                .app_data(shim_data.clone())
                .app_data(web::PayloadConfig::new(FRONT_END_BODY_LIMIT))
                .route("/api/reprocess", web::post().to(front::http_call))
                .route("/api/alert", web::post().to(front::alert_call))
                .route("/api/operations/{correlationId}", web::get().to(front::operations_call))
                .route("/api/openapi", web::get().to(front::openapi_call))
                .route("/queue/reprocess-requests", web::post().to(enqueue))
                .route("/queue/reprocess-requests-poison", web::get().to(poison))
                .route("/tenant", web::get().to(views::tenant))
                .route("/audit", web::get().to(views::audit))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", host_port))
        .with_context(|| format!("binding the emulated Functions host on 127.0.0.1:{host_port} (use --port)"))?
        .run();
        let handle = host.handle();
        actix_web::rt::spawn(host);
        let handler_task = actix_web::rt::spawn(app.run_until_stopped());
        tokio::time::sleep(Duration::from_millis(100)).await;
        demo::run(&shim, host_port).await;
        println!("\nsandbox: serving until Ctrl-C or SIGTERM. Try your own payloads:\n");
        demo::print_curl_lines(host_port);
        stop_signal().await;
        println!("sandbox: stopping");
        handle.stop(true).await;
        handler_task.abort();
        drop(storage);
        Ok(())
    })
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

async fn enqueue(_request: HttpRequest, body: String, shim: web::Data<Shim>) -> HttpResponse {
    let _ = shim.queue.send((body, 1));
    HttpResponse::Accepted()
        .json(json!({ "queued": true, "see": "the sandbox output, then GET /queue/reprocess-requests-poison" }))
}

async fn poison(shim: web::Data<Shim>) -> HttpResponse {
    HttpResponse::Ok().json(shim.poison.lock().expect("poison lock").clone())
}
