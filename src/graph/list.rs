//! Reading entitlement management: one page of the delivered assignments of a package or a user, and
//! single assignments/requests for dry runs. Reading exists so that fan-out can turn a package or a
//! user into assignment IDs, a page at a time. URLs come from `paths` (a `nextLink` only after its
//! origin and collection are checked); requests go through the `transport` like every other call.

use super::GraphClient;
use super::lookup::membership_of;
use super::paths::{NextLinkError, continuation_url, first_page_url, item_url};
use super::status::{StatusClass, graph_error_or_text};
use super::transport::{Call, GaveUp, GraphRequest, SendError};
use crate::config::ApiVersion;
use crate::domain::outcome::REQUIRED_APP_ROLE;
use crate::domain::{AssignmentId, Guid, Membership, Scope, Target};
use serde_json::{Map, Value, json};
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

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
    #[error("Graph refused to read {what} ({code}: {message}); the identity needs the app role {permission}")]
    MissingPermission {
        what: String,
        permission: &'static str,
        code: String,
        message: String,
    },
    #[error("Graph answered {status} ({code}: {message})")]
    Rejected { status: u16, code: String, message: String },
    #[error("Graph's answer was not a collection page: {0}")]
    BadBody(String),
}

impl From<NextLinkError> for ListError {
    fn from(e: NextLinkError) -> Self {
        match e {
            NextLinkError::Foreign(origin) => ListError::ForeignNextLink(origin),
            NextLinkError::Malformed(reason) => ListError::BadNextLink(reason),
        }
    }
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
    /// Its package and that package's catalog, as the listing's `$expand` showed them.
    pub membership: Membership,
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
    /// Graph's continuation, checked against the scope and rebuilt ([`continuation_url`]).
    pub next_link: Option<Url>,
    /// Entries dropped: not delivered (a filter Graph should already have applied) or without a GUID `id`.
    pub dropped: usize,
}

/// Fetches and parses one page, retrying throttling and transient failures like the reprocess calls.
/// The first page of `scope`, or its continuation at `next_link` as [`continuation_url`] rebuilt it.
pub fn page_url(client: &GraphClient, scope: &Scope, next_link: Option<&str>) -> Result<Url, ListError> {
    match next_link {
        Some(link) => Ok(continuation_url(client.base_url(), client.api_version(), scope, link)?),
        None => Ok(first_page_url(client.base_url(), client.api_version(), scope)),
    }
}

/// `scope` is what `url` lists: Graph's `nextLink` must continue that listing and nothing wider.
pub async fn fetch_page(client: &GraphClient, scope: &Scope, url: &Url, deadline: Instant) -> Result<Page, ListError> {
    let (status, body) = get_json(client, url, deadline).await?;
    if status == 404 {
        return Err(error_from(404, &body));
    }
    parse_page(client.base_url(), client.api_version(), scope, &body)
}

/// Reads one assignment or request for a dry run: what it shows ([`summarize_item`]) and Graph's whole
/// answer; `Ok(None)` when Graph says 404.
pub async fn get_item(
    client: &GraphClient,
    target: &Target,
    deadline: Instant,
) -> Result<Option<(Value, Value)>, ListError> {
    let url = item_url(client.base_url(), client.api_version(), target);
    let (status, body) = get_json(client, &url, deadline).await?;
    if status == 404 {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(&body).map_err(|e| ListError::BadBody(e.to_string()))?;
    Ok(Some((summarize_item(&value), value)))
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
    let mut out = pick(value, &["id", "displayName", "catalogId"]);
    if let Some(catalog) = value.get("catalog").or_else(|| value.get("accessPackageCatalog")) {
        out["catalog"] = pick(catalog, &["id", "displayName"]);
    }
    out
}

fn subject(value: &Value) -> Value {
    pick(
        value,
        &["objectId", "displayName", "principalName", "email", "subjectType"],
    )
}

/// A list page's JSON with its `value` array taken out (the rest holds `@odata.nextLink`).
pub(super) fn split_page(body: &[u8]) -> Result<(Vec<Value>, Value), ListError> {
    let mut value: Value = serde_json::from_slice(body).map_err(|e| ListError::BadBody(e.to_string()))?;
    match value.get_mut("value").map(Value::take) {
        Some(Value::Array(entries)) => Ok((entries, value)),
        _ => Err(ListError::BadBody("no `value` array".into())),
    }
}

pub fn parse_page(base: &Url, version: ApiVersion, scope: &Scope, body: &[u8]) -> Result<Page, ListError> {
    let (entries, value) = split_page(body)?;
    let mut page = Page::default();
    let mut seen = std::collections::HashSet::new();
    for entry in &entries {
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
                        membership: membership_of(false, entry),
                    });
                }
            }
            _ => page.dropped += 1,
        }
    }
    page.next_link = match value.get("@odata.nextLink") {
        None | Some(Value::Null) => None,
        Some(Value::String(link)) => Some(continuation_url(base, version, scope, link)?),
        Some(_) => return Err(ListError::BadBody("`@odata.nextLink` is not a string".into())),
    };
    Ok(page)
}

pub(super) fn error_from(status: u16, body: &[u8]) -> ListError {
    let error = graph_error_or_text(status, body);
    let (code, message) = (error.code, error.message);
    match StatusClass::of(status) {
        StatusClass::Denied => ListError::Denied { code, message },
        _ => ListError::Rejected { status, code, message },
    }
}

/// A GET through the transport, with the same retry rules as reprocess. Returns the status (2xx or
/// 404) and the body; every other answer is an error.
pub(super) async fn get_json(client: &GraphClient, url: &Url, deadline: Instant) -> Result<(u16, Vec<u8>), ListError> {
    let client_request_id = Guid::new_random();
    let request = GraphRequest {
        call: Call::Read,
        url,
        client_request_id: &client_request_id,
        priority: client.priority(),
    };
    let exchange = client.transport().send(&request, deadline).await;
    tracing::info!(
        status = exchange.last_status,
        path = url.path(),
        query = url.query().unwrap_or(""),
        graph_request_id = exchange.last_request_id.as_deref().unwrap_or(""),
        client_request_id = %client_request_id,
        attempts = exchange.attempts,
        "Graph GET"
    );
    match exchange.result {
        Ok(answer) => match StatusClass::of(answer.status) {
            StatusClass::Success | StatusClass::NotFound => Ok((answer.status, answer.body.to_vec())),
            _ => Err(error_from(answer.status, &answer.body)),
        },
        Err(GaveUp::Transient { reason, wait }) => Err(ListError::Transient {
            reason,
            retry_after: wait,
        }),
        Err(GaveUp::Final(SendError::ForeignOrigin(origin))) => Err(ListError::ForeignNextLink(origin)),
        Err(GaveUp::Final(e)) => Err(ListError::Denied {
            code: "InvalidToken".into(),
            message: e.to_string(),
        }),
    }
}

#[cfg(test)]
#[path = "list_tests.rs"]
mod tests;
