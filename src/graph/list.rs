//! Reading entitlement management: one page of the delivered assignments of a package or a user, and
//! single assignments/requests for dry runs. Reading exists so that fan-out can turn a package or a
//! user into assignment IDs, a page at a time, without ever sending a token outside Graph.
//!
//! Graph facts (microsoft-graph-docs-contrib):
//! - v1.0 `GET /identityGovernance/entitlementManagement/assignments` with `$filter`, `$expand`, `$select`;
//!   `state` is lower camel (`delivered`), filters `accessPackage/id eq '…'`, `target/objectId eq '…'`
//!   (`api-reference/v1.0/api/entitlementmanagement-list-assignments.md`, `resources/accesspackageassignment.md`);
//! - beta `GET …/accessPackageAssignments` with `assignmentState eq 'Delivered'`, `accessPackage/id`,
//!   `target/objectid` (`api-reference/beta/api/entitlementmanagement-list-accesspackageassignments.md`);
//! - both document `$expand=target,accessPackage`;
//! - `@odata.nextLink` is a full URL carrying every query option plus `$skiptoken`: it is sent back whole,
//!   but only after checking it points at the configured Graph origin and the same collection
//!   (`concepts/paging.md`); anything else is refused, so a forged link in a queue message cannot
//!   collect a token.
//!
//! Only GUID newtypes are interpolated into URLs, and every query value is percent-encoded here.

use super::GraphClient;
use super::client::GetError;
use super::retry::{backoff, parse_retry_after};
use crate::config::ApiVersion;
use crate::domain::outcome::REQUIRED_APP_ROLE;
use crate::domain::{AssignmentId, Guid, Scope, Target};
use serde_json::{Map, Value, json};
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

const EM: &str = "identityGovernance/entitlementManagement";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("refused a nextLink to {0}: it is not the configured Graph origin, and tokens must not go elsewhere")]
    ForeignNextLink(String),
    #[error("refused a nextLink: {0}")]
    BadNextLink(String),
    #[error("{reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    #[error("Graph refused to list ({code}: {message}); the identity needs the app role {REQUIRED_APP_ROLE}")]
    Denied { code: String, message: String },
    #[error("Graph answered {status} ({code}: {message})")]
    Rejected { status: u16, code: String, message: String },
    #[error("Graph's answer was not a collection page: {0}")]
    BadBody(String),
}

impl ListError {
    pub fn is_transient(&self) -> bool {
        matches!(self, ListError::Transient { .. })
    }
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            ListError::Transient { retry_after, .. } => {
                retry_after.map(|w| w.as_secs() + u64::from(w.subsec_nanos() > 0))
            }
            _ => None,
        }
    }
}

/// One listed assignment, with what a dry run shows about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedAssignment {
    pub id: AssignmentId,
    pub state: Option<String>,
    pub access_package: Option<Value>,
    pub target: Option<Value>,
}

impl ListedAssignment {
    pub fn to_json(&self) -> Value {
        json!({ "id": self.id, "state": self.state, "accessPackage": self.access_package, "target": self.target })
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    /// Delivered assignments on this page, in Graph's order, without duplicates.
    pub items: Vec<ListedAssignment>,
    /// Checked continuation, if Graph sent one.
    pub next_link: Option<Url>,
    /// Entries dropped: not delivered (a filter Graph should already have applied) or without a GUID `id`.
    pub dropped: usize,
}

fn collection(version: ApiVersion) -> &'static str {
    match version {
        ApiVersion::V1 => "assignments",
        ApiVersion::Beta => "accessPackageAssignments",
    }
}

fn collection_path(version: ApiVersion) -> String {
    format!("/{}/{EM}/{}", version.segment(), collection(version))
}

/// The OData `$filter` for a scope, in the property names each API version documents.
pub fn filter(version: ApiVersion, scope: &Scope) -> String {
    let (state, target) = match version {
        ApiVersion::V1 => ("state eq 'delivered'", "target/objectId"),
        ApiVersion::Beta => ("assignmentState eq 'Delivered'", "target/objectid"),
    };
    match scope {
        Scope::AccessPackage(id) => format!("{state} and accessPackage/id eq '{id}'"),
        Scope::User(id) => format!("{state} and {target} eq '{id}'"),
    }
}

/// Percent-encodes a query value: everything but RFC 3986 unreserved characters and `/` `,` (which
/// Graph's docs show literally) becomes `%XX`, so spaces are `%20` and quotes `%27`.
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2);
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b',' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn with_query(base: &Url, path: &str, options: &[(&str, &str)]) -> Url {
    let mut url = base.clone();
    url.set_path(path);
    let query: Vec<String> = options
        .iter()
        .map(|(k, v)| format!("{k}={}", encode_query_value(v)))
        .collect();
    url.set_query(Some(&query.join("&")));
    url
}

