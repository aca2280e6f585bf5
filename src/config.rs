//! Settings from the environment (Function App settings), typed with `envy` and then validated so
//! a bad value stops start-up with a message that names the variable.

use crate::domain::{AccessPackageId, AllowedScope, CallerScopes, CatalogId, Guid, GuidError, ScopeLists};
use serde::Deserialize;
use std::time::Duration;
use url::Url;

/// Graph roots of the national clouds (Graph docs, `concepts/deployments.md`). Tokens are minted for
/// one of these audiences only, so anything else is refused rather than sent a token.
pub const KNOWN_GRAPH_ROOTS: &[&str] = &[
    "https://graph.microsoft.com",
    "https://graph.microsoft.us",
    "https://dod-graph.microsoft.us",
    "https://microsoftgraph.chinacloudapi.cn",
];

use crate::setting::invalid;
pub use crate::setting::{ConfigError, is_loopback};

/// The raw settings exactly as the environment spells them (envy lower-cases variable names).
#[derive(Debug, Deserialize)]
struct RawSettings {
    functions_customhandler_port: Option<u16>,
    graph_base_url: Option<String>,
    graph_api_version: Option<String>,
    reprocess_queue_name: Option<String>,
    azure_client_id: Option<String>,
    credential_source: Option<String>,
    graph_max_concurrency: Option<usize>,
    graph_attempt_timeout_seconds: Option<u64>,
    graph_max_attempts: Option<u32>,
    graph_batch_size: Option<usize>,
    http_budget_seconds: Option<u64>,
    queue_budget_seconds: Option<u64>,
    queue_max_attempts: Option<u32>,
    max_ids_per_call: Option<usize>,
    http_sync_max_ids: Option<usize>,
    max_body_bytes: Option<usize>,
    allowed_catalog_ids: Option<String>,
    allowed_access_package_ids: Option<String>,
    audit_table_name: Option<String>,
    operations_table_name: Option<String>,
    operations_retention_days: Option<u64>,
    operations_results_page_size: Option<usize>,
    drift_detection_enabled: Option<String>,
    drift_package_ids: Option<String>,
    website_auth_enabled: Option<String>,
    require_authenticated_caller: Option<String>,
    caller_scopes: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    V1,
    Beta,
}

impl ApiVersion {
    pub fn segment(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1.0",
            ApiVersion::Beta => "beta",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// App Service / Functions managed identity (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`), or IMDS.
    ManagedIdentity,
    /// `az account get-access-token`, for local runs against a real tenant.
    AzureCli,
}

#[derive(Debug, Clone)]
pub struct GraphSettings {
    /// Scheme + host (+ port), no trailing slash, e.g. `https://graph.microsoft.com`.
    pub base_url: Url,
    pub api_version: ApiVersion,
    /// `{base}/.default`: the token audience follows the cloud.
    pub scope: String,
    pub max_concurrency: usize,
    pub attempt_timeout: Duration,
    pub max_attempts: u32,
    /// Reprocess calls per Graph request: 1 = no batching, up to 20 = one `$batch` (Graph's limit).
    pub batch_size: usize,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub port: u16,
    pub graph: GraphSettings,
    pub credential: CredentialSource,
    pub client_id: Option<Guid>,
    pub queue_name: String,
    pub http_budget: Duration,
    pub queue_budget: Duration,
    pub queue_max_attempts: u32,
    pub max_ids_per_call: usize,
    /// HTTP calls with more IDs are split into queue messages and answered 202.
    pub http_sync_max_ids: usize,
    pub max_body_bytes: usize,
    /// `ALLOWED_CATALOG_IDS` / `ALLOWED_ACCESS_PACKAGE_IDS`: when set, only assignments and requests of
    /// these catalogs or packages are reprocessed (`None`: no scope, the whole tenant).
    pub allowed: Option<AllowedScope>,
    /// `AUDIT_TABLE_NAME`: the Storage table audit records are written to.
    pub audit_table: String,
    /// The app's storage account (the host's own `AzureWebJobsStorage` settings), if configured.
    pub storage: Option<crate::storage::StorageSettings>,
    /// The table holding operation state (`crate::operations`).
    pub operations_table: crate::storage::TableName,
    /// How long operation records are kept and answered.
    pub operations_retention: Duration,
    /// Per-ID results per status answer.
    pub operations_page_size: usize,
    /// `DRIFT_DETECTION_ENABLED`: drift detection reads group memberships and app-role assignments,
    /// which need Graph app roles beyond reprocess; off unless the infra granted them.
    pub drift_detection: bool,
    /// `DRIFT_PACKAGE_IDS`: packages the heal timer checks for drift on every run.
    pub drift_package_ids: Vec<AccessPackageId>,
    /// `WEBSITE_AUTH_ENABLED`, set by the platform while App Service authentication is on: only then did
    /// the platform put the `X-MS-CLIENT-PRINCIPAL*` headers there (and strip any a caller sent), so only
    /// then are they trusted.
    pub platform_auth: bool,
    /// `REQUIRE_AUTHENTICATED_CALLER`: HTTP calls without a verified principal are answered 401.
    pub require_authenticated_caller: bool,
    /// `CALLER_SCOPES`: what each app role of a verified caller may touch (`None`: roles are not checked).
    pub caller_scopes: Option<CallerScopes>,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        // An empty app setting means "not set", as in the portal.
        let vars: Vec<(String, String)> = vars.into_iter().filter(|(_, v)| !v.trim().is_empty()).collect();
        let storage = crate::storage::StorageSettings::from_vars(&vars)?;
        let raw: RawSettings = envy::from_iter(vars).map_err(|e| ConfigError::Env(e.to_string()))?;
        Self::validate(raw, storage)
    }

