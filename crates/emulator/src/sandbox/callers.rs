//! The sandbox's stand-in for App Service authentication. In Azure the platform validates the caller's
//! Entra token before the host sees the request, strips every `X-MS-CLIENT-PRINCIPAL*` header the caller
//! sent, and injects its own. Here there are no tokens: a caller picks one of the sample callers below
//! with `x-sandbox-caller: <name>`, and the front injects that caller's principal exactly as the
//! platform would, after stripping whatever the caller typed. Without the header the call has no
//! principal, as a call with the function key alone has in Azure.

use crate::sample;
use serde_json::{Value, json};

/// The header that picks a sample caller. It never reaches the handler: the platform has no such
/// header, so the handler must not learn to depend on it.
pub(super) const CALLER_HEADER: &str = "x-sandbox-caller";

/// The prefix of the headers App Service authentication owns (`X-MS-CLIENT-PRINCIPAL`, `-ID`, `-NAME`,
/// `-IDP`): a caller's own are dropped, so a forged principal never reaches the handler.
const PRINCIPAL_PREFIX: &str = "x-ms-client-principal";

/// The roles the sandbox configures in `CALLER_SCOPES` (unless you set your own).
pub(super) const ROLE_ALL: &str = "Reprocess.All";
pub(super) const ROLE_GENERAL: &str = "Reprocess.Catalog.General";
pub(super) const ROLE_HR: &str = "Reprocess.Catalog.HumanResources";

/// A calling application, as Entra would describe it in its app-only access token.
#[derive(Debug)]
pub(super) struct SampleCaller {
    pub(super) name: &'static str,
    pub(super) display_name: &'static str,
    /// The service principal's object ID (`oid`): what the audit records name.
    pub(super) object_id: &'static str,
    /// The application's client ID (`appid`).
    pub(super) app_id: &'static str,
    pub(super) roles: &'static [&'static str],
    pub(super) about: &'static str,
}

pub(super) const CALLERS: &[SampleCaller] = &[
    SampleCaller {
        name: "admin",
        display_name: "Identity operations",
        object_id: "5a0e0001-0000-4000-8000-00000000ad01",
        app_id: "5a0e0001-0000-4000-8000-00000000a901",
        roles: &[ROLE_ALL],
        about: "the whole deployment scope (both catalogs)",
    },
    SampleCaller {
        name: "helpdesk-sales",
        display_name: "Sales helpdesk",
        object_id: "5a0e0002-0000-4000-8000-00000000ad02",
        app_id: "5a0e0002-0000-4000-8000-00000000a902",
        roles: &[ROLE_GENERAL],
        about: "catalog General only: Payroll (Human resources) ends out_of_scope",
    },
    SampleCaller {
        name: "payroll-team",
        display_name: "Payroll team",
        object_id: "5a0e0003-0000-4000-8000-00000000ad03",
        app_id: "5a0e0003-0000-4000-8000-00000000a903",
        roles: &[ROLE_HR],
        about: "catalog Human resources only: Payroll, nothing in General",
    },
    SampleCaller {
        name: "guest",
        display_name: "Unassigned app",
        object_id: "5a0e0004-0000-4000-8000-00000000ad04",
        app_id: "5a0e0004-0000-4000-8000-00000000a904",
        roles: &[],
        about: "a valid token but no app role of this API: 403",
    },
];

pub(super) fn by_name(name: &str) -> Option<&'static SampleCaller> {
    CALLERS.iter().find(|c| c.name.eq_ignore_ascii_case(name.trim()))
}

pub(super) fn by_object_id(object_id: &str) -> Option<&'static SampleCaller> {
    CALLERS.iter().find(|c| c.object_id == object_id)
}

pub(super) fn names() -> Vec<&'static str> {
    CALLERS.iter().map(|c| c.name).collect()
}

/// The scope each sample role grants, as `CALLER_SCOPES` spells it.
fn role_scope(role: &str) -> Value {
    match role {
        ROLE_GENERAL => json!({ "catalogIds": [sample::CATALOG_GENERAL] }),
        ROLE_HR => json!({ "catalogIds": [sample::CATALOG_HR] }),
        _ => json!({}),
    }
}

/// `CALLER_SCOPES` for the sample callers' roles.
pub(super) fn caller_scopes() -> String {
    json!({
        ROLE_ALL: role_scope(ROLE_ALL),
        ROLE_GENERAL: role_scope(ROLE_GENERAL),
        ROLE_HR: role_scope(ROLE_HR),
    })
    .to_string()
}

