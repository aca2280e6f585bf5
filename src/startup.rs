//! Builds the actix-web app the Functions host talks to: `GET /` for readiness and
//! `POST /{function-folder}` for invocations, bound to 127.0.0.1 on `FUNCTIONS_CUSTOMHANDLER_PORT`
//! (0 picks a free port, for tests). An invocation's envelope is parsed here and handed to
//! `functions::dispatch`; its reply (or failure) goes back to the host from here.

use crate::config::Settings;
use crate::domain::ids::is_log_safe_token;
use crate::functions;
use crate::host::{Envelope, INVOCATION_ID_HEADER};
use crate::state::{AppState, Services};
use actix_web::dev::Server;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::json;
use std::net::TcpListener;
use tracing::Instrument;

/// Envelopes carry the caller's body and its JSON properties again in `Metadata`: allow several times
/// `MAX_BODY_BYTES` so an oversized call gets our 413 rather than a transport error.
const ENVELOPE_LIMIT: usize = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
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
        let state = web::Data::new(AppState::new(settings));
        let building = state.clone();
        std::thread::Builder::new()
            .name("start-up".into())
            .spawn(move || match Services::build(&building.settings) {
                Ok(services) => building.services_built(services),
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
        .filter(|id| is_log_safe_token(id))
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
        let Some(reply) = functions::dispatch(&state, &function, &envelope, &invocation_id).await else {
            tracing::error!("invocation for an unknown function");
            return HttpResponse::NotFound()
                .json(json!({ "Outputs": {}, "Logs": [format!("unknown function {function}")] }));
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
