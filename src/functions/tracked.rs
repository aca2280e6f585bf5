//! What the functions that answer 202 share: registering the operation's first messages in the state
//! store before they are enqueued, and the `Location` / `Retry-After` of the answer.
//!
//! **Where the status URL comes from.** Only from `Data.req.Url`, which the host builds as
//! `{scheme}://{Host}{Path}{QueryString}` (`HttpRequestExtensions.GetRequestAsJObject`). On Linux
//! Consumption and Flex Consumption the host first sets `Host` from the platform front end's
//! `DISGUISED-HOST` and the scheme from `X-Forwarded-Proto` (`AppServiceHeaderFixupMiddleware`, used when
//! `IsLinuxAzureManagedHosting`), so `Url` is the public address the caller used — a host name the front
//! end routed to this app. `X-Forwarded-Host` is never used: App Service passes a caller's own value
//! through, so it could point the poll (and a Logic App's credentials) anywhere. No setting is used
//! either. Only scheme, host, port and the route prefix are kept: the caller's query (its `code=`
//! function key) never reaches `Location`. `http` is kept only on loopback (local runs); elsewhere it is
//! `https` (the app is `httpsOnly`).

use super::auth::Authorized;
use super::http_io::error_body;
use crate::domain::Caller;
use crate::domain::{CorrelationId, MessageKey};
use crate::host::{HttpReply, HttpTrigger};
use crate::state::AppState;
use crate::work::{Meta, QueueMessage, Work, keyed};
use serde::Serialize;
use serde_json::json;
use url::Url;

/// `Retry-After` on every 202: how long a poller should wait before asking again.
pub const RETRY_AFTER_SECONDS: u64 = 10;

/// Why a 202 has no status URL.
pub const STATUS_UNAVAILABLE: &str = "operation status is not available: the handler has no storage configured \
     (AzureWebJobsStorage), so this work is not tracked; see the function logs for its outcome";

/// `<scheme>://<host[:port]><route prefix>operations/<id>` next to the function `request` reached.
pub fn status_url(request: &HttpTrigger, correlation_id: &CorrelationId) -> Option<String> {
    let url = Url::parse(&request.url).ok()?;
    let host = url.host_str()?;
    let scheme = if url.scheme() == "http" && crate::setting::is_loopback(&url) {
        "http"
    } else {
        "https"
    };
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    // The route prefix: the path up to the function's own route (the last segment, or the last two for
    // `operations/{id}`).
    let path = url.path();
    let prefix = match path.find("/operations/") {
        Some(at) => &path[..=at],
        None => &path[..=path.rfind('/')?],
    };
    Some(format!("{scheme}://{host}{port}{prefix}operations/{correlation_id}"))
}

/// The operation a call starts: its ID, where it came from (`http`, `alert`), the verified caller that
/// owns it (the only one that may poll it), and how many packages or users it lists.
pub struct Operation<'a> {
    pub id: &'a CorrelationId,
    pub source: &'static str,
    pub owner: Option<&'a str>,
    pub scopes: usize,
}

/// A call's work as queue messages, each carrying the correlation ID, who asked, and the caller's
/// narrowing of the scope (which the queue function applies: the alert and fan-out never read Graph).
pub fn messages(
    work: &[Work],
    correlation_id: &CorrelationId,
    caller: &Caller,
    auth: &Authorized,
) -> Vec<QueueMessage> {
    let meta = Meta {
        correlation_id: Some(correlation_id.clone()),
        origin: Some(caller.clone()),
        scope: auth.narrowing.clone(),
        ..Meta::default()
    };
    work.iter().map(|w| QueueMessage::child(w.clone(), &meta)).collect()
}

/// The messages to enqueue (with message keys when tracked) and the status URL, or the refusal.
pub struct Tracked {
    pub messages: Vec<QueueMessage>,
    pub status_url: Option<String>,
}

impl Tracked {
    /// The message texts, as they go on the queue.
    pub fn texts(&self) -> impl Iterator<Item = String> + '_ {
        self.messages.iter().map(QueueMessage::to_text)
    }
}

