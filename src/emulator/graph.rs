//! Emulated Microsoft Graph: reprocess actions for v1.0 and beta, bearer-token checks, error bodies as
//! in `concepts/errors.md`, and the headers Graph sends (`request-id`, `client-request-id`,
//! `x-ms-ags-diagnostic`). Every request is logged as it arrived, before any check, so tests can assert
//! what reached "Graph".

use super::faults::Fault;
use super::{EmulatorState, LoggedRequest};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use serde_json::json;

pub fn routes(config: &mut web::ServiceConfig) {
    config.default_service(web::to(dispatch));
}

pub(super) struct Ctx {
    request_id: String,
    client_request_id: String,
}

impl Ctx {
    pub(super) fn builder(&self, status: u16) -> HttpResponseBuilder {
        let mut b = HttpResponse::build(StatusCode::from_u16(status).expect("valid status"));
        b.insert_header(("request-id", self.request_id.as_str()))
            .insert_header(("client-request-id", self.client_request_id.as_str()))
            .insert_header(("x-ms-ags-diagnostic", r#"{"ServerInfo":{"DataCenter":"Emulated","Slice":"E","Ring":"5","ScaleUnit":"003","RoleInstance":"EMU01"}}"#))
            .insert_header(("Strict-Transport-Security", "max-age=31536000"))
            .insert_header(("Cache-Control", "no-cache"));
        b
    }

    pub(super) fn error(&self, status: u16, code: &str, message: &str) -> HttpResponse {
        let date = time::OffsetDateTime::now_utc()
            .format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]"
            ))
            .unwrap_or_default();
        self.builder(status).content_type("application/json").body(
            json!({ "error": { "code": code, "message": message, "innerError": {
                "date": date, "request-id": self.request_id, "client-request-id": self.client_request_id } } })
            .to_string(),
        )
    }
}

async fn dispatch(request: HttpRequest, state: web::Data<EmulatorState>) -> HttpResponse {
    let request_id = crate::domain::Guid::new_random().to_string();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let client_request_id = header("client-request-id");
    let ctx = Ctx {
        client_request_id: client_request_id.clone().unwrap_or_else(|| request_id.clone()),
        request_id,
    };
    let response = respond(&request, &state, &ctx).await;
    state.graph_log.lock().expect("log lock").push(LoggedRequest {
        method: request.method().to_string(),
        path_and_query: request.uri().to_string(),
        client_request_id,
        had_authorization: request.headers().contains_key("authorization"),
        content_length: header("content-length"),
        status: response.status().as_u16(),
    });
    response
}

async fn respond(request: &HttpRequest, state: &EmulatorState, ctx: &Ctx) -> HttpResponse {
    // Authentication comes first, as in Graph.
    if let Err((code, message)) = check_token(request, state) {
        return ctx.error(401, code, message).into_builder_with_www_authenticate();
    }
    let path = request.uri().path();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if request.method() == actix_web::http::Method::GET {
        return super::list::respond(request, state, ctx, &segments);
    }
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
    if request.method() != actix_web::http::Method::POST {
        return ctx.error(
            405,
            "Request_BadRequest",
            "The specified HTTP method is not allowed for the request target.",
        );
    }
    let kind = match (version, collection) {
        ("v1.0", "assignments") | ("beta", "accessPackageAssignments") => Kind::Assignment,
        ("v1.0", "assignmentRequests") | ("beta", "accessPackageAssignmentRequests" | "assignmentRequests") => {
            Kind::Request
        }
        _ => {
            return ctx.error(
                400,
                "BadRequest",
                &format!("Resource not found for the segment '{collection}'."),
            );
        }
    };
    if crate::domain::Guid::parse(id).is_err() {
        return ctx.error(400, "BadRequest", &format!("Invalid object identifier '{id}'."));
    }
    match state.faults.next_for(id) {
        Some(Fault::Status { status, retry_after }) => {
            let (code, message) = match status {
                429 => ("TooManyRequests", "Please retry again later."),
                503 => ("serviceNotAvailable", "The service is temporarily unavailable."),
                504 => ("gatewayTimeout", "The gateway did not receive a timely response."),
                500 => ("generalException", "An unexpected error occurred."),
                _ => ("UnknownError", "Injected fault."),
            };
            let mut response = ctx.error(status, code, message);
            if let Some(seconds) = retry_after {
                response.headers_mut().insert(
                    actix_web::http::header::RETRY_AFTER,
                    actix_web::http::header::HeaderValue::from(seconds),
                );
            }
            return response;
        }
        Some(Fault::Hang(duration)) => {
            tokio::time::sleep(duration).await;
            return ctx.error(504, "gatewayTimeout", "The gateway did not receive a timely response.");
        }
        None => {}
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
    match outcome {
        Ok(()) => ctx.builder(202).insert_header(("Content-Length", "0")).finish(),
        Err((status, code, message)) => ctx.error(status, code, &message),
    }
}

enum Kind {
    Assignment,
    Request,
}

/// Messages from real Graph 401s (see `notes/graph-reprocess-facts.md` §4).
fn check_token(request: &HttpRequest, state: &EmulatorState) -> Result<(), (&'static str, &'static str)> {
    const CODE: &str = "InvalidAuthenticationToken";
    let header = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = header.strip_prefix("Bearer ").unwrap_or("").trim();
    if token.is_empty() {
        return Err((CODE, "Access token is empty."));
    }
    let issued = state.issued_tokens.lock().expect("token lock");
    let Some((audience, expires)) = issued.get(token) else {
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

trait WithWwwAuthenticate {
    fn into_builder_with_www_authenticate(self) -> HttpResponse;
}

impl WithWwwAuthenticate for HttpResponse {
    fn into_builder_with_www_authenticate(mut self) -> HttpResponse {
        self.headers_mut().insert(
            actix_web::http::header::WWW_AUTHENTICATE,
            actix_web::http::header::HeaderValue::from_static(
                r#"Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000""#,
            ),
        );
        self
    }
}
