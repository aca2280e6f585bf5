//! A Table service front for bearer tokens: Azurite takes Entra tokens only over https (`--oauth basic`
//! needs a certificate), so the emulator stands in front of it on loopback. It accepts only tokens its
//! own managed-identity endpoint issued for the Storage audience `https://storage.azure.com` (401
//! `InvalidAuthenticationInfo` otherwise, as Storage answers), then re-signs the request with Shared Key
//! Lite for Azurite's development account and forwards it unchanged. Path-style, like Azurite:
//! `http://127.0.0.1:<emulator>/devstoreaccount1/…`.

use super::EmulatorState;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use std::fmt;
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
    let signed = shared_key_lite(account, &key, &date, path);
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

/// The account key the front signs with; its `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct AccountKey(Vec<u8>);

impl AccountKey {
    /// The base64 text a connection string's `AccountKey` holds.
    pub(crate) fn parse(base64_text: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(base64_text.trim())
            .map_err(|_| "AccountKey is not base64".to_owned())?;
        if bytes.is_empty() {
            return Err("AccountKey is empty".to_owned());
        }
        Ok(Self(bytes))
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountKey(<redacted>)")
    }
}

/// Shared Key Lite for the Table service, as Storage documents it: `StringToSign = x-ms-date + "\n" +
/// "/" + account + encoded URI path`. For a path-style endpoint (Azurite) the path already starts with
/// the account, so it appears twice, as Azurite's `TableSharedKeyLiteAuthenticator` expects. The
/// signature is base64(HMAC-SHA256(key, string to sign)).
fn shared_key_lite(account: &str, key: &AccountKey, x_ms_date: &str, encoded_path: &str) -> String {
    let string_to_sign = format!("{x_ms_date}\n/{account}{encoded_path}");
    let signature = STANDARD.encode(hmac_sha256(&key.0, string_to_sign.as_bytes()));
    format!("SharedKeyLite {account}:{signature}")
}

/// HMAC-SHA256 (RFC 2104), block size 64.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block_key.map(|k| k ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 1 and test case 6 (a key longer than the block).
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn keys_are_base64_and_never_shown() {
        assert!(AccountKey::parse("not base64!").is_err());
        let key = AccountKey::parse("c2VjcmV0").unwrap();
        assert_eq!(format!("{key:?}"), "AccountKey(<redacted>)");
    }
}
