//! The Table service client: create table, insert, insert-or-replace / insert-or-merge, get, query a
//! partition with `$filter`/`$top` and continuation, delete. JSON without metadata
//! (`Accept: application/json;odata=nometadata`), `x-ms-version` 2019-02-02 (the first version that takes
//! Entra tokens for Table), `DataServiceVersion: 3.0`. Transient answers (408, 429, 5xx, connection
//! errors) are retried twice with a short back-off; every request has a 10 s timeout.

use super::auth::{AccountKey, shared_key_lite};
use super::entity::{Continuation, Entity, Inserted, Page, UpsertMode};
use super::keys::{Filter, TableKey, TableName};
use super::settings::{StorageAuth, StorageSettings};
use crate::graph::TokenProvider;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use url::Url;

use super::error::StorageError;

const VERSION: &str = "2019-02-02";
const ACCEPT: &str = "application/json;odata=nometadata";
const ATTEMPTS: u32 = 3;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

enum Auth {
    SharedKey(AccountKey),
    Token(TokenProvider),
}

/// A Table service client for one account. Cheap to share (`Arc`); one connection pool.
pub struct TableClient {
    http: reqwest::Client,
    endpoint: Url,
    account: String,
    auth: Auth,
}

impl std::fmt::Debug for TableClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("account", &self.account)
            .field(
                "auth",
                &match self.auth {
                    Auth::SharedKey(_) => "shared key lite",
                    Auth::Token(_) => "bearer token",
                },
            )
            .finish()
    }
}

impl TableClient {
    /// `tokens` must be given for token auth: a provider for [`super::STORAGE_SCOPE`].
    pub fn new(settings: &StorageSettings, tokens: Option<TokenProvider>) -> Result<Self, StorageError> {
        let auth = match (&settings.auth, tokens) {
            (StorageAuth::SharedKey(key), _) => Auth::SharedKey(key.clone()),
            (StorageAuth::Token(_), Some(tokens)) => Auth::Token(tokens),
            (StorageAuth::Token(_), None) => {
                return Err(StorageError::Unexpected("token auth needs a token provider".into()));
            }
        };
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .https_only(!crate::setting::is_loopback(&settings.table_endpoint))
            .build()
            .map_err(|e| StorageError::Transport(e.to_string()))?;
        Ok(Self {
            http,
            endpoint: settings.table_endpoint.clone(),
            account: settings.account.clone(),
            auth,
        })
    }

