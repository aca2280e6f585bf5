//! `reprocess-handler sandbox`: the real handler against the emulated tenant, with a small emulated
//! Functions host in front so plain `curl` calls work. The handler is the `reprocess-handler` binary
//! itself, run as a child process with the host's environment exactly as the Functions host runs it;
//! the audit records it logs (JSON lines on its stdout) are kept for the tour and `GET /audit`.
//!
//! - `POST http://127.0.0.1:7071/api/reprocess` — your JSON body is wrapped into the envelope the host
//!   sends, the handler is invoked, and `Outputs.res` is unwrapped into the HTTP answer;
//! - `POST http://127.0.0.1:7071/queue/reprocess-requests` — the body is a queue message; an in-memory
//!   queue invokes the queue function, follows `enqueue` outputs and keeps `deadLetter` outputs;
//! - `POST http://127.0.0.1:7071/api/alert` — an Azure Monitor common-alert-schema webhook;
//! - `GET http://127.0.0.1:7071/api/openapi` — the OpenAPI 2.0 document, its `host` this address;
//! - HTTP functions' `enqueue` outputs go to the same in-memory queue, so a package fan-out runs to the
//!   end (page by page, then chunks of 20 IDs);
//! - `GET /queue/reprocess-requests-poison`, `GET /tenant` and `GET /audit` show what happened;
//! - the front stands in for App Service authentication (`callers`): it strips every
//!   `X-MS-CLIENT-PRINCIPAL*` header a caller sends and, for `x-sandbox-caller: <name>`, injects that
//!   sample caller's principal; the handler runs with `WEBSITE_AUTH_ENABLED=true` and the sample
//!   callers' `CALLER_SCOPES`, and `GET /callers` lists them.
//!
//! The emulated host is as strict as the real one, so the sandbox teaches what production does: the
//! caller's headers (Content-Type included) pass through unchanged, a body sent without Content-Length
//! (chunked) is dropped, repeated query keys arrive joined with "," (`?dryRun=true&dryRun=false` is
//! `"true,false"`, which the handler refuses), and the handler — not the sandbox — answers oversized
//! bodies. It stops on SIGINT or SIGTERM at any moment, start-up included, and stops the handler with it.

mod callers;
mod demo;
mod front;
mod storage;
mod views;

use crate::functions::{Function, poison_queue};
use crate::host::{QueueMessageMeta, queue_envelope};
use crate::host_client::{HandlerProcess, Launch, Readiness};
use crate::{Emulator, EmulatorState, sample};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context;
use front::{HttpOutcome, invoke, invoke_http};
use serde_json::{Value, json};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

struct Shim {
    handler: String,
    client: reqwest::Client,
    /// The queue the queue function reads, as its `function.json` names it.
    queue_name: &'static str,
    queue: mpsc::UnboundedSender<(String, u32)>,
    poison: Mutex<Vec<Value>>,
    emulator: Emulator,
    /// Audit records from the handler's log (`GET /audit`).
    audit: Arc<views::AuditLog>,
    /// How the handler treats the principals the front injects (`GET /callers`).
    auth: callers::AuthSetup,
}

pub const USAGE: &str = "usage: reprocess-handler sandbox [--port <port>] [--handler-port <port>] [--storage <connection string>]\n\
    --port          the emulated Functions host (default 7071)\n\
    --handler-port  the handler itself (default 7072)\n\
    --storage       AzureWebJobsStorage for operation status (default: start tools/azurite, installing it with npm if needed)\n\
    -h, --help      this text";

/// Largest request the emulated front end takes: the Functions host's default request body limit
/// (`FUNCTIONS_REQUEST_BODY_SIZE_LIMIT`, 100 MB). Smaller bodies reach the handler, which answers them.
const FRONT_END_BODY_LIMIT: usize = 104_857_600;

/// The handler's log level when `RUST_LOG` is not set: as quiet as the sandbox's own console, plus the
/// audit records (info events of `reprocess_handler::audit`), which the sandbox takes off its stdout.
const HANDLER_LOG: &str = "warn";
const AUDIT_LOG: &str = "reprocess_handler::audit=info";

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

/// SIGINT (Ctrl-C) or SIGTERM (`kill`, container stop), whichever comes first. Listening starts when
/// this is built, so a signal that arrives before anyone waits is not lost (and does not kill the
/// process the default way, which would leave the handler running).
struct StopSignal {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignal {
    fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
                terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn received(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }

    /// `work`'s output, or `None` if a signal came first (`work` is then dropped).
    async fn unless_received<T>(&mut self, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            output = work => Some(output),
            () = self.received() => None,
        }
    }
}

