//! `function-operations`: `GET /api/operations/{correlationId}[?page=<id>]`, the status URL every 202
//! points at (Logic Apps' asynchronous request-reply pattern: poll while 202, take the 200's body).
//!
//! - 202 + `Location` (this URL) + `Retry-After` while any message of the operation is queued or running;
//! - 200 when finished: `{"correlationId","status","createdAt","updatedAt","summary","listing","results",
//!   "deadLettered","nextLink"?}`, `status` one of `succeeded`, `failed`, `completedWithErrors`; at most
//!   `OPERATIONS_RESULTS_PAGE_SIZE` (1000) results per answer, the rest behind `nextLink` (`?page=<last ID>`);
//! - 404 for an unknown or expired operation, 400 for a malformed ID or `page`, 405 for another method;
//! - 503 + `Retry-After` when the state store cannot be read, or when no storage is configured.

use super::bindings::{HTTP_REQUEST, operations as b};
use super::http_io::error_body;
use super::tracked::{RETRY_AFTER_SECONDS, status_url};
use crate::domain::{CorrelationId, Guid};
use crate::host::{Envelope, HttpReply, HttpTrigger, InvokeResponse};
use crate::operations::{OperationView, StatusKind};
use crate::state::AppState;
use serde::Serialize;
use serde_json::{Map, Value, json};

fn bad_request(field: &str, reason: &str) -> HttpReply {
    HttpReply::json(
        400,
        error_body(
            "invalid_field",
            &format!("{field}: {reason}"),
            json!({ "fields": [{ "field": field, "reason": reason }] }),
        ),
    )
}

pub async fn handle(state: &AppState, envelope: &Envelope, response: &mut InvokeResponse) -> HttpReply {
    let request = match HttpTrigger::from_envelope(envelope, HTTP_REQUEST) {
        Ok(request) => request,
        Err(e) => return HttpReply::json(500, error_body("bad_envelope", &e.to_string(), json!({}))),
    };
    if !request.method.eq_ignore_ascii_case("GET") {
        return HttpReply::json(405, error_body("method_not_allowed", "use GET", json!({})))
            .with_header("Allow", "GET");
    }
    // Polling names what an operation touched, so it asks the same authentication as starting one.
    let auth = match super::auth::authorize(&state.settings, &request) {
        Ok(auth) => auth,
        Err(reply) => return reply,
    };
    let Some(correlation_id) = request.param(b::ID_PARAM).and_then(CorrelationId::parse) else {
        return bad_request(
            b::ID_PARAM,
            "must be 1 to 64 letters, digits or hyphens (the correlationId of a 202)",
        );
    };
    let after = match request.query_param("page").map(str::trim) {
        None | Some("") => None,
        Some(text) => match Guid::parse(text) {
            Ok(id) => Some(id),
            Err(_) => return bad_request("page", "must be the ID a previous answer's nextLink named"),
        },
    };
    let Some(store) = &state.services().await.operations else {
        // Retry-After as on every 503: the settings may be fixed and the app restarted meanwhile.
        return HttpReply::json(
            503,
            error_body("status_unavailable", super::tracked::STATUS_UNAVAILABLE, json!({})),
        )
        .with_header("Retry-After", RETRY_AFTER_SECONDS.to_string());
    };
    let view = match store.view(&correlation_id, after.as_ref()).await {
        // An operation a verified caller started is that caller's: to anyone else it does not exist,
        // so its results (which may name another catalog's IDs) are not shown, nor that it is there.
        Ok(Some(view)) if view.owner.is_none() || view.owner.as_deref() == auth.owner() => view,
        Ok(_) => {
            return HttpReply::json(
                404,
                error_body(
                    "operation_not_found",
                    &format!(
                        "no operation {correlation_id}: unknown, or older than its retention ({} days)",
                        store.retention().as_secs() / 86_400
                    ),
                    json!({}),
                ),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, correlation_id = %correlation_id, "operation state unreadable");
            return HttpReply::json(
                503,
                error_body(
                    "status_store_unavailable",
                    "the operation's state could not be read; try again",
                    json!({}),
                ),
            )
            .with_header("Retry-After", RETRY_AFTER_SECONDS.to_string());
        }
    };
    let self_url = status_url(&request, &correlation_id);
    response.log(format!(
        "operation {correlation_id}: {:?}, {} messages pending",
        view.status, view.pending_messages
    ));
    let body = body(&correlation_id, &view, self_url.as_deref(), store.page_size());
    if view.status == StatusKind::Running {
        let mut reply = HttpReply::json(202, body).with_header("Retry-After", RETRY_AFTER_SECONDS.to_string());
        if let Some(url) = self_url {
            reply = reply.with_header("Location", url);
        }
        return reply;
    }
    HttpReply::json(200, body)
}

/// The answer's body: the operation's progress, and once finished its summary and one page of results.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    correlation_id: &'a CorrelationId,
    status: StatusKind,
    created_at: &'a str,
    updated_at: &'a str,
    pending_messages: usize,
    listing: &'a crate::operations::ListingProgress,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    finished: Option<Finished<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Finished<'a> {
    summary: &'a Map<String, Value>,
    results: &'a [Value],
    results_page_size: usize,
    dead_lettered: &'a [Value],
    #[serde(skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
}

fn body(correlation_id: &CorrelationId, view: &OperationView, self_url: Option<&str>, page_size: usize) -> Value {
    let finished = (view.status != StatusKind::Running).then(|| Finished {
        summary: &view.summary,
        results: &view.results,
        results_page_size: page_size,
        dead_lettered: &view.dead_lettered,
        next_link: view
            .next_after
            .as_ref()
            .zip(self_url)
            .map(|(after, url)| format!("{url}?page={after}")),
    });
    json!(Body {
        correlation_id,
        status: view.status,
        created_at: &view.created_at,
        updated_at: &view.updated_at,
        pending_messages: view.pending_messages,
        listing: &view.listing,
        finished,
    })
}