impl SampleCaller {
    /// The headers App Service authentication injects for this caller: `X-MS-CLIENT-PRINCIPAL` (base64
    /// of the claims JSON the platform forwards for an app-only Entra token) and its `-ID`, `-NAME` and
    /// `-IDP` companions.
    pub(super) fn principal_headers(&self) -> Vec<(String, String)> {
        let mut claims = vec![
            json!({ "typ": "aud", "val": "api://reprocess-handler" }),
            json!({ "typ": "iss", "val": "https://sts.windows.net/00000000-0000-4000-8000-0000000000aa/" }),
            json!({ "typ": "appid", "val": self.app_id }),
            json!({ "typ": "appidacr", "val": "2" }),
            json!({ "typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": self.object_id }),
            json!({ "typ": "http://schemas.microsoft.com/identity/claims/tenantid", "val": "00000000-0000-4000-8000-0000000000aa" }),
        ];
        claims.extend(self.roles.iter().map(|role| json!({ "typ": "roles", "val": role })));
        let principal = json!({
            "auth_typ": "aad",
            "claims": claims,
            "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
            "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
        });
        vec![
            (
                "X-MS-CLIENT-PRINCIPAL".into(),
                crate::host::base64(principal.to_string().as_bytes()),
            ),
            ("X-MS-CLIENT-PRINCIPAL-ID".into(), self.object_id.into()),
            ("X-MS-CLIENT-PRINCIPAL-NAME".into(), self.display_name.into()),
            ("X-MS-CLIENT-PRINCIPAL-IDP".into(), "aad".into()),
        ]
    }

    fn view(&self) -> Value {
        json!({
            "name": self.name,
            "displayName": self.display_name,
            "objectId": self.object_id,
            "appId": self.app_id,
            "roles": self.roles,
            "scopes": self.roles.iter().map(|r| (r.to_string(), role_scope(r))).collect::<serde_json::Map<_, _>>(),
            "what": self.about,
        })
    }
}

/// A caller asked for a name that is not a sample caller.
#[derive(Debug)]
pub(super) struct UnknownCaller(pub(super) String);

impl UnknownCaller {
    pub(super) fn body(&self) -> Value {
        let shown: String = self.0.chars().filter(|c| !c.is_control()).take(64).collect();
        json!({ "error": {
            "code": "unknown_sandbox_caller",
            "message": format!(
                "{CALLER_HEADER} {shown:?} is not a sample caller; use one of: {} (GET /callers lists them with their roles)",
                names().join(", ")
            ),
            "callers": names(),
        }})
    }
}

/// What App Service authentication does to a request's headers: every `X-MS-CLIENT-PRINCIPAL*` header
/// the caller sent goes, and the chosen sample caller's principal comes in its place. The choice header
/// goes too.
pub(super) fn authenticate(
    headers: &mut Vec<(String, String)>,
) -> Result<Option<&'static SampleCaller>, UnknownCaller> {
    let chosen = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(CALLER_HEADER))
        .map(|(_, v)| v.clone());
    headers.retain(|(k, _)| {
        let k = k.to_ascii_lowercase();
        !k.starts_with(PRINCIPAL_PREFIX) && k != CALLER_HEADER
    });
    let Some(chosen) = chosen else {
        return Ok(None);
    };
    let caller = by_name(&chosen).ok_or(UnknownCaller(chosen))?;
    headers.extend(caller.principal_headers());
    Ok(Some(caller))
}

/// What `GET /callers` shows: the sample callers, and whether the handler trusts their principals.
pub(super) fn view(setup: &AuthSetup) -> Value {
    json!({
        "header": CALLER_HEADER,
        "websiteAuthEnabled": setup.platform_auth,
        // As JSON when it parses (the handler refused to start otherwise), so it reads as configured.
        "callerScopes": setup.caller_scopes.as_deref().map(|text| serde_json::from_str(text).unwrap_or_else(|_| json!(text))),
        "callerScopesFrom": if setup.own_caller_scopes { "your environment" } else { "the sandbox" },
        "requireAuthenticatedCaller": setup.require_authenticated_caller,
        "callers": CALLERS.iter().map(SampleCaller::view).collect::<Vec<_>>(),
    })
}

/// How the handler was started with respect to authentication, for `GET /callers`.
#[derive(Debug, Clone, Default)]
pub(super) struct AuthSetup {
    pub(super) platform_auth: bool,
    pub(super) caller_scopes: Option<String>,
    pub(super) own_caller_scopes: bool,
    pub(super) require_authenticated_caller: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_principals_are_replaced_and_unknown_callers_refused() {
        let mut headers = vec![
            ("X-MS-CLIENT-PRINCIPAL".to_owned(), "forged".to_owned()),
            ("x-ms-client-principal-id".to_owned(), "forged".to_owned()),
            ("Content-Type".to_owned(), "application/json".to_owned()),
        ];
        assert!(authenticate(&mut headers).unwrap().is_none());
        assert_eq!(headers.len(), 1);
        headers.push(("X-Sandbox-Caller".into(), "Payroll-Team".into()));
        headers.push(("X-MS-CLIENT-PRINCIPAL".into(), "forged".into()));
        let caller = authenticate(&mut headers).unwrap().unwrap();
        assert_eq!(caller.name, "payroll-team");
        assert!(!headers.iter().any(|(_, v)| v == "forged"));
        assert!(!headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(CALLER_HEADER)));
        assert_eq!(headers.len(), 5);
        let mut headers = vec![(CALLER_HEADER.to_owned(), "bob".to_owned())];
        let unknown = authenticate(&mut headers).unwrap_err().body();
        assert!(unknown["error"]["message"].as_str().unwrap().contains("helpdesk-sales"));
    }

    #[test]
    fn sample_scopes_name_every_role_a_caller_holds() {
        let scopes: Value = serde_json::from_str(&caller_scopes()).unwrap();
        for caller in CALLERS {
            for role in caller.roles {
                assert!(scopes.get(*role).is_some(), "{role}");
            }
        }
    }
}