    fn validate(raw: RawSettings, storage: Option<crate::storage::StorageSettings>) -> Result<Self, ConfigError> {
        let base_url = parse_graph_base_url(raw.graph_base_url.as_deref().unwrap_or(KNOWN_GRAPH_ROOTS[0]))?;
        let api_version = match raw.graph_api_version.as_deref().map(str::trim) {
            None | Some("v1.0") | Some("v1") => ApiVersion::V1,
            Some("beta") => ApiVersion::Beta,
            Some(other) => {
                return Err(invalid(
                    "GRAPH_API_VERSION",
                    format!("must be v1.0 or beta, got {other:?}"),
                ));
            }
        };
        let scope = format!("{}/.default", base_url.as_str().trim_end_matches('/'));
        let credential = match raw.credential_source.as_deref().map(str::trim) {
            None | Some("managed_identity") => CredentialSource::ManagedIdentity,
            Some("azure_cli") => CredentialSource::AzureCli,
            Some(other) => {
                return Err(invalid(
                    "CREDENTIAL_SOURCE",
                    format!("must be managed_identity or azure_cli, got {other:?}"),
                ));
            }
        };
        let client_id = raw
            .azure_client_id
            .map(|s| {
                Guid::parse(s.trim())
                    .map_err(|e| invalid("AZURE_CLIENT_ID", format!("the user-assigned identity's client ID {e}")))
            })
            .transpose()?;
        let queue_name = raw.reprocess_queue_name.unwrap_or_else(|| "reprocess-requests".into());
        validate_queue_name(&queue_name)?;

        let in_range = |variable: &'static str, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(value)
            } else {
                Err(invalid(
                    variable,
                    format!("must be between {min} and {max}, got {value}"),
                ))
            }
        };
        let max_concurrency = in_range(
            "GRAPH_MAX_CONCURRENCY",
            raw.graph_max_concurrency.unwrap_or(16) as u64,
            1,
            256,
        )? as usize;
        let attempt_timeout = in_range(
            "GRAPH_ATTEMPT_TIMEOUT_SECONDS",
            raw.graph_attempt_timeout_seconds.unwrap_or(20),
            1,
            300,
        )?;
        let max_attempts = in_range("GRAPH_MAX_ATTEMPTS", raw.graph_max_attempts.unwrap_or(5).into(), 1, 20)? as u32;
        let batch_size = in_range("GRAPH_BATCH_SIZE", raw.graph_batch_size.unwrap_or(20) as u64, 1, 20)? as usize;
        let http_budget = in_range("HTTP_BUDGET_SECONDS", raw.http_budget_seconds.unwrap_or(100), 1, 220)?;
        let queue_budget = in_range(
            "QUEUE_BUDGET_SECONDS",
            raw.queue_budget_seconds.unwrap_or(240),
            1,
            3_000,
        )?;
        let queue_max_attempts =
            in_range("QUEUE_MAX_ATTEMPTS", raw.queue_max_attempts.unwrap_or(6).into(), 1, 100)? as u32;
        let max_ids_per_call = in_range(
            "MAX_IDS_PER_CALL",
            raw.max_ids_per_call.unwrap_or(1_000) as u64,
            1,
            100_000,
        )? as usize;
        let http_sync_max_ids = in_range(
            "HTTP_SYNC_MAX_IDS",
            raw.http_sync_max_ids.unwrap_or(100.min(max_ids_per_call)) as u64,
            1,
            max_ids_per_call as u64,
        )? as usize;
        let max_body_bytes = in_range(
            "MAX_BODY_BYTES",
            raw.max_body_bytes.unwrap_or(1 << 20) as u64,
            1_024,
            64 << 20,
        )? as usize;

        let catalogs = guid_list(
            "ALLOWED_CATALOG_IDS",
            raw.allowed_catalog_ids.as_deref(),
            CatalogId::parse,
        )?;
        let packages = guid_list(
            "ALLOWED_ACCESS_PACKAGE_IDS",
            raw.allowed_access_package_ids.as_deref(),
            AccessPackageId::parse,
        )?;
        let audit_table = raw.audit_table_name.unwrap_or_else(|| "reprocessaudit".into());
        validate_table_name(&audit_table)?;
        let operations_table = crate::storage::TableName::parse(
            raw.operations_table_name
                .as_deref()
                .unwrap_or("reprocessoperations")
                .trim(),
        )
        .map_err(|e| invalid("OPERATIONS_TABLE_NAME", e.to_string()))?;
        let retention_days = in_range(
            "OPERATIONS_RETENTION_DAYS",
            raw.operations_retention_days
                .unwrap_or(crate::operations::DEFAULT_RETENTION_DAYS),
            1,
            90,
        )?;

        let operations_page_size = in_range(
            "OPERATIONS_RESULTS_PAGE_SIZE",
            raw.operations_results_page_size
                .unwrap_or(crate::operations::RESULTS_PAGE_SIZE) as u64,
            1,
            crate::operations::RESULTS_PAGE_SIZE as u64,
        )? as usize;
        let drift_detection = match raw.drift_detection_enabled.as_deref().map(str::trim) {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => true,
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => false,
            Some(other) => {
                return Err(invalid(
                    "DRIFT_DETECTION_ENABLED",
                    format!("must be true or false, got {other:?}"),
                ));
            }
        };
        let mut drift_package_ids = Vec::new();
        for (i, part) in raw.drift_package_ids.as_deref().unwrap_or("").split(',').enumerate() {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let id = AccessPackageId::parse(part)
                .map_err(|e| invalid("DRIFT_PACKAGE_IDS", format!("entry {} {e}", i + 1)))?;
            if !drift_package_ids.contains(&id) {
                drift_package_ids.push(id);
            }
        }
        if !drift_package_ids.is_empty() && !drift_detection {
            return Err(invalid(
                "DRIFT_PACKAGE_IDS",
                "is set but DRIFT_DETECTION_ENABLED is not true (drift detection needs GroupMember.Read.All and Application.Read.All)",
            ));
        }

        let platform_auth = match raw.website_auth_enabled.as_deref().map(str::trim) {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(other) => {
                return Err(invalid(
                    "WEBSITE_AUTH_ENABLED",
                    format!("must be True or False (the platform sets it), got {other:?}"),
                ));
            }
        };
        let require_authenticated_caller = match raw.require_authenticated_caller.as_deref().map(str::trim) {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => true,
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => false,
            Some(other) => {
                return Err(invalid(
                    "REQUIRE_AUTHENTICATED_CALLER",
                    format!("must be true or false, got {other:?}"),
                ));
            }
        };
        let caller_scopes = raw.caller_scopes.as_deref().map(parse_caller_scopes).transpose()?;

        Ok(Self {
            port: raw.functions_customhandler_port.unwrap_or(8080),
            graph: GraphSettings {
                base_url,
                api_version,
                scope,
                max_concurrency,
                attempt_timeout: Duration::from_secs(attempt_timeout),
                max_attempts,
                batch_size,
            },
            credential,
            client_id,
            queue_name,
            http_budget: Duration::from_secs(http_budget),
            queue_budget: Duration::from_secs(queue_budget),
            queue_max_attempts,
            max_ids_per_call,
            http_sync_max_ids,
            max_body_bytes,
            allowed: AllowedScope::new(catalogs, packages),
            audit_table,
            storage,
            operations_table,
            operations_retention: Duration::from_secs(retention_days * 86_400),
            operations_page_size,
            drift_detection,
            drift_package_ids,
            platform_auth,
            require_authenticated_caller,
            caller_scopes,
        })
    }
}

