//! Azure Table Storage over its REST API, for state the handler keeps in the Function App's own storage
//! account (operation status; durable audit records). One client, two kinds of auth:
//!
//! - a bearer token for `https://storage.azure.com/.default` from the managed identity (in Azure; the
//!   account has shared keys disabled), through [`crate::graph::TokenProvider`];
//! - Shared Key Lite from a connection string's `AccountKey` (local runs, Azurite).
//!
//! [`StorageSettings`] reads the settings the Functions host itself uses for its storage
//! (`AzureWebJobsStorage` or `AzureWebJobsStorage__accountName` / `__tableServiceUri` / `__credential` /
//! `__clientId`), so the app needs no extra connection. Requests go only to https endpoints (loopback
//! excepted); only parsed [`TableName`]s and [`TableKey`]s reach a URL, and filters are built from typed
//! parts ([`Filter`]). Wire format: Table service REST API (learn.microsoft.com/rest/api/storageservices:
//! "Insert Entity", "Insert Or Replace Entity", "Insert Or Merge Entity", "Query Entities",
//! "Delete Entity", "Create Table", "Payload format for Table service operations",
//! "Authorize with Shared Key" (Shared Key Lite for Table)); checked against Azurite's
//! `TableSharedKeyLiteAuthenticator` in the tests.

mod auth;
mod entity;
mod error;
mod keys;
mod settings;
mod table;

pub use auth::AccountKey;
pub use auth::shared_key_lite as sign_shared_key_lite;
pub use entity::{Continuation, Entity, Inserted, MAX_ENTITY_BYTES, MAX_STRING_UNITS, Page, UpsertMode};
pub use error::StorageError;
pub use keys::{Filter, KeyError, TableKey, TableName};
pub use settings::{StorageAuth, StorageSettings, TokenSource, UsedSetting};
pub use table::TableClient;

/// The audience Storage accepts Entra tokens for (any account, any cloud's public endpoint).
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// A client for the app's storage account as `storage` describes it. Token auth uses the managed
/// identity named by `AzureWebJobsStorage__clientId`, or (no `__credential`) the handler's own token
/// provider (`handler_tokens`, whose credential and token cache then serve Storage's scope too), for
/// [`STORAGE_SCOPE`].
pub fn client(
    storage: &StorageSettings,
    handler_tokens: &crate::graph::TokenProvider,
) -> Result<TableClient, StorageError> {
    let tokens = match &storage.auth {
        StorageAuth::SharedKey(_) => None,
        StorageAuth::Token(TokenSource::ManagedIdentity { client_id }) => Some(
            crate::graph::TokenProvider::managed_identity(*client_id, STORAGE_SCOPE)?,
        ),
        StorageAuth::Token(TokenSource::Handler) => Some(handler_tokens.for_scope(STORAGE_SCOPE)),
    };
    TableClient::new(storage, tokens)
}
