//! `function-reprocess-alert`: POST /api/alert from an Azure Monitor action group (webhook action with
//! the common alert schema). Action groups wait only briefly for an answer, so this function never
//! calls Graph: it reads the targets from the alert (`domain::alert`), enqueues them exactly like a
//! fan-out HTTP call (expansion messages for packages/users, chunks of 20 for IDs) and answers 202.
//! Resolved notifications and other alert shapes get 200 "nothing to do" with the reason. An alert this
//! function cannot act on *in full* (duplicate keys, more than `domain::alert::MAX_PAIRS` pairs, more
//! than `MAX_IDS_PER_CALL` IDs) is refused as a whole with a 4xx naming the limit: action groups retry
//! only 408, 429, 503, 504 and transport errors (azure-monitor-docs `alerts/action-groups.md`), so the
//! refusal is logged in the action group's history instead of being retried, and nothing is half done.
//! `?dryRun=true` shows what would be enqueued.

use super::accepted::{Accepted, Named};
use super::bindings::alert as b;
use super::http_io::{caller, error_body, json_body, query_flag};
use crate::audit::{AuditRecord, Invocation};
use crate::domain::CorrelationId;
use crate::domain::alert::{AlertVerdict, parse_alert};
use crate::host::{HttpReply, HttpTrigger, InvokeResponse};
use crate::json::{StrictJsonError, parse_strict, value_budget};
use crate::state::AppState;
use crate::work::{self, QueueMessage};
use serde_json::{Value, json};

fn nothing_to_do(reason: &str, skipped: Value, invocation_id: &str, response: &mut InvokeResponse) -> HttpReply {
    tracing::info!(reason, "alert: nothing to do");
    response.log(format!("alert: nothing to do: {reason}"));
    HttpReply::json(
        200,
        json!({ "status": "nothing to do", "reason": reason, "skipped": skipped, "invocationId": invocation_id }),
    )
}

fn refused(reply: HttpReply, reason: &str, response: &mut InvokeResponse) -> HttpReply {
    tracing::warn!(status = reply.status, reason, "alert refused as a whole");
    response.log(format!("alert refused ({}): {reason}", reply.status));
    reply
}

fn json_error_reply(e: &StrictJsonError) -> HttpReply {
    let message = format!("the alert is refused as a whole: {e}");
    match e {
        StrictJsonError::DuplicateKey { path } => HttpReply::json(
            400,
            error_body(
                "duplicate_key",
                &message,
                json!({ "fields": [{ "field": path, "reason": "duplicate key" }] }),
            ),
        ),
        StrictJsonError::TooManyValues { limit } => {
            HttpReply::json(413, error_body("too_many_values", &message, json!({ "limit": limit })))
        }
        StrictJsonError::Syntax(_) => HttpReply::json(
            400,
            error_body("invalid_json", &format!("the body is not JSON: {e}"), json!({})),
        ),
    }
}

pub async fn handle(
    state: &AppState,
    request: &HttpTrigger,
    invocation_id: &str,
    response: &mut InvokeResponse,
) -> HttpReply {
    let settings = &state.settings;
    let auth = match super::auth::authorize(settings, request) {
        Ok(auth) => auth,
        Err(reply) => return refused(reply, "the caller is not authorized", response),
    };
    let dry_run = match query_flag(request, "dryRun") {
        Ok(flag) => flag,
        Err(reply) => return reply,
    };
    let body = match json_body(
        request,
        "no alert payload: point an action group webhook (common alert schema) here",
        settings.max_body_bytes,
    ) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let payload: Value = match parse_strict(body, value_budget(settings.max_ids_per_call)) {
        Ok(payload) => payload,
        Err(e) => return refused(json_error_reply(&e), &e.to_string(), response),
    };
    let (targets, scopes, skipped, alert_rule) = match parse_alert(&payload) {
        AlertVerdict::NothingToDo { reason, skipped } => {
            return nothing_to_do(&reason, json!(skipped), invocation_id, response);
        }
        AlertVerdict::TooManyPairs { pairs, limit } => {
            let message = format!(
                "the alert carries {pairs} name/value pairs (dimensions and custom properties); at most {limit} are read, \
                 and reading only some could miss IDs, so nothing was enqueued"
            );
            let extra = json!({ "limit": limit, "count": pairs });
            let reply = HttpReply::json(413, error_body("too_many_pairs", &message, extra));
            return refused(reply, &message, response);
        }
        AlertVerdict::Work {
            targets,
            scopes,
            skipped,
            alert_rule,
        } => (targets, scopes, skipped, alert_rule),
    };
    let count = targets.len() + scopes.len();
    if count > settings.max_ids_per_call {
        let limit = settings.max_ids_per_call;
        let message = format!(
            "{count} distinct IDs exceed the limit of {limit} per call (MAX_IDS_PER_CALL); nothing was enqueued"
        );
        let extra = json!({ "limit": limit, "count": count, "setting": "MAX_IDS_PER_CALL" });
        let reply = HttpReply::json(413, error_body("too_many_ids", &message, extra));
        return refused(reply, &message, response);
    }
    let correlation_id = CorrelationId::new_random();
    // Who asked travels with every message, so the queue function's audit records name the alert.
    let mut origin = caller(request, "alert", b::FUNCTION, invocation_id);
    origin.alert_rule.clone_from(&alert_rule);
    origin.alert_id = payload["data"]["essentials"]["alertId"].as_str().map(str::to_owned);
    let origin = auth.name_in(origin);
    let planned = work::plan(&targets, &scopes);
    let queued = super::tracked::messages(&planned, &correlation_id, &origin, &auth);
    let named = Named {
        targets: &targets,
        scopes: &scopes,
        drift_packages: &[],
    };
    let body = Accepted::new(&planned, named, &correlation_id, invocation_id, &settings.queue_name)
        .with_alert(alert_rule.as_deref(), &skipped);
    if dry_run {
        let invocation = Invocation {
            trigger: "alert",
            function: b::FUNCTION,
            invocation_id: invocation_id.to_owned(),
            correlation_id: Some(correlation_id.to_string()),
            caller: origin.clone(),
            queue: None,
        };
        let summary = format!("{} messages would be enqueued", planned.len());
        let record = AuditRecord::dry_run(&invocation, &targets, &scopes, &summary);
        state.services().await.recorder.record(vec![record]);
        response.log(format!("alert dry run: {summary}"));
        let would = queued.iter().map(QueueMessage::to_fields).collect();
        return HttpReply::json(200, json!(body.dry_run(would)));
    }
    let operation = super::tracked::Operation {
        id: &correlation_id,
        source: "alert",
        owner: auth.owner(),
        scopes: scopes.len(),
    };
    let tracked = match super::tracked::start(state, request, operation, queued, invocation_id).await {
        Ok(tracked) => tracked,
        Err(reply) => return refused(reply, "the operation state store is unavailable", response),
    };
    response.enqueue(b::ENQUEUE, tracked.texts());
    tracing::info!(
        correlation_id = %correlation_id,
        alert_rule = alert_rule.as_deref().unwrap_or(""),
        messages = planned.len(),
        skipped = skipped.len(),
        "alert enqueued"
    );
    response.log(format!(
        "alert {}: {} messages enqueued ({correlation_id}), {} values skipped",
        alert_rule.as_deref().unwrap_or("?"),
        planned.len(),
        skipped.len()
    ));
    super::tracked::accepted(body, tracked.status_url.as_deref())
}