/// Runs the sandbox with `handler` (the `reprocess-handler` binary) as the handler process.
pub fn run(handler: PathBuf, args: &[String]) -> anyhow::Result<()> {
    let Some(options) = parse_args(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    actix_web::rt::System::new().block_on(serve(handler, options))
}

async fn serve(
    binary: PathBuf,
    Options {
        host_port,
        handler_port,
        storage,
    }: Options,
) -> anyhow::Result<()> {
    // First, so a signal at any later moment stops what has started so far.
    let mut stop = StopSignal::install()?;
    let front_listener = std::net::TcpListener::bind(("127.0.0.1", host_port))
        .with_context(|| format!("binding the emulated Functions host on 127.0.0.1:{host_port} (use --port)"))?;
    drop(
        std::net::TcpListener::bind(("127.0.0.1", handler_port))
            .with_context(|| format!("binding the handler on 127.0.0.1:{handler_port} (use --handler-port)"))?,
    );
    let emulator_listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("binding the emulated tenant")?;
    let emulator = Emulator::start_on(emulator_listener, EmulatorState::new(sample::tenant()))
        .context("starting the emulated tenant")?;

    // Installing and starting Azurite may take a while: on a thread of its own, so a signal still stops
    // the sandbox at once (a blocking task would hold the runtime's shutdown).
    let stopping = Arc::new(AtomicBool::new(false));
    let (storage_tx, storage_rx) = tokio::sync::oneshot::channel();
    let storage_stopping = Arc::clone(&stopping);
    std::thread::spawn(move || {
        let _ = storage_tx.send(storage::prepare(storage, &storage_stopping));
    });
    let storage = match stop.unless_received(storage_rx).await {
        None => {
            stopping.store(true, Ordering::SeqCst);
            println!("sandbox: stopping");
            // Lets an install in progress be stopped (npm is killed within 0.1 s).
            std::thread::sleep(Duration::from_millis(200));
            return Ok(());
        }
        Some(prepared) => match prepared.context("preparing storage")? {
            Ok(storage) => storage,
            Err(e) => storage::unavailable(&format!("Azurite: {e:#}; or pass --storage")),
        },
    };

    let audit = Arc::new(views::AuditLog::default());
    let (launch, auth) = handler_launch(storage.connection.as_deref(), Arc::clone(&audit));
    let mut handler = HandlerProcess::spawn(&binary, &emulator, Readiness::ProbeAt(handler_port), launch)?;
    let ready = stop
        .unless_received(async {
            while !handler.poll_ready()? {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            anyhow::Ok(())
        })
        .await;
    match ready {
        None => {
            println!("sandbox: stopping");
            return Ok(());
        }
        Some(ready) => ready.context("starting the handler")?,
    }

    let (tx, rx) = mpsc::unbounded_channel();
    println!("sandbox: {}", storage.note);
    let shim = web::Data::new(Shim {
        handler: format!("http://127.0.0.1:{handler_port}"),
        client: reqwest::Client::new(),
        queue_name: Function::queue_triggered().1,
        queue: tx,
        poison: Mutex::new(Vec::new()),
        emulator,
        audit,
        auth,
    });
    actix_web::rt::spawn(queue_worker(shim.clone().into_inner(), rx));
    let shim_data = shim.clone();
    let host = HttpServer::new(move || {
        App::new()
            .app_data(shim_data.clone())
            .app_data(web::PayloadConfig::new(FRONT_END_BODY_LIMIT))
            .configure(front::routes)
            .route("/queue/reprocess-requests", web::post().to(enqueue))
            .route("/queue/reprocess-requests-poison", web::get().to(poison))
            .route("/tenant", web::get().to(views::tenant))
            .route("/audit", web::get().to(views::audit))
            .route("/callers", web::get().to(views::callers))
    })
    .workers(1)
    .disable_signals()
    // In-flight calls get a moment to finish on stop, not the default 30 s.
    .shutdown_timeout(1)
    .listen(front_listener)
    .with_context(|| format!("serving the emulated Functions host on 127.0.0.1:{host_port}"))?
    .run();
    let front = host.handle();
    actix_web::rt::spawn(host);

    let session = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        demo::run(&shim, host_port).await;
        println!("\nsandbox: serving until Ctrl-C or SIGTERM. Try your own payloads:\n");
        demo::print_curl_lines(host_port);
        // Then serve until the handler dies (its stderr says why) or a signal comes.
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if let Some(status) = handler.exited() {
                break Err(anyhow::anyhow!(
                    "the handler exited with {status}: {}",
                    handler.stderr().trim()
                ));
            }
        }
    };
    let outcome = stop.unless_received(session).await;
    println!("sandbox: stopping");
    front.stop(true).await;
    // The handler is killed when `handler` drops, then Azurite with `storage`.
    drop(handler);
    drop(storage);
    outcome.unwrap_or(Ok(()))
}

