//! App Service managed-identity endpoint (`IDENTITY_ENDPOINT`, api-version 2019-08-01): requires the
//! `X-IDENTITY-HEADER` secret, answers `{"access_token","expires_on":"<epoch seconds as a string>",
//! "resource","token_type":"Bearer","client_id"}` (azure-docs `app-service/overview-managed-identity.md`).

use super::EmulatorState;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

const SYSTEM_ASSIGNED_CLIENT_ID: &str = "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b";

fn error(status: u16, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("valid status"))
        .insert_header(("X-CORRELATION-ID", crate::guid::random()))
        .json(json!({ "statusCode": status, "message": message, "correlationId": crate::guid::random() }))
}

pub async fn token(
    request: HttpRequest,
    query: web::Query<HashMap<String, String>>,
    state: web::Data<EmulatorState>,
) -> HttpResponse {
    if state.token_hangs() {
        // Longer than any budget: the handler must give up on its own deadline.
        tokio::time::sleep(std::time::Duration::from_secs(3_600)).await;
    }
    let header = request.headers().get("x-identity-header").and_then(|v| v.to_str().ok());
    if header != Some(state.identity_header.as_str()) {
        return error(401, "Unauthorized. The X-IDENTITY-HEADER header is missing or invalid.");
    }
    if query.get("api-version").map(String::as_str) != Some("2019-08-01") {
        return error(400, "Invalid api-version. Supported: 2019-08-01.");
    }
    let Some(resource) = query.get("resource").filter(|r| !r.is_empty()) else {
        return error(400, "The 'resource' query parameter is required.");
    };
    let client_id = match query.get("client_id") {
        Some(id)
            if state
                .user_assigned_client_ids
                .iter()
                .any(|known| known.eq_ignore_ascii_case(id)) =>
        {
            id.clone()
        }
        Some(_) => return error(400, "Unable to load the proper Managed Identity."),
        None => SYSTEM_ASSIGNED_CLIENT_ID.to_owned(),
    };
    state.token_fetches.fetch_add(1, Ordering::SeqCst);
    let expires = time::OffsetDateTime::now_utc() + state.token_lifetime;
    let token = format!("eyJ0eXAiOiJKV1Qi.emulated.{}", crate::guid::random());
    state.record_token(&token, resource, expires);
    HttpResponse::Ok().json(json!({
        "access_token": token,
        "expires_on": expires.unix_timestamp().to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": client_id,
    }))
}