/// A list of GUIDs separated by commas, semicolons or whitespace; each one must parse.
fn guid_list<T>(
    variable: &'static str,
    text: Option<&str>,
    parse: impl Fn(&str) -> Result<T, GuidError>,
) -> Result<Vec<T>, ConfigError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    text.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(i, s)| parse(s).map_err(|e| invalid(variable, format!("entry {} {e}", i + 1))))
        .collect()
}

/// `CALLER_SCOPES`: a JSON object from app role value to `{"catalogIds":[…],"accessPackageIds":[…]}`
/// (`{}`: the whole deployment scope). Every entry must parse; an error names the entry.
fn parse_caller_scopes(text: &str) -> Result<CallerScopes, ConfigError> {
    const VAR: &str = "CALLER_SCOPES";
    let value = crate::json::parse_strict(text, 100_000)
        .map_err(|e| invalid(VAR, format!("must be a JSON object from app role value to scope: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(invalid(VAR, "must be a JSON object from app role value to scope"));
    };
    if map.is_empty() {
        return Err(invalid(
            VAR,
            "names no app role, so no caller could do anything; leave it unset instead",
        ));
    }
    let mut roles = std::collections::BTreeMap::new();
    for (role, entry) in map {
        let shown: String = role.chars().filter(|c| !c.is_control()).take(64).collect();
        if role.trim().is_empty() || role.trim() != role || role.chars().any(char::is_control) {
            return Err(invalid(
                VAR,
                format!("entry {shown:?}: an app role value must be non-empty text without surrounding spaces"),
            ));
        }
        if !entry.is_object() {
            return Err(invalid(
                VAR,
                format!("entry {shown:?}: must be an object such as {{\"catalogIds\":[GUID…]}} or {{}}"),
            ));
        }
        let lists: ScopeLists = serde_json::from_value(entry).map_err(|e| {
            invalid(
                VAR,
                format!(
                    "entry {shown:?}: {e} (expected {{\"catalogIds\":[GUID…],\"accessPackageIds\":[GUID…]}} or {{}})"
                ),
            )
        })?;
        let scope = lists
            .to_scope()
            .map_err(|e| invalid(VAR, format!("entry {shown:?}: {e}")))?;
        roles.insert(role, scope);
    }
    Ok(CallerScopes::new(roles))
}

/// Azure Table naming rules: 3-63 alphanumeric characters, not starting with a digit.
fn validate_table_name(name: &str) -> Result<(), ConfigError> {
    let ok = (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
        && name.as_bytes()[0].is_ascii_alphabetic();
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "AUDIT_TABLE_NAME",
            format!("must be 3-63 letters and digits, starting with a letter, got {name:?}"),
        ))
    }
}

