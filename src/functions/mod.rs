//! One file per function folder: decode the host envelope → run the service → encode the reply.
//! Binding names here must match the `function.json` files exactly (the host matches them
//! case-sensitively).

pub mod alert_reprocess;
pub mod http_reprocess;
mod queue_expand;
pub mod queue_reprocess;

use crate::domain::{Scope, Targets};
use crate::fanout::Plan;
use crate::host::{HttpReply, HttpTrigger};
use serde_json::{Value, json};

/// `function-reprocess/function.json`.
pub mod http_bindings {
    pub const FUNCTION: &str = "function-reprocess";
    pub const REQUEST: &str = "req";
    pub const RESPONSE: &str = "res";
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
    pub const REQUEST: &str = "req";
    pub const RESPONSE: &str = "res";
    pub const ENQUEUE: &str = "enqueue";
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

/// The 202 body for work handed to the queue: what was accepted and how many messages carry it.
pub fn accepted_body(
    plan: &Plan,
    targets: &Targets,
    scopes: &[Scope],
    correlation_id: &str,
    invocation_id: &str,
    queue: &str,
) -> Value {
    let of = |f: &str| -> Vec<&str> { scopes.iter().filter(|s| s.field() == f).map(Scope::id).collect() };
    json!({
        "status": "accepted",
        "invocationId": invocation_id,
        "correlationId": correlation_id,
        "accepted": {
            "accessPackageIds": of("accessPackageIds"),
            "userIds": of("userIds"),
            "assignmentIds": targets.assignment_ids().len(),
            "assignmentRequestIds": targets.assignment_request_ids().len(),
        },
        "enqueued": {
            "queue": queue,
            "messages": plan.len(),
            "expansionMessages": plan.expansion_messages.len(),
            "idMessages": plan.id_messages.len(),
        },
    })
}

/// 413 naming the limit and its setting when an HTTP body is over `MAX_BODY_BYTES`.
pub fn check_body_size(body: &str, max_body_bytes: usize) -> Result<(), crate::host::HttpReply> {
    if body.len() <= max_body_bytes {
        return Ok(());
    }
    let message = format!(
        "the body is {} bytes; the limit is {max_body_bytes} bytes (MAX_BODY_BYTES)",
        body.len()
    );
    let extra = json!({ "limit": max_body_bytes, "setting": "MAX_BODY_BYTES" });
    Err(crate::host::HttpReply::json(
        413,
        error_body("body_too_large", &message, extra),
    ))
}

/// The JSON error body every 4xx/5xx from the HTTP functions uses.
pub fn error_body(code: &str, message: &str, extra: Value) -> Value {
    let mut error = json!({ "code": code, "message": message });
    if let (Value::Object(target), Value::Object(extra)) = (&mut error, extra) {
        target.extend(extra);
    }
    json!({ "error": error })
}