/// Registers `messages` as the operation's first messages when a state store is configured. A store
/// that cannot be written refuses the call (503, nothing enqueued): a 202 whose `Location` would never
/// finish is worse than a retry.
pub async fn start(
    state: &AppState,
    request: &HttpTrigger,
    operation: Operation<'_>,
    messages: Vec<QueueMessage>,
    invocation_id: &str,
) -> Result<Tracked, HttpReply> {
    let Operation {
        id: correlation_id,
        source,
        owner,
        scopes,
    } = operation;
    let messages: Vec<QueueMessage> = messages.into_iter().flat_map(QueueMessage::fitted).collect();
    let Some(store) = &state.services().await.operations else {
        return Ok(Tracked {
            messages,
            status_url: None,
        });
    };
    let messages = keyed(messages, invocation_id);
    let keys: Vec<MessageKey> = messages.iter().filter_map(|m| m.meta.message_key.clone()).collect();
    match store.start(correlation_id, source, owner, scopes, &keys).await {
        Ok(crate::operations::Started::New) => {}
        Ok(crate::operations::Started::Exists) => {
            tracing::warn!(correlation_id = %correlation_id, "refused: the correlation ID names an existing operation");
            return Err(exists_reply(correlation_id));
        }
        Err(e) => {
            tracing::error!(error = %e, correlation_id = %correlation_id, "could not record the operation; nothing enqueued");
            let reply = HttpReply::json(
                503,
                error_body(
                    "status_store_unavailable",
                    "the operation's state could not be recorded, so nothing was enqueued; try again",
                    json!({}),
                ),
            );
            return Err(reply.with_header("Retry-After", "30"));
        }
    }
    Ok(Tracked {
        messages,
        status_url: status_url(request, correlation_id),
    })
}

/// The 409 to a call whose body names an operation that already exists: operation IDs are claimed by
/// the call that creates them, so no later call can add to (or reopen, or extend) another's operation.
/// Nothing was done. The caller's own tracking value belongs in `x-ms-client-tracking-id`.
fn exists_reply(op: &CorrelationId) -> HttpReply {
    let message = format!(
        "correlationId {op} names an existing operation, which belongs to the call that started it; nothing \
         was done. Send a correlationId not used before, or none (one is made up), and put your own \
         tracking value in the x-ms-client-tracking-id header"
    );
    let fields = json!({ "fields": [{ "field": "correlationId", "reason": "names an existing operation" }] });
    HttpReply::json(409, error_body("operation_exists", &message, fields))
}

/// The 202: `Location` and `Retry-After` when tracked, and `statusUrl` (or why there is none) in the body.
pub fn accepted(body: impl Serialize, status_url: Option<&str>) -> HttpReply {
    let mut body = json!(body);
    body["statusUrl"] = json!(status_url);
    match status_url {
        Some(url) => HttpReply::json(202, body)
            .with_header("Location", url)
            .with_header("Retry-After", RETRY_AFTER_SECONDS.to_string()),
        None => {
            body["statusUnavailable"] = json!(STATUS_UNAVAILABLE);
            HttpReply::json(202, body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn request(url: &str) -> HttpTrigger {
        HttpTrigger {
            method: "POST".into(),
            url: url.into(),
            query: Map::new(),
            headers: Map::new(),
            params: Map::new(),
            body: None,
            key_name: None,
        }
    }

    #[test]
    fn status_urls_keep_origin_and_prefix_but_never_the_query() {
        let id = CorrelationId::parse("op-1").unwrap();
        let cases = [
            (
                "https://app.azurewebsites.net/api/reprocess?code=SECRET&dryRun=false",
                "https://app.azurewebsites.net/api/operations/op-1",
            ),
            (
                "http://localhost:7071/api/alert",
                "http://localhost:7071/api/operations/op-1",
            ),
            (
                "http://app.azurewebsites.net/custom/reprocess",
                "https://app.azurewebsites.net/custom/operations/op-1",
            ),
            (
                "https://app.azurewebsites.net/api/operations/other?page=x",
                "https://app.azurewebsites.net/api/operations/op-1",
            ),
        ];
        for (from, want) in cases {
            assert_eq!(status_url(&request(from), &id).as_deref(), Some(want), "{from}");
        }
        assert_eq!(status_url(&request("not a url"), &id), None);
    }
}
