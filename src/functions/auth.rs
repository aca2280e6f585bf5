//! Who may call the HTTP functions, and what they may touch.
//!
//! App Service authentication checks the caller's Entra token before the host sees the request, puts
//! the verified principal in `X-MS-CLIENT-PRINCIPAL` (base64 JSON: `auth_typ`, `claims`, `name_typ`,
//! `role_typ`) and strips any such header a caller sent — but only while it is on, which the platform
//! says with `WEBSITE_AUTH_ENABLED=True`. Without it the headers are whatever the caller typed, so they
//! are kept as unverified hints (`http_io::caller`) and never decide anything.
//!
//! With a verified principal and `CALLER_SCOPES`, the call's scope is the deployment's narrowed to
//! what the caller's roles grant; the narrowing also travels with every queue message the call
//! enqueues (`work::Meta::scope`).

use super::http_io::error_body;
use crate::config::Settings;
use crate::domain::{AllowedScope, Caller, VerifiedPrincipal};
use crate::host::{HttpReply, HttpTrigger};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

/// The header App Service authentication sets.
pub const PRINCIPAL_HEADER: &str = "X-MS-CLIENT-PRINCIPAL";
/// Longest `X-MS-CLIENT-PRINCIPAL` read, in bytes of base64: an app token's claims are a few KiB, and
/// a header this large is refused rather than decoded.
pub const MAX_PRINCIPAL_BYTES: usize = 32 * 1024;

/// The claim types of an Entra access token as App Service authentication forwards them.
const OBJECT_ID_CLAIMS: &[&str] = &["http://schemas.microsoft.com/identity/claims/objectidentifier", "oid"];
const APP_ID_CLAIMS: &[&str] = &["appid", "azp"];
const ROLE_CLAIMS: &[&str] = &["roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"];

#[derive(Debug, Deserialize)]
struct ClientPrincipal {
    auth_typ: String,
    claims: Vec<Claim>,
    #[serde(default)]
    role_typ: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Claim {
    typ: String,
    val: String,
}

/// Why an `X-MS-CLIENT-PRINCIPAL` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    #[error("{PRINCIPAL_HEADER} is {0} bytes; at most {MAX_PRINCIPAL_BYTES} are read")]
    TooLarge(usize),
    #[error("{PRINCIPAL_HEADER} is not base64")]
    NotBase64,
    #[error("{PRINCIPAL_HEADER} is not the platform's principal JSON: {0}")]
    NotJson(String),
}

