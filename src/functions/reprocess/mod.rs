//! `function-reprocess`: POST /api/reprocess with `{"assignmentIds":[…], "assignmentRequestIds":[…]}`.
//! 200 with per-ID results when every ID reached a final outcome; 503 + `Retry-After` with the same
//! results when some stayed transient (Logic Apps' default retry policy retries 503).
//!
//! With `accessPackageIds`/`userIds` the call is fan-out: one expansion message per package/user (and
//! the direct IDs in chunks of 20) go to the queue and the answer is 202 at once, so a package of any
//! size is never reprocessed inside this invocation (`crate::fanout`). `"dryRun": true` or
//! `?dryRun=true` reads instead and reprocesses nothing (`crate::dry_run`).

mod drift;

use super::accepted::{Accepted, Named, Queued};
use super::auth::{Authorized, authorize};
use super::bindings::http as b;
use super::http_io::{caller, error_body, json_body, query_flag};
use super::tracked;
use crate::audit::{AuditRecord, Invocation};
use crate::catalog_scope::{PackageVerdict, check_packages};
use crate::domain::{AccessPackageId, Caller, CorrelationId, Scope};
use crate::dry_run;
use crate::host::{HttpReply, HttpTrigger, InvokeResponse};
use crate::json::StrictJsonError;
use crate::message::{HttpBody, RequestError, parse_http_body};
use crate::state::{AppState, Services};
use crate::work::{self, Ctx, Work};
use serde_json::json;
use tokio::time::Instant;

pub async fn handle(
    state: &AppState,
    request: &HttpTrigger,
    invocation_id: &str,
    response: &mut InvokeResponse,
) -> HttpReply {
    let settings = &state.settings;
    let auth = match authorize(settings, request) {
        Ok(auth) => auth,
        Err(reply) => return reply,
    };
    let body = match json_body(
        request,
        "the request has no body. Send {\"assignmentIds\":[\"...\"]} with a Content-Length header \
                 (the Functions host drops bodies sent with Transfer-Encoding: chunked)",
        settings.max_body_bytes,
    ) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let parsed = match parse_http_body(body, settings.max_ids_per_call) {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::warn!(error = %e, "rejected HTTP request");
            response.log(format!("rejected: {e}"));
            return request_error_reply(&e);
        }
    };
    let dry_run = match query_flag(request, "dryRun") {
        Ok(flag) => flag || parsed.dry_run,
        Err(reply) => return reply,
    };
    let deadline = Instant::now() + settings.http_budget;
    let caller = auth.name_in(caller(request, "http", b::FUNCTION, invocation_id));
    let invocation = Invocation {
        trigger: "http",
        function: b::FUNCTION,
        invocation_id: invocation_id.to_owned(),
        correlation_id: parsed.correlation_id.as_ref().map(|c| c.to_string()),
        caller: caller.clone(),
        queue: None,
    };
    if let Some(reply) = refuse_packages_out_of_scope(state, &auth, &parsed, &invocation, deadline, response).await {
        return reply;
    }
    let call = Call {
        request,
        parsed: &parsed,
        invocation: &invocation,
        dry_run,
        deadline,
        auth: &auth,
    };
    if !parsed.drift_packages.is_empty() {
        return drift::handle(state, call, response).await;
    }
    if dry_run {
        let services = state.services().await;
        let mut body = dry_run::report(
            &services.graph,
            auth.scope.as_ref(),
            &parsed.targets,
            &parsed.scopes,
            deadline,
        )
        .await;
        body["invocationId"] = json!(invocation_id);
        let line = format!("dry run, nothing reprocessed: {}", body["summary"]);
        tracing::info!(summary = %body["summary"], truncated = %body["truncated"], "dry run finished");
        services.recorder.record(vec![AuditRecord::dry_run(
            &invocation,
            &parsed.targets,
            &parsed.scopes,
            &body["summary"].to_string(),
        )]);
        response.log(line);
        return HttpReply::json(200, body);
    }
    if !parsed.scopes.is_empty() {
        return fan_out(state, &call, response).await;
    }
    if parsed.targets.len() > settings.http_sync_max_ids {
        return split_into_messages(state, &call, &caller, response).await;
    }
    let services = state.services().await;
    let correlation_id = parsed
        .correlation_id
        .clone()
        .or_else(|| CorrelationId::parse(invocation_id))
        .unwrap_or_else(CorrelationId::new_random);
    let ctx = Ctx {
        settings,
        services,
        graph: &services.graph,
        reprocessor: &services.reprocessor,
        deadline,
        correlation_id: &correlation_id,
        invocation: &invocation,
        allowed: auth.scope.as_ref(),
    };
    let report = work::reprocess::reprocess(&ctx, &parsed.targets).await;
    response.log(report.one_line());
    let body = json!({ "invocationId": invocation_id, "summary": report.summary, "results": report.results });
    if report.all_final() {
        HttpReply::json(200, body)
    } else {
        let retry_after = report.max_retry_after().unwrap_or(30).clamp(1, 300);
        HttpReply::json(503, body).with_header("Retry-After", retry_after.to_string())
    }
}

