//! A Table service front for bearer tokens: Azurite takes Entra tokens only over https (`--oauth basic`
//! needs a certificate), so the emulator stands in front of it on loopback. It accepts only tokens its
//! own managed-identity endpoint issued for the Storage audience `https://storage.azure.com` (401
//! `InvalidAuthenticationInfo` otherwise, as Storage answers), then re-signs the request with Shared Key
//! Lite for Azurite's development account and forwards it unchanged. Path-style, like Azurite:
//! `http://127.0.0.1:<emulator>/devstoreaccount1/…`.

use super::EmulatorState;
use actix_web::{HttpRequest, HttpResponse, web};
use std::sync::atomic::Ordering;

/// The audience Storage tokens carry (`https://storage.azure.com/.default` → resource without `/.default`).
pub const STORAGE_AUDIENCE: &str = "https://storage.azure.com";

fn refuse(state: &EmulatorState, message: &str) -> HttpResponse {
    state.storage_refusals.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Unauthorized()
        .insert_header(("WWW-Authenticate", "Bearer authorization_uri=https://login.microsoftonline.com/common/oauth2/authorize resource_id=https://storage.azure.com"))
        .json(serde_json::json!({ "odata.error": { "code": "InvalidAuthenticationInfo",
            "message": { "lang": "en-US", "value": message } } }))
}

pub(super) async fn forward(request: HttpRequest, body: web::Bytes, state: web::Data<EmulatorState>) -> HttpResponse {
    let authorization = request
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(token) = authorization.strip_prefix("Bearer ").map(str::trim) else {
        return refuse(&state, "Authentication scheme must be Bearer.");
    };
    let audience = state
        .issued_tokens
        .lock()
        .expect("token lock")
        .get(token)
        .filter(|(_, expires, _)| *expires > time::OffsetDateTime::now_utc())
        .map(|(audience, _, _)| audience.clone());
    match audience {
        None => {
            return refuse(
                &state,
                "Server failed to authenticate the request: unknown or expired token.",
            );
        }
        Some(a) if !a.eq_ignore_ascii_case(STORAGE_AUDIENCE) => {
            return refuse(&state, "Issuer validation failed: the token's audience is not Storage.");
        }
        Some(_) => {}
    }
    let Some((upstream, key)) = state.table_upstream.lock().expect("upstream lock").clone() else {
        return HttpResponse::ServiceUnavailable().body("no Table service behind the emulator");
    };
    state.storage_requests.fetch_add(1, Ordering::SeqCst);
    let path = request.uri().path();
    let date = request
        .headers()
        .get("x-ms-date")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let account = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let signed = crate::storage::sign_shared_key_lite(account, &key, &date, path);
    let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let origin = upstream.trim_end_matches('/');
    let mut outgoing = reqwest::Client::new().request(
        reqwest::Method::from_bytes(request.method().as_str().as_bytes()).unwrap_or(reqwest::Method::GET),
        format!("{origin}{path}{query}"),
    );
    for (name, value) in request.headers() {
        if !matches!(name.as_str(), "authorization" | "host" | "content-length") {
            outgoing = outgoing.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = match outgoing
        .header("Authorization", signed)
        .body(body.to_vec())
        .send()
        .await
    {
        Ok(answer) => answer,
        Err(e) => return HttpResponse::BadGateway().body(e.to_string()),
    };
    let status = actix_web::http::StatusCode::from_u16(answer.status().as_u16())
        .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
    let mut response = HttpResponse::build(status);
    for (name, value) in answer.headers() {
        let name = name.as_str();
        if name == "content-type" || name.starts_with("x-ms-") || name == "etag" || name == "location" {
            response.insert_header((name, value.as_bytes()));
        }
    }
    response.body(answer.bytes().await.unwrap_or_default())
}
