//! One file (or folder) per function folder, named after it (`reprocess_queue` ↔
//! `function-reprocess-queue`): decode the host envelope → run the work → encode the reply.
//! [`dispatch`] picks the function by the folder name the host POSTs to; `bindings` is the one list of
//! function and binding names, matching the `function.json` files exactly.

mod accepted;
pub mod auth;
pub mod bindings;
pub mod heal_timer;
mod http_io;
pub mod openapi;
pub mod operations;
pub mod operations_cleanup;
pub mod reprocess;
pub mod reprocess_alert;
pub mod reprocess_queue;
pub mod tracked;

use crate::config::Settings;
use crate::host::{Envelope, EnvelopeError, HttpReply, InvokeResponse};
use crate::state::AppState;
use bindings::{HTTP_REQUEST, HTTP_RESPONSE};

/// Runs the function named `function` (the folder name), or `None` if there is no such function.
/// `Err` only for an envelope the function cannot read at all: the host then fails the invocation and,
/// for a queue message, retries it.
pub async fn dispatch(
    state: &AppState,
    function: &str,
    envelope: &Envelope,
    invocation_id: &str,
) -> Option<Result<InvokeResponse, EnvelopeError>> {
    match function {
        bindings::queue::FUNCTION => Some(reprocess_queue::handle(state, envelope, invocation_id).await),
        bindings::openapi::FUNCTION => {
            let mut response = InvokeResponse::default();
            response.http(HTTP_RESPONSE, openapi::handle(envelope, HTTP_REQUEST));
            Some(Ok(response))
        }
        bindings::cleanup::FUNCTION => Some(operations_cleanup::handle(state).await),
        bindings::operations::FUNCTION => {
            let mut response = InvokeResponse::default();
            let reply = operations::handle(state, envelope, &mut response).await;
            response.http(HTTP_RESPONSE, reply);
            Some(Ok(response))
        }
        bindings::timer::FUNCTION => Some(heal_timer::handle(state, envelope, invocation_id).await),
        bindings::http::FUNCTION | bindings::alert::FUNCTION => {
            let mut response = InvokeResponse::default();
            let reply = match http_io::post_request(envelope, HTTP_REQUEST) {
                Err(reply) => reply,
                Ok(request) if function == bindings::http::FUNCTION => {
                    reprocess::handle(state, &request, invocation_id, &mut response).await
                }
                Ok(request) => reprocess_alert::handle(state, &request, invocation_id, &mut response).await,
            };
            response.http(HTTP_RESPONSE, reply);
            Some(Ok(response))
        }
        _ => None,
    }
}

/// The reply for an envelope too large to read (`startup` counted and discarded it): for an HTTP
/// function the caller gets a proper 413 naming `MAX_BODY_BYTES` (a non-2xx to the host would become a
/// bare 500); a queue function has no such reply (`None`: the invocation fails, the host retries and
/// poisons the message) — and never needs one, since queue messages are at most 64 KiB.
pub fn too_large(function: &str, envelope_bytes: usize, settings: &Settings) -> Option<InvokeResponse> {
    if function != bindings::http::FUNCTION && function != bindings::alert::FUNCTION {
        return None;
    }
    let limit = settings.max_body_bytes;
    let message = format!(
        "the request is too large: its invocation envelope was {envelope_bytes} bytes, so the body is over the limit of {limit} bytes (MAX_BODY_BYTES)"
    );
    let body = http_io::error_body(
        "body_too_large",
        &message,
        serde_json::json!({ "limit": limit, "setting": "MAX_BODY_BYTES" }),
    );
    let mut response = InvokeResponse::default();
    response.log(message);
    response.http(HTTP_RESPONSE, HttpReply::json(413, body));
    Some(response)
}
