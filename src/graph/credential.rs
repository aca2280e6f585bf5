//! Tokens from `azure_identity`: the Function App's managed identity (system-assigned, or
//! user-assigned when `AZURE_CLIENT_ID` is set), or the Azure CLI for local runs. `azure_identity`
//! caches per scope and refreshes 5 minutes before expiry under a write lock, so concurrent
//! invocations share one fetch; this wrapper only fixes the scope and keeps the token out of `Debug`.
//! One credential serves several audiences: [`TokenProvider::for_scope`] hands out a provider for
//! another scope (Storage's `https://storage.azure.com/.default`) over the same credential and cache;
//! [`TokenProvider::managed_identity`] builds one for a different user-assigned identity.

use crate::config::{CredentialSource, Settings};
use crate::domain::Guid;
use azure_core::credentials::TokenCredential;
use azure_identity::{AzureCliCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};
use std::fmt;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("could not create the {source_name} credential: {message}")]
    Setup { source_name: &'static str, message: String },
    #[error("could not get a token for {scope} from the {source_name} credential: {message}")]
    Token {
        source_name: &'static str,
        scope: String,
        message: String,
    },
}

pub struct TokenProvider {
    credential: Arc<dyn TokenCredential>,
    scope: String,
    source_name: &'static str,
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenProvider")
            .field("scope", &self.scope)
            .field("source", &self.source_name)
            .finish()
    }
}

/// A bearer token; its `Debug` never shows the value.
pub struct BearerToken(String);

impl BearerToken {
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl TokenProvider {
    /// Graph's provider: the credential `CREDENTIAL_SOURCE` names, for Graph's scope.
    pub fn from_settings(settings: &Settings) -> Result<Self, CredentialError> {
        let (credential, source_name): (Arc<dyn TokenCredential>, &'static str) = match settings.credential {
            CredentialSource::ManagedIdentity => {
                return Self::managed_identity(settings.client_id, &settings.graph.scope);
            }
            CredentialSource::AzureCli => {
                let credential = AzureCliCredential::new(None).map_err(|e| CredentialError::Setup {
                    source_name: "Azure CLI",
                    message: e.to_string(),
                })?;
                (credential, "Azure CLI")
            }
        };
        Ok(Self {
            credential,
            scope: settings.graph.scope.clone(),
            source_name,
        })
    }

    /// The managed identity (user-assigned when `client_id` is given), for `scope`.
    pub fn managed_identity(client_id: Option<Guid>, scope: &str) -> Result<Self, CredentialError> {
        let options = ManagedIdentityCredentialOptions {
            user_assigned_id: client_id.map(|id| UserAssignedId::ClientId(id.to_string())),
            ..Default::default()
        };
        let credential = ManagedIdentityCredential::new(Some(options)).map_err(|e| CredentialError::Setup {
            source_name: "managed identity",
            message: e.to_string(),
        })?;
        Ok(Self {
            credential,
            scope: scope.to_owned(),
            source_name: "managed identity",
        })
    }

    /// The same credential (and token cache) for another audience.
    pub fn for_scope(&self, scope: &str) -> Self {
        Self {
            credential: Arc::clone(&self.credential),
            scope: scope.to_owned(),
            source_name: self.source_name,
        }
    }

    pub fn scope(&self) -> &str {
        &self.scope
    }

    pub async fn token(&self) -> Result<BearerToken, CredentialError> {
        let token = self
            .credential
            .get_token(&[self.scope.as_str()], None)
            .await
            .map_err(|e| CredentialError::Token {
                source_name: self.source_name,
                scope: self.scope.clone(),
                message: e.to_string(),
            })?;
        Ok(BearerToken(token.token.secret().to_owned()))
    }
}