/// First page of the delivered assignments in `scope`.
pub fn first_page_url(base: &Url, version: ApiVersion, scope: &Scope) -> Url {
    let select = match version {
        ApiVersion::V1 => "id,state,status",
        ApiVersion::Beta => "id,assignmentState,assignmentStatus",
    };
    with_query(
        base,
        &collection_path(version),
        &[
            ("$filter", &filter(version, scope)),
            ("$expand", "target,accessPackage"),
            ("$select", select),
        ],
    )
}

/// Accepts an `@odata.nextLink` only if it is on the configured Graph origin, on the same collection,
/// without credentials or a fragment.
pub fn checked_next_link(base: &Url, version: ApiVersion, link: &str) -> Result<Url, ListError> {
    let url = Url::parse(link).map_err(|e| ListError::BadNextLink(format!("not an absolute URL ({e})")))?;
    if url.origin() != base.origin() || !url.username().is_empty() || url.password().is_some() {
        return Err(ListError::ForeignNextLink(url.origin().ascii_serialization()));
    }
    if url.path() != collection_path(version) {
        return Err(ListError::BadNextLink(format!(
            "path {} is not {}",
            url.path(),
            collection_path(version)
        )));
    }
    if url.fragment().is_some() {
        return Err(ListError::BadNextLink("it has a fragment".into()));
    }
    Ok(url)
}

/// Where a dry run reads one assignment or request, with the relationships it shows.
pub fn item_url(base: &Url, version: ApiVersion, target: &Target) -> Url {
    let (collection, expand) = match (version, target) {
        (_, Target::Assignment(_)) => (collection(version), "target,accessPackage"),
        (ApiVersion::V1, Target::AssignmentRequest(_)) => {
            ("assignmentRequests", "accessPackage,assignment($expand=target)")
        }
        (ApiVersion::Beta, Target::AssignmentRequest(_)) => (
            "accessPackageAssignmentRequests",
            "accessPackage,accessPackageAssignment($expand=target)",
        ),
    };
    let path = format!("/{}/{EM}/{collection}/{}", version.segment(), target.id());
    with_query(base, &path, &[("$expand", expand)])
}

/// Fetches and parses one page, retrying throttling and transient failures like the reprocess calls.
pub async fn fetch_page(client: &GraphClient, url: &Url, deadline: Instant) -> Result<Page, ListError> {
    let (status, body) = get_json(client, url, deadline).await?;
    if status == 404 {
        return Err(error_from(404, &body));
    }
    parse_page(client.base_url(), client.api_version(), &body)
}

/// Reads one assignment or request for a dry run: `Ok(None)` when Graph says 404.
pub async fn get_item(client: &GraphClient, target: &Target, deadline: Instant) -> Result<Option<Value>, ListError> {
    let url = item_url(client.base_url(), client.api_version(), target);
    let (status, body) = get_json(client, &url, deadline).await?;
    if status == 404 {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(&body).map_err(|e| ListError::BadBody(e.to_string()))?;
    Ok(Some(summarize_item(&value)))
}

/// The fields a dry run shows, across v1.0 (`state`) and beta (`assignmentState`/`requestState`).
pub fn summarize_item(value: &Value) -> Value {
    let text = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| value.get(*k).and_then(Value::as_str))
            .map(str::to_owned)
    };
    let assignment = value.get("assignment").or_else(|| value.get("accessPackageAssignment"));
    let target = value
        .get("target")
        .or_else(|| assignment.and_then(|a| a.get("target")))
        .map(subject);
    json!({
        "state": text(&["state", "assignmentState", "requestState"]),
        "status": text(&["status", "assignmentStatus", "requestStatus"]),
        "completedDateTime": text(&["completedDateTime", "completedDate"]),
        "accessPackage": value.get("accessPackage").map(package),
        "target": target,
    })
}

fn pick(value: &Value, keys: &[&str]) -> Value {
    let mut out = Map::new();
    for key in keys {
        if let Some(v) = value.get(*key).filter(|v| !v.is_null()) {
            out.insert((*key).to_owned(), v.clone());
        }
    }
    Value::Object(out)
}

fn package(value: &Value) -> Value {
    pick(value, &["id", "displayName"])
}

fn subject(value: &Value) -> Value {
    pick(
        value,
        &["objectId", "displayName", "principalName", "email", "subjectType"],
    )
}

