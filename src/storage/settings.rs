//! Where the Table service is and how to authenticate, from the settings the Functions host uses for
//! its own storage (azure-functions-host reads `AzureWebJobsStorage` as a connection string, or the
//! identity-based `AzureWebJobsStorage__accountName` / `__tableServiceUri` with `__credential` and
//! `__clientId`; `infra/modules/function-app.bicep` sets the identity-based form). A connection string may
//! be `UseDevelopmentStorage=true` (Azurite's `devstoreaccount1` on 127.0.0.1:10002, or
//! `DevelopmentStorageProxyUri`). Endpoints must be https, except on loopback.

use super::auth::AccountKey;
use crate::domain::Guid;
use crate::setting::{ConfigError, is_loopback};
use url::Url;

/// The setting prefix the host uses for its own storage.
const PREFIX: &str = "AzureWebJobsStorage";
/// Azurite's well-known development account (public, documented by Azurite and the Storage emulator).
const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// The Table service endpoint: `https://<account>.table.core.windows.net` (empty path) or a
    /// path-style emulator endpoint `http://127.0.0.1:10002/devstoreaccount1` (no trailing slash).
    pub table_endpoint: Url,
    /// The account name (signed into Shared Key Lite; informational with a token).
    pub account: String,
    pub auth: StorageAuth,
    /// Which setting this came from, for the start-up log (never the value: it may hold a key).
    pub source: UsedSetting,
}

#[derive(Debug, Clone)]
pub enum StorageAuth {
    SharedKey(AccountKey),
    Token(TokenSource),
}

/// Which credential mints the Storage token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `__credential=managedidentity`: the managed identity, user-assigned when `__clientId` is set.
    ManagedIdentity { client_id: Option<Guid> },
    /// No `__credential`: the handler's own credential (`CREDENTIAL_SOURCE`), as for Graph.
    Handler,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsedSetting {
    ConnectionString,
    IdentityBased,
}

fn invalid(variable: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        variable: if variable == PREFIX {
            "AzureWebJobsStorage"
        } else {
            "AzureWebJobsStorage__*"
        },
        reason: reason.into(),
    }
}

impl StorageSettings {
    /// `Ok(None)` when no storage setting is present (local runs without storage).
    pub fn from_vars(vars: &[(String, String)]) -> Result<Option<Self>, ConfigError> {
        let get = |suffix: &str| {
            let name = format!("{PREFIX}{suffix}");
            vars.iter()
                .find(|(k, v)| k.eq_ignore_ascii_case(&name) && !v.trim().is_empty())
                .map(|(_, v)| v.trim().to_owned())
        };
        if let Some(connection) = get("") {
            return parse_connection_string(&connection).map(Some);
        }
        let account = get("__accountName");
        let table_uri = get("__tableServiceUri");
        if account.is_none() && table_uri.is_none() {
            return Ok(None);
        }
        if get("__managedIdentityResourceId").is_some() {
            return Err(invalid(
                "",
                "__managedIdentityResourceId is not supported by the handler: set AzureWebJobsStorage__clientId",
            ));
        }
        let table_endpoint = match (&table_uri, &account) {
            (Some(uri), _) => endpoint(uri, "AzureWebJobsStorage__tableServiceUri")?,
            (None, Some(name)) => {
                check_account(name)?;
                endpoint(&format!("https://{name}.table.core.windows.net"), "")?
            }
            (None, None) => unreachable!("checked above"),
        };
        let account = match account {
            Some(name) => name,
            None => account_from_endpoint(&table_endpoint),
        };
        let source = match get("__credential").map(|c| c.to_ascii_lowercase()) {
            None => TokenSource::Handler,
            Some(c) if c == "managedidentity" => {
                let client_id = get("__clientId")
                    .map(|id| Guid::parse(&id).map_err(|e| invalid("", format!("__clientId {e}"))))
                    .transpose()?;
                TokenSource::ManagedIdentity { client_id }
            }
            Some(other) => {
                return Err(invalid(
                    "",
                    format!("__credential must be managedidentity (or absent), got {other:?}"),
                ));
            }
        };
        Ok(Some(Self {
            table_endpoint,
            account,
            auth: StorageAuth::Token(source),
            source: UsedSetting::IdentityBased,
        }))
    }
}

fn check_account(name: &str) -> Result<(), ConfigError> {
    let ok = (3..=24).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "",
            format!("__accountName {name:?} is not a storage account name"),
        ))
    }
}

/// The account of `https://<account>.table.…`, or the first path segment of a path-style endpoint.
fn account_from_endpoint(url: &Url) -> String {
    let first_segment = url.path().trim_matches('/').split('/').next().unwrap_or("").to_owned();
    if !first_segment.is_empty() {
        return first_segment;
    }
    url.host_str()
        .and_then(|h| h.split('.').next())
        .unwrap_or("")
        .to_owned()
}

/// An https endpoint (http only on loopback) without query, fragment or credentials; no trailing slash.
fn endpoint(text: &str, what: &str) -> Result<Url, ConfigError> {
    let variable = if what.is_empty() { "" } else { PREFIX };
    let mut url = Url::parse(text.trim()).map_err(|e| invalid(variable, format!("{what}: not a URL ({e})")))?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            variable,
            format!("{what}: the table endpoint must have no query, fragment or credentials"),
        ));
    }
    let https = url.scheme() == "https";
    let loopback_http = url.scheme() == "http" && is_loopback(&url);
    if !https && !loopback_http {
        return Err(invalid(
            variable,
            format!("{what}: the table endpoint must be https (http only on loopback)"),
        ));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Ok(url)
}