fn parse_graph_base_url(text: &str) -> Result<Url, ConfigError> {
    const VAR: &str = "GRAPH_BASE_URL";
    let url = Url::parse(text.trim()).map_err(|e| invalid(VAR, format!("not a URL ({e}): {text:?}")))?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            VAR,
            "must be a bare origin such as https://graph.microsoft.com (no query, fragment or credentials)",
        ));
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(invalid(
            VAR,
            "must not contain a path; the API version comes from GRAPH_API_VERSION",
        ));
    }
    let origin = url.as_str().trim_end_matches('/').to_ascii_lowercase();
    let known = KNOWN_GRAPH_ROOTS.contains(&origin.as_str());
    let loopback = is_loopback(&url) && matches!(url.scheme(), "http" | "https");
    if !known && !loopback {
        return Err(invalid(
            VAR,
            format!(
                "must be one of {} (or a loopback URL for local testing), got {text:?}",
                KNOWN_GRAPH_ROOTS.join(", ")
            ),
        ));
    }
    Url::parse(&origin).map_err(|e| invalid(VAR, e.to_string()))
}

/// Azure queue naming rules, with room for the `-poison` suffix the dead-letter queue adds.
fn validate_queue_name(name: &str) -> Result<(), ConfigError> {
    let ok = (3..=56).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "REPROCESS_QUEUE_NAME",
            format!(
                "must be 3-56 characters of a-z, 0-9 and single hyphens (56 leaves room for '-poison'), got {name:?}"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn defaults() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.graph.base_url.as_str(), "https://graph.microsoft.com/");
        assert_eq!(s.graph.scope, "https://graph.microsoft.com/.default");
        assert_eq!(s.graph.api_version, ApiVersion::V1);
        assert_eq!(s.queue_name, "reprocess-requests");
        assert_eq!(s.credential, CredentialSource::ManagedIdentity);
    }

    #[test]
    fn national_clouds_pick_their_scope() {
        let s = settings(&[("GRAPH_BASE_URL", "https://dod-graph.microsoft.us/")]).unwrap();
        assert_eq!(s.graph.scope, "https://dod-graph.microsoft.us/.default");
        let s = settings(&[("GRAPH_BASE_URL", "https://microsoftgraph.chinacloudapi.cn")]).unwrap();
        assert_eq!(s.graph.scope, "https://microsoftgraph.chinacloudapi.cn/.default");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases = [
            ("GRAPH_BASE_URL", "http://graph.microsoft.com"),
            ("GRAPH_BASE_URL", "https://evil.example.com"),
            ("GRAPH_BASE_URL", "https://graph.microsoft.com/v1.0"),
            ("GRAPH_API_VERSION", "v2"),
            ("AZURE_CLIENT_ID", "not-a-guid"),
            ("REPROCESS_QUEUE_NAME", "Bad_Name"),
            ("CREDENTIAL_SOURCE", "secret"),
            ("GRAPH_MAX_CONCURRENCY", "0"),
            ("ALLOWED_CATALOG_IDS", "11111111-1111-4111-8111-111111111111,nope"),
            ("ALLOWED_ACCESS_PACKAGE_IDS", "{22222222-2222-4222-8222-222222222222}"),
            ("AUDIT_TABLE_NAME", "audit-log"),
            ("OPERATIONS_TABLE_NAME", "bad-name"),
            ("OPERATIONS_RETENTION_DAYS", "0"),
        ];
        for (var, value) in cases {
            let err = settings(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var), "{var}={value}: {err}");
        }
        let err = settings(&[("FUNCTIONS_CUSTOMHANDLER_PORT", "abc")])
            .unwrap_err()
            .to_string();
        assert!(err.to_uppercase().contains("FUNCTIONS_CUSTOMHANDLER_PORT"), "{err}");
    }

    #[test]
    fn catalog_scope_lists_parse_at_start_up() {
        assert!(settings(&[]).unwrap().allowed.is_none());
        let s = settings(&[
            (
                "ALLOWED_CATALOG_IDS",
                " 11111111-1111-4111-8111-111111111111 ;22222222-2222-4222-8222-222222222222,",
            ),
            ("ALLOWED_ACCESS_PACKAGE_IDS", "33333333-3333-4333-8333-333333333333"),
        ])
        .unwrap();
        let allowed = s.allowed.unwrap();
        assert_eq!(allowed.catalogs().count(), 2);
        assert_eq!(allowed.packages().count(), 1);
    }

    #[test]
    fn caller_settings_parse_and_name_the_variable_and_entry() {
        let s = settings(&[]).unwrap();
        assert!(!s.platform_auth && !s.require_authenticated_caller && s.caller_scopes.is_none());
        let s = settings(&[
            ("WEBSITE_AUTH_ENABLED", "True"),
            ("REQUIRE_AUTHENTICATED_CALLER", "true"),
            (
                "CALLER_SCOPES",
                r#"{"Reprocess.All": {}, "Reprocess.Catalog.Sales": {"catalogIds": ["11111111-1111-4111-8111-111111111111"]}}"#,
            ),
        ])
        .unwrap();
        assert!(s.platform_auth && s.require_authenticated_caller);
        assert_eq!(
            s.caller_scopes.unwrap().role_values(),
            ["Reprocess.All", "Reprocess.Catalog.Sales"]
        );
        let err = |var: &str, value: &str| settings(&[(var, value)]).unwrap_err().to_string();
        assert!(err("WEBSITE_AUTH_ENABLED", "yes").contains("WEBSITE_AUTH_ENABLED"));
        assert!(err("REQUIRE_AUTHENTICATED_CALLER", "maybe").contains("REQUIRE_AUTHENTICATED_CALLER"));
        for (bad, entry) in [
            ("not json", ""),
            ("[]", ""),
            ("{}", ""),
            (r#"{"A": {}, "A": {}}"#, ""),
            (r#"{"Reprocess.X": {"catalogs": []}}"#, "Reprocess.X"),
            (r#"{"Reprocess.X": {"catalogIds": ["nope"]}}"#, "Reprocess.X"),
            (r#"{"Reprocess.X": {"catalogIds": []}}"#, "Reprocess.X"),
            (r#"{"Reprocess.X": []}"#, "Reprocess.X"),
        ] {
            let e = err("CALLER_SCOPES", bad);
            assert!(e.contains("CALLER_SCOPES") && e.contains(entry), "{bad}: {e}");
        }
    }

    #[test]
    fn loopback_is_allowed_for_tests() {
        let s = settings(&[("GRAPH_BASE_URL", "http://127.0.0.1:9999")]).unwrap();
        assert_eq!(s.graph.scope, "http://127.0.0.1:9999/.default");
    }
}
