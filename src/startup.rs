//! Builds the actix-web app the Functions host talks to: `GET /` for readiness and
//! `POST /{function-folder}` for invocations, bound to 127.0.0.1 on `FUNCTIONS_CUSTOMHANDLER_PORT`
//! (0 picks a free port, for tests). An invocation's envelope is read here as a stream under
//! [`envelope_limit`] and read timeouts (so memory and time stay bounded whatever arrives), parsed and
//! handed to `functions::dispatch`; its reply (or failure) goes back to the host from here.

use crate::config::Settings;
use crate::domain::ids::is_log_safe_token;
use crate::functions;
use crate::host::{Envelope, INVOCATION_ID_HEADER};
use crate::state::{AppState, Services};
use actix_web::dev::Server;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use futures_util::StreamExt;
use serde_json::json;
use std::net::TcpListener;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

/// Longest wait for the next piece of an envelope. The host writes it from memory over loopback, so a
/// pause this long means a broken or hostile sender, not a slow network.
const ENVELOPE_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest an envelope may take to arrive in total (a trickle of bytes cannot hold a worker longer).
const ENVELOPE_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest envelope read into memory for a body of at most `max_body_bytes`. The host writes the body
/// once as a JSON string in `Data.req.Body` (at most 6 bytes per byte: `\u0001`, 2 for `"` and `\`) and,
/// only when it is a JSON object, its top-level properties again in `Metadata` (JSON text already
/// escapes what it needs, so at most ~2 bytes per byte there). Headers, URL and identities are bounded
/// by the front end (Kestrel's 32 KiB of headers); 1 MiB covers them. A larger envelope therefore
/// carries a body over `MAX_BODY_BYTES`: it is counted and discarded while it is read, never buffered.
pub fn envelope_limit(max_body_bytes: usize) -> usize {
    max_body_bytes.saturating_mul(8).saturating_add(1 << 20)
}

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
        Self::build_with_audit_sink(settings, None)
    }

    /// As [`Application::build`], with audit records going to `audit_sink` instead of the sink the
    /// settings name (the sandbox keeps them in memory to show them).
    pub fn build_with_audit_sink(
        settings: Settings,
        audit_sink: Option<std::sync::Arc<dyn crate::audit::sink::AuditSink>>,
    ) -> Result<Self, StartupError> {
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
            .spawn(move || {
                building.wait_until_services_wanted();
                match Services::build_with_audit_sink(&building.settings, audit_sink) {
                    Ok(services) => building.services_built(services),
                    Err(e) => {
                        // As fatal as a bad setting: the host restarts the handler, then stops after three tries.
                        tracing::error!(error = %e, "start-up failed");
                        eprintln!("reprocess-handler: start-up failed: {e}");
                        std::process::exit(1);
                    }
                }
            })
            .map_err(|source| StartupError::Bind { port, source })?;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route("/", web::get().to(ready))
                .route("/", web::head().to(ready))
                .route("/{function}", web::post().to(invoke))
                .default_service(web::to(not_found))
        })
        .workers(2)
        // Request line and headers within 5 s (the body has its own timeouts in `read_envelope`).
        .client_request_timeout(Duration::from_secs(5))
        .client_disconnect_timeout(Duration::from_secs(1))
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
/// Its first answer lets the Graph services be built (see [`AppState::want_services`]).
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    state.want_services();
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

/// How reading an envelope ended.
enum EnvelopeRead {
    Whole(web::Bytes),
    /// Over the limit: the rest was read and discarded; `bytes` counts all of it.
    TooLarge {
        bytes: usize,
    },
    Failed(String),
}

/// Reads the envelope, keeping at most `limit` bytes in memory whatever the sender claims or sends.
/// Pieces are kept as they arrive (no doubling buffer) and joined once, only when the whole fits.
async fn read_envelope(mut payload: web::Payload, limit: usize) -> EnvelopeRead {
    let started = Instant::now();
    let mut pieces: Vec<web::Bytes> = Vec::new();
    let mut bytes = 0usize;
    loop {
        let left = ENVELOPE_READ_TIMEOUT.saturating_sub(started.elapsed());
        let chunk = match tokio::time::timeout(ENVELOPE_IDLE_TIMEOUT.min(left), payload.next()).await {
            Err(_) => {
                return EnvelopeRead::Failed(format!(
                    "the envelope did not arrive in time ({bytes} bytes after {} ms)",
                    started.elapsed().as_millis()
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return EnvelopeRead::Failed(format!("reading the envelope failed: {e}")),
            Ok(Some(Ok(chunk))) => chunk,
        };
        bytes = bytes.saturating_add(chunk.len());
        if bytes <= limit {
            pieces.push(chunk);
        } else if !pieces.is_empty() {
            // Keep reading so the sender gets our answer rather than a reset, but keep nothing.
            pieces = Vec::new();
        }
    }
    if bytes > limit {
        return EnvelopeRead::TooLarge { bytes };
    }
    match pieces.len() {
        1 => EnvelopeRead::Whole(pieces.pop().unwrap_or_default()),
        _ => {
            let mut whole = Vec::with_capacity(bytes);
            for piece in pieces {
                whole.extend_from_slice(&piece);
            }
            EnvelopeRead::Whole(whole.into())
        }
    }
}

async fn invoke(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let function = path.into_inner();
    let invocation_id = invocation_id(&request);
    let span = tracing::info_span!("invocation", invocation_id = %invocation_id, function = %function);
    async move {
        let started = std::time::Instant::now();
        let limit = envelope_limit(state.settings.max_body_bytes);
        let body = match read_envelope(payload, limit).await {
            EnvelopeRead::Whole(body) => body,
            EnvelopeRead::TooLarge { bytes } => {
                tracing::warn!(bytes, limit, "envelope over the limit; read and discarded");
                return match functions::too_large(&function, bytes, &state.settings) {
                    Some(reply) => HttpResponse::Ok()
                        .content_type("application/json")
                        .body(reply.to_json()),
                    None => failure(&format!(
                        "the envelope of {bytes} bytes is over the limit of {limit} bytes"
                    )),
                };
            }
            EnvelopeRead::Failed(reason) => {
                tracing::error!(reason, "unreadable invocation envelope");
                return failure(&reason);
            }
        };
        let envelope = match Envelope::parse(&body) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::error!(error = %e, "unreadable invocation envelope");
                return failure(&e.to_string());
            }
        };
        drop(body);
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