/// `Key=Value;…` as the Storage SDKs read it: keys case-insensitive, values may contain `=`.
fn parse_connection_string(text: &str) -> Result<StorageSettings, ConfigError> {
    let pairs: Vec<(String, String)> = text
        .split(';')
        .filter(|p| !p.trim().is_empty())
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let get = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    if get("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        let proxy = get("developmentstorageproxyuri").unwrap_or("http://127.0.0.1");
        let mut base = endpoint(proxy, "DevelopmentStorageProxyUri")?;
        if base.port().is_none() {
            base.set_port(Some(10002)).ok();
        }
        base.set_path(&format!("/{DEV_ACCOUNT}"));
        return Ok(StorageSettings {
            table_endpoint: base,
            account: DEV_ACCOUNT.into(),
            auth: StorageAuth::SharedKey(AccountKey::parse(DEV_KEY).map_err(|e| invalid(PREFIX, e))?),
            source: UsedSetting::ConnectionString,
        });
    }
    if get("sharedaccesssignature").is_some() {
        return Err(invalid(
            PREFIX,
            "SAS connection strings are not supported: use AccountKey, or identity-based settings",
        ));
    }
    let account = get("accountname").ok_or_else(|| invalid(PREFIX, "the connection string has no AccountName"))?;
    let key = get("accountkey").ok_or_else(|| invalid(PREFIX, "the connection string has no AccountKey"))?;
    let key = AccountKey::parse(key).map_err(|e| invalid(PREFIX, e))?;
    let table_endpoint = match get("tableendpoint") {
        Some(uri) => endpoint(uri, "TableEndpoint")?,
        None => {
            check_account(account).map_err(|_| invalid(PREFIX, "AccountName is not a storage account name"))?;
            let protocol = get("defaultendpointsprotocol").unwrap_or("https");
            let suffix = get("endpointsuffix").unwrap_or("core.windows.net");
            endpoint(&format!("{protocol}://{account}.table.{suffix}"), "the table endpoint")?
        }
    };
    Ok(StorageSettings {
        table_endpoint,
        account: account.to_owned(),
        auth: StorageAuth::SharedKey(key),
        source: UsedSetting::ConnectionString,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Option<StorageSettings>, ConfigError> {
        let vars: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        StorageSettings::from_vars(&vars)
    }

    #[test]
    fn nothing_set_means_no_storage() {
        assert!(from(&[]).unwrap().is_none());
        assert!(from(&[("AzureWebJobsStorage", " ")]).unwrap().is_none());
    }

    #[test]
    fn development_storage_is_azurite() {
        let s = from(&[("AzureWebJobsStorage", "UseDevelopmentStorage=true")])
            .unwrap()
            .unwrap();
        assert_eq!(s.table_endpoint.as_str(), "http://127.0.0.1:10002/devstoreaccount1");
        assert_eq!(s.account, "devstoreaccount1");
        assert!(matches!(s.auth, StorageAuth::SharedKey(_)));
    }

    #[test]
    fn account_key_connection_strings() {
        let s = from(&[(
            "AzureWebJobsStorage",
            "DefaultEndpointsProtocol=https;AccountName=stx1;AccountKey=c2VjcmV0;EndpointSuffix=core.usgovcloudapi.net",
        )])
        .unwrap()
        .unwrap();
        assert_eq!(s.table_endpoint.as_str(), "https://stx1.table.core.usgovcloudapi.net/");
        let s = from(&[(
            "azurewebjobsstorage",
            "AccountName=devstoreaccount1;AccountKey=c2VjcmV0;TableEndpoint=http://127.0.0.1:4711/devstoreaccount1/;",
        )])
        .unwrap()
        .unwrap();
        assert_eq!(s.table_endpoint.as_str(), "http://127.0.0.1:4711/devstoreaccount1");
        assert!(!format!("{s:?}").contains("c2VjcmV0"), "the key must not be in Debug");
    }

    #[test]
    fn identity_based_settings() {
        let s = from(&[
            ("AzureWebJobsStorage__accountName", "stapp"),
            ("AzureWebJobsStorage__credential", "managedidentity"),
            ("AzureWebJobsStorage__clientId", "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.table_endpoint.as_str(), "https://stapp.table.core.windows.net/");
        assert!(matches!(
            s.auth,
            StorageAuth::Token(TokenSource::ManagedIdentity { client_id: Some(_) })
        ));
        let s = from(&[(
            "AzureWebJobsStorage__tableServiceUri",
            "https://stapp.table.core.chinacloudapi.cn",
        )])
        .unwrap()
        .unwrap();
        assert_eq!(s.account, "stapp");
        assert!(matches!(s.auth, StorageAuth::Token(TokenSource::Handler)));
    }

    #[test]
    fn refused_settings_name_the_variable() {
        for pairs in [
            vec![("AzureWebJobsStorage", "AccountName=a1b;AccountKey=!!")],
            vec![(
                "AzureWebJobsStorage",
                "DefaultEndpointsProtocol=http;AccountName=abc;AccountKey=c2VjcmV0",
            )],
            vec![(
                "AzureWebJobsStorage",
                "TableEndpoint=https://x;SharedAccessSignature=sv=1",
            )],
            vec![("AzureWebJobsStorage__tableServiceUri", "http://evil.example.com")],
            vec![(
                "AzureWebJobsStorage__tableServiceUri",
                "https://a.table.core.windows.net/?sig=1",
            )],
            vec![("AzureWebJobsStorage__accountName", "Bad_Name")],
            vec![
                ("AzureWebJobsStorage__accountName", "stapp"),
                ("AzureWebJobsStorage__credential", "clientsecret"),
            ],
        ] {
            let err = from(&pairs).unwrap_err().to_string();
            assert!(err.contains("AzureWebJobsStorage"), "{pairs:?}: {err}");
            assert!(!err.contains("c2VjcmV0"), "{err}");
        }
    }
}
