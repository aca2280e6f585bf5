//! What the HTTP functions share: reading a POST, `?flag=true|false`, the body-size check and the JSON
//! error body of every 4xx/5xx.

use crate::host::{Envelope, HttpReply, HttpTrigger};
use serde_json::{Value, json};

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