    /// `<endpoint>/<resource>`, where `resource` is built here from parsed names only.
    fn url(&self, resource: &str) -> Url {
        let mut url = self.endpoint.clone();
        let path = format!("{}/{resource}", self.endpoint.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    }

    fn entity_url(&self, table: &TableName, pk: &TableKey, rk: &TableKey) -> Url {
        self.url(&format!("{table}(PartitionKey='{pk}',RowKey='{rk}')"))
    }

    /// Sends one request (with retries for transient failures); returns status, headers and body.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<&[u8]>,
        extra: &[(&str, &str)],
        operation: &'static str,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>), StorageError> {
        let mut last_error = None;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                let backoff = 100u64 << attempt;
                tokio::time::sleep(Duration::from_millis(backoff + fastrand::u64(..backoff))).await;
            }
            let date = httpdate::fmt_http_date(std::time::SystemTime::now());
            let authorization = match &self.auth {
                Auth::SharedKey(key) => shared_key_lite(&self.account, key, &date, url.path()),
                Auth::Token(tokens) => format!("Bearer {}", tokens.token().await?.secret()),
            };
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header("x-ms-date", &date)
                .header("x-ms-version", VERSION)
                .header("Accept", ACCEPT)
                .header("DataServiceVersion", "3.0;NetFx")
                .header("MaxDataServiceVersion", "3.0;NetFx")
                .header("x-ms-client-request-id", crate::domain::Guid::new_random().to_string())
                .header("Authorization", authorization);
            for (name, value) in extra {
                request = request.header(*name, *value);
            }
            if let Some(body) = body {
                request = request.header("Content-Type", "application/json").body(body.to_vec());
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => {
                    tracing::warn!(operation, attempt, error = %without_url(&e), "Table request failed");
                    last_error = Some(StorageError::Transport(without_url(&e)));
                    continue;
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            let bytes = match response.bytes().await {
                Ok(bytes) => bytes.to_vec(),
                Err(e) => {
                    last_error = Some(StorageError::Transport(without_url(&e)));
                    continue;
                }
            };
            if status.is_success() {
                return Ok((status, headers, bytes));
            }
            let error = service_error(status, &bytes);
            let transient = matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504);
            tracing::debug!(operation, status = status.as_u16(), error = %error, "Table service error");
            if !transient {
                return Err(error);
            }
            last_error = Some(error);
        }
        Err(last_error.unwrap_or_else(|| StorageError::Transport("no attempt made".into())))
    }

    /// Create Table; `Ok(false)` when it already exists (409 `TableAlreadyExists`).
    pub async fn create_table(&self, table: &TableName) -> Result<bool, StorageError> {
        let body = serde_json::to_vec(&json!({ "TableName": table.as_str() })).expect("JSON serializes");
        let prefer = [("Prefer", "return-no-content")];
        match self
            .send(Method::POST, &self.url("Tables"), Some(&body), &prefer, "create table")
            .await
        {
            Ok(_) => Ok(true),
            Err(StorageError::Service { status: 409, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Insert Entity: fails with `AlreadyExists` rather than overwriting.
    pub async fn insert(&self, table: &TableName, entity: &Entity) -> Result<Inserted, StorageError> {
        let body = entity.to_body()?;
        let prefer = [("Prefer", "return-no-content")];
        match self
            .send(Method::POST, &self.url(table.as_str()), Some(&body), &prefer, "insert")
            .await
        {
            Ok(_) => Ok(Inserted::Inserted),
            Err(StorageError::Service { status: 409, .. }) => Ok(Inserted::AlreadyExists),
            Err(e) => Err(e),
        }
    }

    /// Insert Or Replace / Insert Or Merge Entity (no `If-Match`: an upsert).
    pub async fn upsert(&self, table: &TableName, entity: &Entity, mode: UpsertMode) -> Result<(), StorageError> {
        let body = entity.to_body()?;
        let method = match mode {
            UpsertMode::Replace => Method::PUT,
            UpsertMode::Merge => Method::from_bytes(b"MERGE").expect("MERGE is a valid method"),
        };
        let url = self.entity_url(table, &entity.partition_key, &entity.row_key);
        self.send(method, &url, Some(&body), &[], "upsert").await.map(|_| ())
    }

    /// Query Entities for one entity; `None` for 404.
    pub async fn get(&self, table: &TableName, pk: &TableKey, rk: &TableKey) -> Result<Option<Entity>, StorageError> {
        let url = self.entity_url(table, pk, rk);
        match self.send(Method::GET, &url, None, &[], "get").await {
            Ok((_, _, body)) => {
                let value: Value =
                    serde_json::from_slice(&body).map_err(|e| StorageError::Unexpected(format!("entity: {e}")))?;
                Entity::from_json(value).map(Some)
            }
            Err(StorageError::Service { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of Query Entities: `filter`, at most `top` (≤ 1000) entities, resuming at `continuation`.
    /// A page may hold fewer than `top` entities and still have a continuation (the service stops at
    /// partition boundaries and after 5 s); follow it until `None`.
    pub async fn query(
        &self,
        table: &TableName,
        filter: &Filter,
        top: Option<u16>,
        continuation: Option<&Continuation>,
    ) -> Result<Page, StorageError> {
        self.query_page(table, filter, top, continuation, &[]).await
    }

    /// [`TableClient::query`] returning only the keys and the properties in `select` (`$select`).
    async fn query_page(
        &self,
        table: &TableName,
        filter: &Filter,
        top: Option<u16>,
        continuation: Option<&Continuation>,
        select: &[&str],
    ) -> Result<Page, StorageError> {
        let mut url = self.url(&format!("{table}()"));
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("$filter", filter.as_str());
            if !select.is_empty() {
                for name in select {
                    super::keys::check_property(name)?;
                }
                query.append_pair("$select", &format!("PartitionKey,RowKey,{}", select.join(",")));
            }
            if let Some(top) = top {
                query.append_pair("$top", &top.clamp(1, 1000).to_string());
            }
            if let Some(c) = continuation {
                query.append_pair("NextPartitionKey", &c.next_partition_key);
                if let Some(rk) = &c.next_row_key {
                    query.append_pair("NextRowKey", rk);
                }
            }
        }
        let (_, headers, body) = self.send(Method::GET, &url, None, &[], "query").await?;
        let value: Value =
            serde_json::from_slice(&body).map_err(|e| StorageError::Unexpected(format!("query answer: {e}")))?;
        let entities = match value.get("value") {
            Some(Value::Array(items)) => items.iter().cloned().map(Entity::from_json).collect::<Result<_, _>>()?,
            _ => return Err(StorageError::Unexpected("a query answer without value".into())),
        };
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .filter(|v| !v.is_empty())
        };
        let continuation = header("x-ms-continuation-NextPartitionKey").map(|next_partition_key| Continuation {
            next_partition_key,
            next_row_key: header("x-ms-continuation-NextRowKey"),
        });
        Ok(Page { entities, continuation })
    }

    /// Every entity `filter` matches, following continuations (for small sets: it holds them all).
    pub async fn query_all(&self, table: &TableName, filter: &Filter) -> Result<Vec<Entity>, StorageError> {
        self.query_up_to(table, filter, usize::MAX, &[]).await
    }

    /// The first `limit` entities `filter` matches, in key order, following continuations; with a
    /// non-empty `select`, only the keys and those properties.
    pub async fn query_up_to(
        &self,
        table: &TableName,
        filter: &Filter,
        limit: usize,
        select: &[&str],
    ) -> Result<Vec<Entity>, StorageError> {
        let mut all = Vec::new();
        let mut continuation = None;
        while all.len() < limit {
            let top = (limit - all.len()).min(1000) as u16;
            let page = self
                .query_page(table, filter, Some(top), continuation.as_ref(), select)
                .await?;
            all.extend(page.entities);
            match page.continuation {
                Some(next) => continuation = Some(next),
                None => break,
            }
        }
        all.truncate(limit);
        Ok(all)
    }

    /// Delete Entity (`If-Match: *`); `Ok(false)` when there was none.
    pub async fn delete(&self, table: &TableName, pk: &TableKey, rk: &TableKey) -> Result<bool, StorageError> {
        let url = self.entity_url(table, pk, rk);
        match self
            .send(Method::DELETE, &url, None, &[("If-Match", "*")], "delete")
            .await
        {
            Ok(_) => Ok(true),
            Err(StorageError::Service { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A transport error's text without the URL (its query holds filter values).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<table url>");
    }
    text
}

/// `{"odata.error":{"code":"…","message":{"lang":"en-US","value":"…"}}}` ("Table service error codes").
fn service_error(status: StatusCode, body: &[u8]) -> StorageError {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let error = &value["odata.error"];
    let code = error["code"].as_str().unwrap_or("").to_owned();
    let message = error["message"]["value"]
        .as_str()
        .or_else(|| error["message"].as_str())
        .unwrap_or("")
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(300)
        .collect();
    StorageError::Service {
        status: status.as_u16(),
        code,
        message,
    }
}