/// Decodes `X-MS-CLIENT-PRINCIPAL`: bounded, base64, JSON with `auth_typ` and `claims` (a repeated key
/// refuses it, like any other JSON the handler reads).
pub fn decode_principal(header: &str) -> Result<VerifiedPrincipal, PrincipalError> {
    let header = header.trim();
    if header.len() > MAX_PRINCIPAL_BYTES {
        return Err(PrincipalError::TooLarge(header.len()));
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine.decode(header).map_err(|_| PrincipalError::NotBase64)?;
    let text = String::from_utf8(bytes).map_err(|_| PrincipalError::NotJson("not UTF-8".into()))?;
    let value = crate::json::parse_strict(&text, 10_000).map_err(|e| PrincipalError::NotJson(e.to_string()))?;
    let principal: ClientPrincipal =
        serde_json::from_value(value).map_err(|e| PrincipalError::NotJson(e.to_string()))?;
    if principal.auth_typ.trim().is_empty() {
        return Err(PrincipalError::NotJson("auth_typ is empty".into()));
    }
    let first = |types: &[&str]| {
        principal
            .claims
            .iter()
            .find(|c| types.contains(&c.typ.as_str()))
            .and_then(|c| crate::domain::caller::clean(&c.val))
    };
    let role_typ = principal.role_typ.as_deref();
    let mut roles: Vec<String> = Vec::new();
    for claim in &principal.claims {
        if ROLE_CLAIMS.contains(&claim.typ.as_str()) || Some(claim.typ.as_str()) == role_typ {
            if let Some(role) = crate::domain::caller::clean(&claim.val) {
                if !roles.contains(&role) {
                    roles.push(role);
                }
            }
        }
    }
    Ok(VerifiedPrincipal {
        object_id: first(OBJECT_ID_CLAIMS),
        app_id: first(APP_ID_CLAIMS),
        roles,
    })
}

/// What one call may do: its scope, and the verified caller for the audit records.
#[derive(Debug, Clone, Default)]
pub struct Authorized {
    /// The deployment's scope, narrowed by the caller's roles.
    pub scope: Option<AllowedScope>,
    /// What the caller's roles narrowed (written into every queue message the call enqueues).
    pub narrowing: Option<AllowedScope>,
    pub principal: Option<VerifiedPrincipal>,
    /// The caller's roles that are configured in `CALLER_SCOPES`.
    pub granted_roles: Vec<String>,
}

impl Authorized {
    /// Who owns what this call starts: the verified caller's object ID (else its application ID).
    pub fn owner(&self) -> Option<&str> {
        let principal = self.principal.as_ref()?;
        principal.object_id.as_deref().or(principal.app_id.as_deref())
    }

    /// `caller` with the verified principal added (kept apart from the unverified hints).
    pub fn name_in(&self, mut caller: Caller) -> Caller {
        if let Some(principal) = &self.principal {
            caller.verified_principal_id.clone_from(&principal.object_id);
            caller.verified_app_id.clone_from(&principal.app_id);
            let roles = if self.granted_roles.is_empty() {
                &principal.roles
            } else {
                &self.granted_roles
            };
            caller.verified_roles = (!roles.is_empty()).then(|| roles.join(","));
        }
        caller.cleaned()
    }
}

fn unauthenticated(message: String, extra: serde_json::Value) -> HttpReply {
    HttpReply::json(401, error_body("unauthenticated", &message, extra))
}

/// The verified principal of a request, if the platform verified one (401 for a malformed header).
fn verified_principal(settings: &Settings, request: &HttpTrigger) -> Result<Option<VerifiedPrincipal>, HttpReply> {
    if !settings.platform_auth {
        return Ok(None);
    }
    let Some(header) = request.header(PRINCIPAL_HEADER) else {
        return Ok(None);
    };
    match decode_principal(header) {
        Ok(principal) => Ok(Some(principal)),
        Err(e) => {
            tracing::warn!(error = %e, "refused: malformed client principal");
            Err(unauthenticated(
                format!("the caller's principal could not be read: {e}"),
                json!({ "header": PRINCIPAL_HEADER }),
            ))
        }
    }
}

/// Whether the request may go on, and with what scope: 401 without a verified principal when
/// `REQUIRE_AUTHENTICATED_CALLER` is on, 403 for a verified caller none of whose roles is configured in
/// `CALLER_SCOPES`. Without a verified principal (and not required) the call keeps the deployment's
/// scope, as with the function key alone.
pub fn authorize(settings: &Settings, request: &HttpTrigger) -> Result<Authorized, HttpReply> {
    let principal = verified_principal(settings, request)?;
    let Some(principal) = principal else {
        if settings.require_authenticated_caller {
            let (message, missing) = if settings.platform_auth {
                (
                    format!(
                        "no authenticated caller: the request has no {PRINCIPAL_HEADER} header; call with an Entra token for this API (REQUIRE_AUTHENTICATED_CALLER is true)"
                    ),
                    PRINCIPAL_HEADER,
                )
            } else {
                (
                    "no authenticated caller: App Service authentication is off (WEBSITE_AUTH_ENABLED is not True), so no caller can be verified and REQUIRE_AUTHENTICATED_CALLER refuses every call".to_owned(),
                    "WEBSITE_AUTH_ENABLED",
                )
            };
            return Err(unauthenticated(
                message,
                json!({ "missing": missing, "setting": "REQUIRE_AUTHENTICATED_CALLER" }),
            ));
        }
        return Ok(Authorized {
            scope: settings.allowed.clone(),
            ..Authorized::default()
        });
    };
    let Some(caller_scopes) = &settings.caller_scopes else {
        return Ok(Authorized {
            scope: settings.allowed.clone(),
            principal: Some(principal),
            ..Authorized::default()
        });
    };
    let Some(grant) = caller_scopes.grant(&principal.roles) else {
        let required = caller_scopes.role_values();
        let message = format!(
            "the caller holds none of the app roles this API grants ({}); ask an administrator to assign one",
            required.join(", ")
        );
        tracing::warn!(roles = ?principal.roles, "refused: caller holds no configured app role");
        return Err(HttpReply::json(
            403,
            error_body(
                "forbidden",
                &message,
                json!({ "requiredRoles": required, "callerRoles": principal.roles, "setting": "CALLER_SCOPES" }),
            ),
        ));
    };
    Ok(Authorized {
        scope: AllowedScope::narrowed(settings.allowed.as_ref(), grant.narrowing.as_ref()),
        narrowing: grant.narrowing,
        principal: Some(principal),
        granted_roles: grant.roles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(json: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(json)
    }

    #[test]
    fn decodes_an_app_principal() {
        let json = r#"{"auth_typ":"aad","name_typ":"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
            "role_typ":"http://schemas.microsoft.com/ws/2008/06/identity/claims/role","claims":[
            {"typ":"http://schemas.microsoft.com/identity/claims/objectidentifier","val":"oid-1"},
            {"typ":"azp","val":"app-1"},
            {"typ":"http://schemas.microsoft.com/ws/2008/06/identity/claims/role","val":"Reprocess.All"},
            {"typ":"roles","val":"Reprocess.Catalog.Sales"},
            {"typ":"roles","val":"Reprocess.All"}]}"#;
        let p = decode_principal(&encode(json)).unwrap();
        assert_eq!(p.object_id.as_deref(), Some("oid-1"));
        assert_eq!(p.app_id.as_deref(), Some("app-1"));
        assert_eq!(p.roles, ["Reprocess.All", "Reprocess.Catalog.Sales"]);
        // Without padding, as some proxies forward it.
        let unpadded = encode(r#"{"auth_typ":"aad","claims":[]}"#)
            .trim_end_matches('=')
            .to_owned();
        assert!(decode_principal(&unpadded).unwrap().roles.is_empty());
    }

    #[test]
    fn refuses_malformed_principals() {
        assert_eq!(decode_principal("not base64!"), Err(PrincipalError::NotBase64));
        assert!(matches!(
            decode_principal(&"A".repeat(MAX_PRINCIPAL_BYTES + 4)),
            Err(PrincipalError::TooLarge(_))
        ));
        for bad in [
            "not json",
            "[]",
            r#"{"claims":[]}"#,
            r#"{"auth_typ":"aad"}"#,
            r#"{"auth_typ":"","claims":[]}"#,
            r#"{"auth_typ":"aad","claims":[{"typ":"roles"}]}"#,
            r#"{"auth_typ":"aad","auth_typ":"x","claims":[]}"#,
            r#"{"auth_typ":"aad","claims":[{"typ":"roles","val":1}]}"#,
        ] {
            assert!(
                matches!(decode_principal(&encode(bad)), Err(PrincipalError::NotJson(_))),
                "{bad}"
            );
        }
    }
}
