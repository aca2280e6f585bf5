//! One file per function folder: decode the host envelope → run the service → encode the reply.
//! [`dispatch`] picks the function by the folder name the host POSTs to. Binding names here must match
//! the `function.json` files exactly (the host matches them case-sensitively).

pub mod alert_reprocess;
pub mod http_reprocess;
mod queue_expand;
pub mod queue_reprocess;

use crate::host::{Envelope, EnvelopeError, HttpReply, HttpTrigger, InvokeResponse};
use crate::state::AppState;
use serde_json::{Value, json};

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
        queue_bindings::FUNCTION => Some(queue_reprocess::handle(state, envelope, invocation_id).await),
        http_bindings::FUNCTION | alert_bindings::FUNCTION => {
            let mut response = InvokeResponse::default();
            let reply = match post_request(envelope, HTTP_REQUEST) {
                Err(reply) => reply,
                Ok(request) if function == http_bindings::FUNCTION => {
                    http_reprocess::handle(state, &request, invocation_id, &mut response).await
                }
                Ok(request) => alert_reprocess::handle(state, &request, invocation_id, &mut response),
            };
            response.http(HTTP_RESPONSE, reply);
            Some(Ok(response))
        }
        _ => None,
    }
}

/// The HTTP trigger and HTTP output bindings, named alike in every HTTP function's `function.json`.
pub const HTTP_REQUEST: &str = "req";
pub const HTTP_RESPONSE: &str = "res";

/// `function-reprocess/function.json`.
pub mod http_bindings {
    pub const FUNCTION: &str = "function-reprocess";
    /// Queue output for work split into messages (large calls, fan-out).
    pub const ENQUEUE: &str = "enqueue";
}

/// `function-reprocess-queue/function.json`.
pub mod queue_bindings {
    pub const FUNCTION: &str = "function-reprocess-queue";
    pub const MESSAGE: &str = "message";
    pub const ENQUEUE: &str = "enqueue";
    pub const DEAD_LETTER: &str = "deadLetter";
}

/// `function-reprocess-alert/function.json`: Azure Monitor action-group webhooks.
pub mod alert_bindings {
    pub const FUNCTION: &str = "function-reprocess-alert";
    pub const ENQUEUE: &str = "enqueue";
}

/// The HTTP trigger of a POST-only function, or the reply that refuses it: 500 for an envelope without a
/// readable request (the host's own fault), 405 for another method.
pub fn post_request(envelope: &Envelope, binding: &'static str) -> Result<HttpTrigger, HttpReply> {
    let request = HttpTrigger::from_envelope(envelope, binding).map_err(|e| {
        tracing::error!(error = %e, "malformed HTTP trigger envelope");
        HttpReply::json(500, error_body("bad_envelope", &e.to_string(), json!({})))
    })?;
    if !request.method.eq_ignore_ascii_case("POST") {
        return Err(
            HttpReply::json(405, error_body("method_not_allowed", "use POST", json!({}))).with_header("Allow", "POST"),
        );
    }
    Ok(request)
}

/// `?dryRun=true|false` (any case); anything else is a 400 naming the parameter.
pub fn query_flag(request: &HttpTrigger, name: &str) -> Result<bool, HttpReply> {
    match request.query_param(name).map(str::trim) {
        None | Some("") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(HttpReply::json(
            400,
            error_body(
                "invalid_field",
                &format!("query parameter {name} must be true or false"),
                json!({ "fields": [{ "field": name, "reason": "must be true or false" }] }),
            ),
        )),
    }
}

/// 413 naming the limit and its setting when an HTTP body is over `MAX_BODY_BYTES`.
pub fn check_body_size(body: &str, max_body_bytes: usize) -> Result<(), HttpReply> {
    if body.len() <= max_body_bytes {
        return Ok(());
    }
    let message = format!(
        "the body is {} bytes; the limit is {max_body_bytes} bytes (MAX_BODY_BYTES)",
        body.len()
    );
    let extra = json!({ "limit": max_body_bytes, "setting": "MAX_BODY_BYTES" });
    Err(HttpReply::json(413, error_body("body_too_large", &message, extra)))
}

/// The JSON error body every 4xx/5xx from the HTTP functions uses.
pub fn error_body(code: &str, message: &str, extra: Value) -> Value {
    let mut error = json!({ "code": code, "message": message });
    if let (Value::Object(target), Value::Object(extra)) = (&mut error, extra) {
        target.extend(extra);
    }
    json!({ "error": error })
}
