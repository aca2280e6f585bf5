//! What the HTTP functions share: reading a POST, `?flag=true|false`, the body-size check and the JSON
//! error body of every 4xx/5xx.

use crate::domain::Caller;
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

/// The body must be declared JSON: `application/json` (any parameters, e.g. `; charset=utf-8`), `text/json`
/// or `application/<something>+json`, or no Content-Type at all (curl without `-H`, some scripts). The host
/// passes `text/plain`, XML and form bodies through as text, so without this check they would be read
/// as JSON anyway; octet-stream and multipart bodies even arrive base64-encoded. 415 names what to send.
fn check_content_type(request: &HttpTrigger) -> Result<(), HttpReply> {
    let Some(value) = request.header("Content-Type") else {
        return Ok(());
    };
    let media_type = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let json = media_type.is_empty()
        || media_type == "application/json"
        || media_type == "text/json"
        || (media_type.starts_with("application/") && media_type.ends_with("+json"));
    if json {
        return Ok(());
    }
    let shown: String = media_type.chars().filter(|c| c.is_ascii_graphic()).take(64).collect();
    Err(HttpReply::json(
        415,
        error_body(
            "unsupported_media_type",
            &format!("the body is declared as {shown:?}; send JSON with Content-Type: application/json"),
            json!({ "expected": "application/json" }),
        ),
    ))
}

/// The request's JSON body as text, or the reply that refuses it: 415 for a body not declared as JSON,
/// 400 (`empty_body`, with `empty_message` saying what to send) for none, 413 over `MAX_BODY_BYTES`.
pub fn json_body<'a>(
    request: &'a HttpTrigger,
    empty_message: &str,
    max_body_bytes: usize,
) -> Result<&'a str, HttpReply> {
    check_content_type(request)?;
    let Some(body) = request.body.as_deref().filter(|b| !b.trim().is_empty()) else {
        return Err(HttpReply::json(400, error_body("empty_body", empty_message, json!({}))));
    };
    check_body_size(body, max_body_bytes)?;
    Ok(body)
}

/// 413 naming the limit and its setting when an HTTP body is over `MAX_BODY_BYTES`.
fn check_body_size(body: &str, max_body_bytes: usize) -> Result<(), HttpReply> {
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

/// Who called, from the only request parts that name a caller and hold no secret: Logic Apps'
/// `x-ms-workflow-name`, `x-ms-workflow-run-id` and `x-ms-client-tracking-id` (sent on every HTTP action
/// call), App Service authentication's `x-ms-client-principal-name`, `-id` and `-idp` (set by the
/// platform when authentication is on, and only then trustworthy: recorded here as the caller sent them,
/// while `auth` decides whether a verified principal exists), and the name of the function key.
/// The host forwards every request header in `Data.req.Headers` (`HttpRequestExtensions.GetRequestAsJObject`),
/// `Authorization` and `x-functions-key` included: nothing else is read from them.
pub fn caller(request: &HttpTrigger, trigger: &str, function: &str, invocation_id: &str) -> Caller {
    let header = |name: &str| request.header(name).map(str::to_owned);
    Caller {
        trigger: Some(trigger.to_owned()),
        function: Some(function.to_owned()),
        invocation_id: Some(invocation_id.to_owned()),
        workflow_name: header("x-ms-workflow-name"),
        workflow_run_id: header("x-ms-workflow-run-id"),
        client_tracking_id: header("x-ms-client-tracking-id"),
        principal_name: header("x-ms-client-principal-name"),
        principal_id: header("x-ms-client-principal-id"),
        principal_idp: header("x-ms-client-principal-idp"),
        verified_principal_id: None,
        verified_app_id: None,
        verified_roles: None,
        key_name: request.key_name.clone(),
        alert_rule: None,
        alert_id: None,
    }
    .cleaned()
}
