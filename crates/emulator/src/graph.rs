//! Emulated Microsoft Graph: reprocess actions for v1.0 and beta, JSON batching, bearer-token checks,
//! a token-bucket throttle answering 429 + `Retry-After`, latency, injected faults, error bodies as in
//! `concepts/errors.md`, and the headers Graph sends (`request-id`, `client-request-id`,
//! `x-ms-ags-diagnostic`). Every request (and every `$batch` sub-request) is logged as it arrived, so
//! tests can assert exactly what reached "Graph".

pub(super) use super::answer::Kind;
use super::answer::{Answer, Ctx, to_response};
use super::faults::Fault;
use super::{EmulatorState, LoggedRequest};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

pub fn routes(config: &mut web::ServiceConfig) {
    config.default_service(web::to(dispatch));
}

async fn dispatch(request: HttpRequest, body: web::Bytes, state: web::Data<EmulatorState>) -> HttpResponse {
    let request_id = crate::guid::random();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let client_request_id = header("client-request-id");
    let authorization = header("authorization");
    let ctx = Ctx {
        client_request_id: client_request_id.clone().unwrap_or_else(|| request_id.clone()),
        request_id,
        authorization: authorization.as_deref(),
        token: state.token_serial(authorization.as_deref()),
    };
    if !state.latency.is_zero() {
        tokio::time::sleep(state.latency).await;
    }
    let path = request.uri().path().to_owned();
    let method = request.method().to_string();
    let response = if method == "GET" {
        match check_token(ctx.authorization, &state) {
            Err((code, message)) => to_response(&ctx, unauthorized(&ctx, code, message)),
            Ok(()) => {
                let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
                // Reads count against the same token bucket as writes, as Graph's identity throttling does.
                if let Err(retry_after) = state.take_throttle_token() {
                    let mut answer = ctx.error(429, "TooManyRequests", "Please retry again later.");
                    answer.headers.push(("Retry-After", retry_after.to_string()));
                    answer.headers.extend(state.own_limit_headers());
                    return finish(
                        &state,
                        &request,
                        &ctx,
                        client_request_id,
                        authorization.is_some(),
                        to_response(&ctx, answer),
                    );
                }
                super::directory_api::respond_get(&request, &state, &ctx, &segments)
                    .unwrap_or_else(|| super::list::respond(&request, &state, &ctx, &segments))
            }
        }
    } else if method == "DELETE" {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match check_token(ctx.authorization, &state) {
            Err((code, message)) => to_response(&ctx, unauthorized(&ctx, code, message)),
            Ok(()) => super::directory_api::respond_delete(&state, &ctx, &segments)
                .unwrap_or_else(|| ctx.http_error(400, "BadRequest", &format!("Invalid request URL '{path}'."))),
        }
    } else if path == "/v1.0/$batch" || path == "/beta/$batch" {
        let version = &path[1..path.len() - "/$batch".len()];
        let priority = priority_of(&request);
        to_response(&ctx, batch(&state, &ctx, &method, &body, version, priority).await)
    } else {
        to_response(&ctx, call(&state, &ctx, &method, &path, true).await)
    };
    finish(
        &state,
        &request,
        &ctx,
        client_request_id,
        authorization.is_some(),
        response,
    )
}

/// Logs the request as it arrived, with the status it got.
fn finish(
    state: &EmulatorState,
    request: &HttpRequest,
    ctx: &Ctx<'_>,
    client_request_id: Option<String>,
    had_authorization: bool,
    mut response: HttpResponse,
) -> HttpResponse {
    for (name, value) in state.usage_headers() {
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(actix_web::http::header::HeaderName::from_static(name), value);
        }
    }
    let content_length = request
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    state.graph_log.lock().expect("log lock").push(LoggedRequest {
        batched: false,
        method: request.method().to_string(),
        path_and_query: request.uri().to_string(),
        client_request_id,
        had_authorization,
        content_length,
        status: response.status().as_u16(),
        at: std::time::Instant::now(),
        token: ctx.token,
        priority: priority_of(request),
        retry_after: response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()),
    });
    response
}