pub fn parse_page(base: &Url, version: ApiVersion, body: &[u8]) -> Result<Page, ListError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ListError::BadBody(e.to_string()))?;
    let entries = value
        .get("value")
        .and_then(Value::as_array)
        .ok_or_else(|| ListError::BadBody("no `value` array".into()))?;
    let mut page = Page::default();
    let mut seen = std::collections::HashSet::new();
    for entry in entries {
        let id = entry
            .get("id")
            .and_then(Value::as_str)
            .and_then(|s| AssignmentId::parse(s).ok());
        let state = entry
            .get("state")
            .or_else(|| entry.get("assignmentState"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let delivered = state.as_deref().is_none_or(|s| s.eq_ignore_ascii_case("delivered"));
        match id {
            Some(id) if delivered => {
                if seen.insert(id) {
                    page.items.push(ListedAssignment {
                        id,
                        state,
                        access_package: entry.get("accessPackage").map(package),
                        target: entry.get("target").map(subject),
                    });
                }
            }
            _ => page.dropped += 1,
        }
    }
    page.next_link = match value.get("@odata.nextLink") {
        None | Some(Value::Null) => None,
        Some(Value::String(link)) => Some(checked_next_link(base, version, link)?),
        Some(_) => return Err(ListError::BadBody("`@odata.nextLink` is not a string".into())),
    };
    Ok(page)
}

fn error_from(status: u16, body: &[u8]) -> ListError {
    let error = super::client::parse_graph_error(body);
    let (code, message) = error.map(|e| (e.code, e.message)).unwrap_or_else(|| {
        (
            format!("Http{status}"),
            String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
        )
    });
    match status {
        401 | 403 => ListError::Denied { code, message },
        _ => ListError::Rejected { status, code, message },
    }
}

/// GET with the shared limiter and the same retry rules as reprocess: 408/429/5xx, timeouts and
/// connection failures are retried (honouring `Retry-After`, which also closes the process-wide gate)
/// until the attempt cap or `deadline`. Returns the status (2xx or 404) and the body.
async fn get_json(client: &GraphClient, url: &Url, deadline: Instant) -> Result<(u16, Vec<u8>), ListError> {
    let (attempt_timeout, max_attempts) = client.retry_policy();
    let client_request_id = Guid::new_random();
    let mut attempts = 0u32;
    loop {
        let Some(permit) = client.limiter().acquire(deadline, 1).await else {
            let wait = client
                .limiter()
                .gate_open_at()
                .map(|at| at.saturating_duration_since(Instant::now()));
            return Err(ListError::Transient {
                reason: "the invocation's time budget ran out while Graph asked us to back off".into(),
                retry_after: wait,
            });
        };
        attempts += 1;
        let timeout = attempt_timeout
            .min(deadline.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(100));
        let (reason, wait) = match client.authorized_get(url, &client_request_id, timeout).await {
            Err(GetError::ForeignOrigin(origin)) => return Err(ListError::ForeignNextLink(origin)),
            Err(e) => (e.to_string(), None),
            Ok(response) => {
                let status = response.status().as_u16();
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let request_id = header("request-id").unwrap_or_default();
                let retry_after = header("retry-after").as_deref().and_then(parse_retry_after);
                let body = tokio::time::timeout(timeout, response.bytes()).await;
                tracing::info!(status, path = url.path(), graph_request_id = %request_id, client_request_id = %client_request_id, attempt = attempts, "Graph GET");
                match body {
                    Ok(Ok(body)) => match status {
                        200..=299 | 404 => return Ok((status, body.to_vec())),
                        408 | 429 | 500 | 502 | 503 | 504 => (format!("Graph answered {status}"), retry_after),
                        _ => return Err(error_from(status, &body)),
                    },
                    Ok(Err(e)) => (format!("reading Graph's {status} answer failed: {e}"), None),
                    Err(_) => (format!("Graph's {status} answer did not finish in time"), None),
                }
            }
        };
        drop(permit);
        let throttled = wait.is_some();
        let wait = wait.unwrap_or_else(|| backoff(attempts));
        if throttled {
            client.limiter().back_off(wait);
        }
        tracing::warn!(path = url.path(), attempt = attempts, reason = %reason, wait_ms = wait.as_millis() as u64, "transient Graph failure while reading");
        if attempts >= max_attempts || Instant::now() + wait >= deadline {
            return Err(ListError::Transient {
                reason,
                retry_after: Some(wait),
            });
        }
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
#[path = "list_tests.rs"]
mod tests;