/// One HTTP call, as parsed.
pub(super) struct Call<'a> {
    pub request: &'a HttpTrigger,
    pub parsed: &'a HttpBody,
    pub invocation: &'a Invocation,
    pub dry_run: bool,
    pub deadline: Instant,
    /// The caller, as authenticated, and the call's scope.
    pub auth: &'a Authorized,
}

/// Packages and users: one expansion message per scope (listed page by page by the queue function) and
/// the direct IDs in chunks, answered 202 at once, so a package of any size is never reprocessed inside
/// this invocation.
async fn fan_out(state: &AppState, call: &Call<'_>, response: &mut InvokeResponse) -> HttpReply {
    let planned = work::plan(&call.parsed.targets, &call.parsed.scopes);
    enqueue_planned(state, call, planned, response).await
}

/// Hands `planned` to the queue as one tracked operation (its listings — drift checks and expansions —
/// counted for the status) and answers 202 with what was accepted, `Location` and `Retry-After`.
pub(super) async fn enqueue_planned(
    state: &AppState,
    call: &Call<'_>,
    planned: Vec<Work>,
    response: &mut InvokeResponse,
) -> HttpReply {
    let parsed = call.parsed;
    let invocation_id = call.invocation.invocation_id.as_str();
    let correlation_id = parsed.correlation_id.clone().unwrap_or_else(CorrelationId::new_random);
    let listings = planned
        .iter()
        .filter(|w| matches!(w, Work::Drift(_) | Work::Expand { .. }))
        .count();
    let queued = tracked::messages(&planned, &correlation_id, &call.invocation.caller, call.auth);
    let operation = tracked::Operation {
        id: &correlation_id,
        source: "http",
        owner: call.auth.owner(),
        scopes: listings,
    };
    let tracked = match tracked::start(state, call.request, operation, queued, invocation_id).await {
        Ok(tracked) => tracked,
        Err(reply) => return reply,
    };
    response.enqueue(b::ENQUEUE, tracked.texts());
    tracing::info!(correlation_id = %correlation_id, messages = planned.len(), listings, "work enqueued");
    response.log(format!(
        "{correlation_id}: {} messages enqueued, {listings} of them listings",
        planned.len()
    ));
    let named = Named {
        targets: &parsed.targets,
        scopes: &parsed.scopes,
        drift_packages: &parsed.drift_packages,
    };
    let body = Accepted::new(
        &planned,
        named,
        &correlation_id,
        invocation_id,
        &state.settings.queue_name,
    );
    tracked::accepted(body, tracked.status_url.as_deref())
}

/// More IDs than one invocation should carry (`HTTP_SYNC_MAX_IDS`): one queue message per
/// `$batch`-sized chunk, answered 202 with the count and a correlation ID. The queue function then
/// reprocesses them with its retry and dead-letter rules.
async fn split_into_messages(
    state: &AppState,
    call: &Call<'_>,
    caller: &Caller,
    response: &mut InvokeResponse,
) -> HttpReply {
    let targets = &call.parsed.targets;
    let invocation_id = call.invocation.invocation_id.as_str();
    // The invocation ID is a log-safe token already (checked by `startup`), so it can stand in.
    let correlation_id = call
        .parsed
        .correlation_id
        .clone()
        .or_else(|| CorrelationId::parse(invocation_id))
        .unwrap_or_else(CorrelationId::new_random);
    let queued = tracked::messages(&work::id_chunks(targets), &correlation_id, caller, call.auth);
    let count = queued.len();
    let operation = tracked::Operation {
        id: &correlation_id,
        source: "http",
        owner: call.auth.owner(),
        scopes: 0,
    };
    let tracked = match tracked::start(state, call.request, operation, queued, invocation_id).await {
        Ok(tracked) => tracked,
        Err(reply) => return reply,
    };
    response.enqueue(b::ENQUEUE, tracked.texts());
    response.log(format!(
        "{} IDs split into {count} queue messages, correlation {correlation_id}",
        targets.len()
    ));
    tracing::info!(ids = targets.len(), messages = count, correlation_id = %correlation_id, "large call queued");
    let body = Queued {
        invocation_id,
        status: "queued",
        correlation_id: &correlation_id,
        ids: targets.len(),
        messages: count,
        queue: &state.settings.queue_name,
    };
    tracked::accepted(body, tracked.status_url.as_deref())
}

