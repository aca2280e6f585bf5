//! Builds the actix-web app the Functions host talks to: `GET /` for readiness and
//! `POST /{function-folder}` for invocations, bound to 127.0.0.1 on `FUNCTIONS_CUSTOMHANDLER_PORT`
//! (0 picks a free port, for tests).

use crate::config::Settings;
use crate::functions::{self, alert_bindings, http_bindings, queue_bindings};
use crate::graph::{GraphClient, Limiter, TokenProvider};
use crate::host::{Envelope, INVOCATION_ID_HEADER};
use crate::reprocess::Reprocessor;
use actix_web::dev::Server;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::json;
use std::net::TcpListener;
use std::sync::{Arc, OnceLock};
use tokio::sync::Notify;
use tracing::Instrument;

/// Envelopes carry the caller's body and its JSON properties again in `Metadata`: allow several times
/// `MAX_BODY_BYTES` so an oversized call gets our 413 rather than a transport error.
const ENVELOPE_LIMIT: usize = 256 << 20;

/// What talks to Graph. Building it loads the system's TLS roots (hundreds of files, milliseconds), so it
/// is built on a thread of its own while the server already answers the host's readiness probe;
/// invocations that arrive first wait for it.
#[derive(Debug)]
pub struct Services {
    pub reprocessor: Reprocessor,
    /// For reads (listing, dry runs); shares the limiter and token cache with the reprocessor.
    pub graph: Arc<GraphClient>,
}

impl Services {
    fn build(settings: &Settings) -> Result<Self, StartupError> {
        let tokens = TokenProvider::from_settings(settings)?;
        let limiter = Arc::new(Limiter::new(settings.graph.max_concurrency));
        let graph = Arc::new(GraphClient::new(&settings.graph, tokens, limiter)?);
        let reprocessor = Reprocessor::new(Arc::clone(&graph), settings.graph.max_concurrency);
        Ok(Self { reprocessor, graph })
    }
}

#[derive(Debug)]
pub struct AppState {
    pub settings: Settings,
    services: OnceLock<Services>,
    services_ready: Notify,
}

impl AppState {
    /// The Graph services, waiting for start-up to finish building them.
    pub async fn services(&self) -> &Services {
        loop {
            if let Some(services) = self.services.get() {
                return services;
            }
            let ready = self.services_ready.notified();
            if let Some(services) = self.services.get() {
                return services;
            }
            ready.await;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Credential(#[from] crate::graph::CredentialError),
    #[error(transparent)]
    Client(#[from] crate::graph::client::ClientError),
    #[error("could not listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
}

pub struct Application {
    server: Server,
    port: u16,
}

impl Application {
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        let port = settings.port;
        let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|source| StartupError::Bind { port, source })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { port, source })?
            .port();
        let state = web::Data::new(AppState {
            settings,
            services: OnceLock::new(),
            services_ready: Notify::new(),
        });
        let building = state.clone();
        std::thread::Builder::new()
            .name("start-up".into())
            .spawn(move || match Services::build(&building.settings) {
                Ok(services) => {
                    let _ = building.services.set(services);
                    building.services_ready.notify_waiters();
                }
                Err(e) => {
                    // As fatal as a bad setting: the host restarts the handler, then stops after three tries.
                    tracing::error!(error = %e, "start-up failed");
                    eprintln!("reprocess-handler: start-up failed: {e}");
                    std::process::exit(1);
                }
            })
            .map_err(|source| StartupError::Bind { port, source })?;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(ENVELOPE_LIMIT))
                .route("/", web::get().to(ready))
                .route("/", web::head().to(ready))
                .route("/{function}", web::post().to(invoke))
                .default_service(web::to(not_found))
        })
        .workers(2)
        .shutdown_timeout(10)
        .listen(listener)
        .map_err(|source| StartupError::Bind { port, source })?
        .run();
        Ok(Self { server, port })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }

    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

/// The host polls `GET /` every 25 ms until any HTTP answer (`DefaultHttpWorkerService.IsWorkerReady`).
async fn ready() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ready" }))
}

async fn not_found(request: HttpRequest) -> HttpResponse {
    HttpResponse::NotFound().json(json!({ "Outputs": {}, "Logs": [format!("no function at {}", request.path())] }))
}

/// Invocation IDs only ever reach logs after this check, so a forged header cannot inject log lines.
fn invocation_id(request: &HttpRequest) -> String {
    request
        .headers()
        .get(INVOCATION_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or("unknown")
        .to_owned()
}

async fn invoke(
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let function = path.into_inner();
    let invocation_id = invocation_id(&request);
    let span = tracing::info_span!("invocation", invocation_id = %invocation_id, function = %function);
    async move {
        let started = std::time::Instant::now();
        let envelope = match Envelope::parse(&body) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::error!(error = %e, "unreadable invocation envelope");
                return failure(&e.to_string());
            }
        };
        let reply = match function.as_str() {
            http_bindings::FUNCTION => Ok(functions::http_reprocess::handle(&state, &envelope, &invocation_id).await),
            queue_bindings::FUNCTION => functions::queue_reprocess::handle(&state, &envelope, &invocation_id).await,
            alert_bindings::FUNCTION => Ok(functions::alert_reprocess::handle(&state, &envelope, &invocation_id).await),
            _ => {
                tracing::error!("invocation for an unknown function");
                return HttpResponse::NotFound()
                    .json(json!({ "Outputs": {}, "Logs": [format!("unknown function {function}")] }));
            }
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match reply {
            Ok(reply) => {
                tracing::info!(duration_ms = elapsed_ms, "invocation complete");
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(reply.to_json())
            }
            Err(e) => {
                tracing::error!(error = %e, duration_ms = elapsed_ms, "invocation failed; the host will retry it");
                failure(&e.to_string())
            }
        }
    }
    .instrument(span)
    .await
}

/// Non-2xx makes the host fail the invocation (it then ignores Outputs and Logs) and, for queues, retry.
fn failure(message: &str) -> HttpResponse {
    HttpResponse::InternalServerError().json(json!({ "Outputs": {}, "Logs": [message] }))
}