fn priority_of(request: &HttpRequest) -> Option<String> {
    request
        .headers()
        .get("x-ms-throttle-priority")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `POST /{version}/$batch`: each sub-request is authenticated, throttled and answered on its own;
/// the batch itself answers 200 (`concepts/json-batching.md`).
async fn batch(
    state: &EmulatorState,
    ctx: &Ctx<'_>,
    method: &str,
    body: &[u8],
    version: &str,
    priority: Option<String>,
) -> Answer {
    if method != "POST" {
        return ctx.error(
            405,
            "Request_BadRequest",
            "The specified HTTP method is not allowed for the request target.",
        );
    }
    if let Err((code, message)) = check_token(ctx.authorization, state) {
        return unauthorized(ctx, code, message);
    }
    match state.faults.next_for_batch() {
        Some(Fault::Status { status, retry_after }) => {
            let mut answer = ctx.error(status, "serviceNotAvailable", "The batch could not be processed.");
            if let Some(seconds) = retry_after {
                answer.headers.push(("Retry-After", seconds.to_string()));
            }
            return answer;
        }
        Some(Fault::Hang(duration)) => {
            tokio::time::sleep(duration).await;
            return ctx.error(504, "gatewayTimeout", "The gateway did not receive a timely response.");
        }
        Some(Fault::Busy { retry_after }) => return busy(ctx, retry_after),
        _ => {}
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(body) else {
        return ctx.error(400, "BadRequest", "Invalid batch payload format.");
    };
    let Some(requests) = parsed["requests"].as_array() else {
        return ctx.error(400, "BadRequest", "Invalid batch payload format.");
    };
    if requests.len() > 20 {
        return ctx.error(400, "BadRequest", "Number of requests inside batch exceeds the limit.");
    }
    let mut ids = std::collections::HashSet::new();
    for r in requests {
        let id = r["id"].as_str().unwrap_or_default().to_ascii_lowercase();
        if id.is_empty() || !ids.insert(id) {
            return ctx.error(400, "BadRequest", "Batch request ids must be present and unique.");
        }
    }
    let mut responses = Vec::new();
    for r in requests {
        let url = r["url"].as_str().unwrap_or_default();
        let sub_method = r["method"].as_str().unwrap_or_default().to_ascii_uppercase();
        let sub_ctx = Ctx {
            request_id: crate::guid::random(),
            client_request_id: ctx.client_request_id.clone(),
            authorization: ctx.authorization,
            token: ctx.token,
        };
        // Sub-request URLs are relative to the version root of the batch endpoint.
        let path = format!("/{version}{url}");
        let answer = if sub_method == "GET" {
            read(state, &sub_ctx, &path)
        } else {
            call(state, &sub_ctx, &sub_method, &path, false).await
        };
        state.graph_log.lock().expect("log lock").push(LoggedRequest {
            batched: true,
            method: sub_method,
            path_and_query: path,
            client_request_id: Some(ctx.client_request_id.clone()),
            had_authorization: ctx.authorization.is_some(),
            content_length: None,
            status: answer.status,
            at: std::time::Instant::now(),
            token: ctx.token,
            priority: priority.clone(),
            retry_after: answer
                .headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
                .and_then(|(_, v)| v.parse().ok()),
        });
        let mut headers = serde_json::Map::new();
        for (name, value) in answer.headers.into_iter().chain(state.usage_headers()) {
            headers.insert(name.to_owned(), Value::String(value));
        }
        let mut sub = json!({ "id": r["id"], "status": answer.status, "headers": headers });
        if let Some(body) = answer.body {
            sub["body"] = body;
        }
        responses.push(sub);
    }
    // Graph returns sub-responses in any order; so does the emulator.
    fastrand::shuffle(&mut responses);
    Answer {
        status: 200,
        headers: vec![("Content-Type", "application/json".into())],
        body: Some(json!({ "responses": responses })),
    }
}

/// A `GET` inside a batch: one assignment, request or package (`list::read_item`).
fn read(state: &EmulatorState, ctx: &Ctx<'_>, path_and_query: &str) -> Answer {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let [version, "identityGovernance", "entitlementManagement", collection, id] = segments.as_slice() else {
        return ctx.error(400, "BadRequest", &format!("Invalid request URL '{path}'."));
    };
    match super::items::read_item(state, version, collection, id, query) {
        Ok(body) => Answer {
            status: 200,
            headers: vec![("Content-Type", "application/json".into())],
            body: Some(body),
        },
        Err((status, code, message)) => ctx.error(status, code, &message),
    }
}

/// One reprocess call, direct or inside a batch.
async fn call(state: &EmulatorState, ctx: &Ctx<'_>, method: &str, path: &str, authenticate: bool) -> Answer {
    if authenticate {
        if let Err((code, message)) = check_token(ctx.authorization, state) {
            return unauthorized(ctx, code, message);
        }
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (version, collection, id) = match segments.as_slice() {
        [
            version @ ("v1.0" | "beta"),
            "identityGovernance",
            "entitlementManagement",
            collection,
            id,
            "reprocess",
        ] => (*version, *collection, *id),
        [_, "identityGovernance", "entitlementManagement", collection, ..] => {
            return ctx.error(
                400,
                "BadRequest",
                &format!("Resource not found for the segment '{collection}'."),
            );
        }
        _ => return ctx.error(400, "BadRequest", &format!("Invalid request URL '{path}'.")),
    };
    if method != "POST" {
        return ctx.error(
            405,
            "Request_BadRequest",
            "The specified HTTP method is not allowed for the request target.",
        );
    }
    let Some(kind) = Kind::of(version, collection) else {
        return ctx.error(
            400,
            "BadRequest",
            &format!("Resource not found for the segment '{collection}'."),
        );
    };
    if !crate::guid::is_guid(id) {
        return ctx.error(400, "BadRequest", &format!("Invalid object identifier '{id}'."));
    }
    if let Err(retry_after) = state.take_throttle_token() {
        let mut answer = ctx.error(429, "TooManyRequests", "Please retry again later.");
        answer.headers.push(("Retry-After", retry_after.to_string()));
        answer.headers.extend(state.own_limit_headers());
        return answer;
    }
    let mut answer_after_work = None;
    if let Some(fault) = state.faults.next_for(id) {
        match fault {
            Fault::ExecutedThen(status) => answer_after_work = Some(status),
            Fault::Status { status, retry_after } => {
                let (code, message) = match status {
                    429 => ("TooManyRequests", "Please retry again later."),
                    503 => ("serviceNotAvailable", "The service is temporarily unavailable."),
                    504 => ("gatewayTimeout", "The gateway did not receive a timely response."),
                    500 => ("generalException", "An unexpected error occurred."),
                    _ => ("UnknownError", "Injected fault."),
                };
                let mut answer = ctx.error(status, code, message);
                if let Some(seconds) = retry_after {
                    answer.headers.push(("Retry-After", seconds.to_string()));
                }
                return answer;
            }
            Fault::Hang(duration) => {
                tokio::time::sleep(duration).await;
                return ctx.error(504, "gatewayTimeout", "The gateway did not receive a timely response.");
            }
            Fault::Busy { retry_after } => return busy(ctx, retry_after),
        }
    }
    if !*state.app_role_granted.lock().expect("role lock") {
        return ctx.error(
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        );
    }
    let outcome = {
        let mut tenant = state.tenant.lock().expect("tenant lock");
        match kind {
            Kind::Assignment => tenant.reprocess_assignment(id),
            Kind::Request => tenant.reprocess_request(id),
        }
    };
    if let Some(status) = answer_after_work {
        return ctx.error(
            status,
            "gatewayTimeout",
            "The gateway did not receive a timely response.",
        );
    }
    match outcome {
        Ok(()) => Answer {
            status: 202,
            headers: Vec::new(),
            body: None,
        },
        Err((status, code, message)) => ctx.error(status, code, &message),
    }
}

/// A 429 for a loaded service, not for the caller's limit.
fn busy(ctx: &Ctx<'_>, retry_after: u64) -> Answer {
    let mut answer = ctx.error(429, "TooManyRequests", "Please retry again later.");
    answer.headers.push(("Retry-After", retry_after.to_string()));
    answer
        .headers
        .push(("x-ms-throttle-information", "CPULimitExceeded".to_owned()));
    answer
}

fn unauthorized(ctx: &Ctx<'_>, code: &str, message: &str) -> Answer {
    let mut answer = ctx.error(401, code, message);
    answer.headers.push((
        "WWW-Authenticate",
        r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000""#.into(),
    ));
    answer
}

/// Messages from real Graph 401s (see `notes/graph-reprocess-facts.md` §4).
fn check_token(authorization: Option<&str>, state: &EmulatorState) -> Result<(), (&'static str, &'static str)> {
    const CODE: &str = "InvalidAuthenticationToken";
    let token = authorization.unwrap_or("").strip_prefix("Bearer ").unwrap_or("").trim();
    if token.is_empty() {
        return Err((CODE, "Access token is empty."));
    }
    let issued = state.issued_tokens.lock().expect("token lock");
    let Some((audience, expires, _)) = issued.get(token) else {
        return Err((CODE, "IDX14100: JWT is not well formed, there are no dots (.)."));
    };
    if *expires <= time::OffsetDateTime::now_utc() {
        return Err((CODE, "Lifetime validation failed, the token is expired."));
    }
    if !audience.eq_ignore_ascii_case(&state.base_url()) {
        return Err((CODE, "Access token validation failure. Invalid audience."));
    }
    Ok(())
}