/// The handler's environment as the host would pass app settings: this shell's, minus what points
/// elsewhere, plus the emulated tenant's (the host client sets Graph, the identity endpoint and port).
fn handler_launch(storage: Option<&str>, audit: Arc<views::AuditLog>) -> (Launch, callers::AuthSetup) {
    let mut inherited: Vec<(String, String)> = std::env::vars().collect();
    inherited.retain(|(k, _)| {
        !matches!(
            k.as_str(),
            "GRAPH_BASE_URL"
                | "FUNCTIONS_CUSTOMHANDLER_PORT"
                | "CREDENTIAL_SOURCE"
                | "AZURE_CLIENT_ID"
                | "IDENTITY_ENDPOINT"
                | "IDENTITY_HEADER"
                | "RUST_LOG"
        ) && !k.to_ascii_lowercase().starts_with("azurewebjobsstorage")
    });
    let mut extra = Vec::new();
    if let Some(connection) = storage {
        extra.push(("AzureWebJobsStorage".to_owned(), connection.to_owned()));
    }
    // The emulated identity holds the read app roles drift detection needs (step 6).
    if !inherited.iter().any(|(k, _)| k == "DRIFT_DETECTION_ENABLED") {
        extra.push(("DRIFT_DETECTION_ENABLED".into(), "true".into()));
    }
    // A catalog scope, unless you set one: both catalogs, so the deployment allows every package and
    // what a sample caller may touch is decided by its roles alone (Payroll is allowed for payroll-team
    // and refused for helpdesk-sales). A deployment scope of General alone would refuse Payroll to
    // every caller and hide the per-caller narrowing.
    if !inherited.iter().any(|(k, _)| k.starts_with("ALLOWED_")) {
        extra.push((
            "ALLOWED_CATALOG_IDS".into(),
            format!("{},{}", sample::CATALOG_GENERAL, sample::CATALOG_HR),
        ));
    }
    // The front stands in for App Service authentication (`callers`), so the handler is told it is on,
    // as the platform tells it, and is given the sample callers' roles, unless you set either yourself.
    let own = |name: &str| inherited.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut auth = callers::AuthSetup::default();
    match own("WEBSITE_AUTH_ENABLED") {
        Some(v) => auth.platform_auth = v.trim().eq_ignore_ascii_case("true"),
        None => {
            extra.push(("WEBSITE_AUTH_ENABLED".into(), "true".into()));
            auth.platform_auth = true;
        }
    }
    match own("CALLER_SCOPES") {
        Some(v) => {
            auth.caller_scopes = Some(v);
            auth.own_caller_scopes = true;
        }
        None => {
            let scopes = callers::caller_scopes();
            extra.push(("CALLER_SCOPES".into(), scopes.clone()));
            auth.caller_scopes = Some(scopes);
        }
    }
    // Left as you set it (off by default): the tour's Logic App and queue steps, and plain curl, call
    // without a principal, as a caller with the function key alone does in Azure.
    auth.require_authenticated_caller =
        own("REQUIRE_AUTHENTICATED_CALLER").is_some_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "1");
    let chosen = std::env::var("RUST_LOG").ok();
    let level = chosen.clone().unwrap_or_else(|| HANDLER_LOG.into());
    extra.push(("RUST_LOG".into(), format!("{level},{AUDIT_LOG}")));
    let launch = Launch {
        inherited,
        extra,
        // Audit records are kept for the tour and `GET /audit`; every other line shows as the handler
        // wrote it: warnings and errors, or whatever your RUST_LOG asks for. The audit module's other
        // info lines, let through only for the records, stay hidden unless you chose a level.
        on_stdout: Some(Box::new(move |line| {
            if audit.take(&line) {
                return;
            }
            let quiet_by_default =
                chosen.is_none() && !(line.contains(r#""level":"WARN""#) || line.contains(r#""level":"ERROR""#));
            if !quiet_by_default {
                println!("{line}");
            }
        })),
    };
    (launch, auth)
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
        let (function, queue) = Function::queue_triggered();
        let envelope = queue_envelope(
            function.name,
            function.trigger().name,
            &text,
            &QueueMessageMeta::now(dequeue),
        );
        match invoke(shim, function.name, envelope).await {
            Ok(reply) => {
                for line in reply["Logs"].as_array().into_iter().flatten() {
                    println!("   -> log: {}", line.as_str().unwrap_or(""));
                }
                for binding in function.outputs_to(queue) {
                    for message in front::messages(&reply, binding) {
                        println!("   -> enqueued: {}", short(&message));
                        pending.push((message, 1));
                    }
                }
                for binding in function.outputs_to(&poison_queue(queue)) {
                    for message in front::messages(&reply, binding) {
                        shim.poison
                            .lock()
                            .expect("poison lock")
                            .push(serde_json::from_str(&message).unwrap_or(json!(message)));
                    }
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