/// With a catalog scope (the deployment's, narrowed by the caller's roles), an access package outside it (in `accessPackageIds` or
/// `detectDriftFor.accessPackageIds`) is refused up front: 400 `out_of_scope` naming every such package
/// (503 + `Retry-After` when Graph could not be asked in time), nothing enqueued or read further.
async fn refuse_packages_out_of_scope(
    state: &AppState,
    auth: &Authorized,
    parsed: &HttpBody,
    invocation: &Invocation,
    deadline: Instant,
    response: &mut InvokeResponse,
) -> Option<HttpReply> {
    let allowed = auth.scope.as_ref()?;
    let drift_field = "detectDriftFor.accessPackageIds";
    let mut fields: Vec<&str> = Vec::new();
    let mut ids: Vec<AccessPackageId> = Vec::new();
    for (field, p) in parsed
        .scopes
        .iter()
        .filter_map(|s| match s {
            Scope::AccessPackage(p) => Some(("accessPackageIds", *p)),
            Scope::User(_) => None,
        })
        .chain(parsed.drift_packages.iter().map(|p| (drift_field, *p)))
    {
        fields.push(field);
        ids.push(p);
    }
    if ids.is_empty() {
        return None;
    }
    let services: &Services = state.services().await;
    let verdicts = check_packages(&services.graph, allowed, &ids, deadline).await;
    if verdicts.iter().any(PackageVerdict::is_transient) {
        let body = error_body(
            "scope_check_unavailable",
            "the access packages' catalogs could not be read from Graph in time; retry later",
            json!({}),
        );
        return Some(HttpReply::json(503, body).with_header("Retry-After", "30"));
    }
    let refused: Vec<(AccessPackageId, String, &str)> = ids
        .iter()
        .zip(&verdicts)
        .zip(&fields)
        .filter_map(|((p, v), field)| v.reason(p).map(|reason| (*p, reason, *field)))
        .collect();
    if refused.is_empty() {
        return None;
    }
    services.recorder.record(
        refused
            .iter()
            .map(|(p, reason, _)| AuditRecord::fan_out_refused(invocation, &Scope::AccessPackage(*p), reason))
            .collect(),
    );
    let fields: Vec<_> = refused
        .iter()
        .map(|(p, reason, field)| json!({ "field": field, "id": p, "reason": reason }))
        .collect();
    let message = format!(
        "{} access package(s) outside the catalog scope this call may touch (the deployment's, narrowed by the caller's roles); nothing was enqueued: {}",
        refused.len(),
        refused
            .iter()
            .map(|(p, _, _)| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    tracing::warn!(refused = refused.len(), "fan-out refused: access packages out of scope");
    response.log(message.clone());
    Some(HttpReply::json(
        400,
        error_body("out_of_scope", &message, json!({ "fields": fields })),
    ))
}

fn request_error_reply(e: &RequestError) -> HttpReply {
    let message = e.to_string();
    match e {
        RequestError::TooManyIds { limit, setting, count } => HttpReply::json(
            413,
            error_body(
                "too_many_ids",
                &message,
                json!({ "limit": limit, "count": count, "setting": setting }),
            ),
        ),
        RequestError::Fields { errors, total } => HttpReply::json(
            400,
            error_body(
                "invalid_field",
                &message,
                json!({ "fields": errors, "invalidFields": total }),
            ),
        ),
        RequestError::DuplicateKey(StrictJsonError::DuplicateKey { path }) => HttpReply::json(
            400,
            error_body(
                "duplicate_key",
                &message,
                json!({ "fields": [{ "field": path, "reason": "duplicate key" }] }),
            ),
        ),
        RequestError::TooManyValues(_) => HttpReply::json(413, error_body("too_many_values", &message, json!({}))),
        RequestError::Json(_) | RequestError::NotAnObject(_) | RequestError::DuplicateKey(_) => {
            HttpReply::json(400, error_body("invalid_json", &message, json!({})))
        }
        RequestError::Empty | RequestError::NoTargets => {
            HttpReply::json(400, error_body("no_ids", &message, json!({})))
        }
    }
}
