//! `function-reprocess-alert`: POST /api/alert from an Azure Monitor action group (webhook action with
//! the common alert schema). Action groups wait only briefly for an answer, so this function never
//! calls Graph: it reads the targets from the alert (`domain::alert`), enqueues them exactly like a
//! fan-out HTTP call (expansion messages for packages/users, chunks of 20 for IDs) and answers 202.
//! Resolved notifications and other alert shapes get 200 "nothing to do" with the reason, never an
//! error (an error only makes the action group retry). `?dryRun=true` shows what would be enqueued.

use super::bindings::alert as b;
use super::http::{check_body_size, error_body, query_flag};
use crate::domain::CorrelationId;
use crate::domain::alert::{AlertVerdict, parse_alert};
use crate::host::{HttpReply, HttpTrigger, InvokeResponse};
use crate::message::Plan;
use crate::message::accepted::Accepted;
use crate::state::AppState;
use serde_json::{Value, json};

fn nothing_to_do(reason: &str, skipped: Value, invocation_id: &str, response: &mut InvokeResponse) -> HttpReply {
    tracing::info!(reason, "alert: nothing to do");
    response.log(format!("alert: nothing to do: {reason}"));
    HttpReply::json(
        200,
        json!({ "status": "nothing to do", "reason": reason, "skipped": skipped, "invocationId": invocation_id }),
    )
}

pub fn handle(
    state: &AppState,
    request: &HttpTrigger,
    invocation_id: &str,
    response: &mut InvokeResponse,
) -> HttpReply {
    let settings = &state.settings;
    let dry_run = match query_flag(request, "dryRun") {
        Ok(flag) => flag,
        Err(reply) => return reply,
    };
    let Some(body) = request.body.as_deref().filter(|b| !b.trim().is_empty()) else {
        return HttpReply::json(
            400,
            error_body(
                "empty_body",
                "no alert payload: point an action group webhook (common alert schema) here",
                json!({}),
            ),
        );
    };
    if let Err(reply) = check_body_size(body, settings.max_body_bytes) {
        return reply;
    }
    let payload: Value = match serde_json::from_str(body) {
        Ok(payload) => payload,
        Err(e) => {
            return HttpReply::json(
                400,
                error_body("invalid_json", &format!("the body is not JSON: {e}"), json!({})),
            );
        }
    };
    let (targets, scopes, skipped, alert_rule) = match parse_alert(&payload) {
        AlertVerdict::NothingToDo { reason, skipped } => {
            return nothing_to_do(&reason, json!(skipped), invocation_id, response);
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
        let reason = format!(
            "{count} distinct IDs exceed the limit of {} per call (MAX_IDS_PER_CALL)",
            settings.max_ids_per_call
        );
        return nothing_to_do(&reason, json!(skipped), invocation_id, response);
    }
    let correlation_id = CorrelationId::new_random();
    let plan = Plan::new(&targets, &scopes, &correlation_id);
    let body = Accepted::new(
        &plan,
        &targets,
        &scopes,
        &correlation_id,
        invocation_id,
        &settings.queue_name,
    )
    .from_alert(alert_rule.as_deref(), &skipped);
    if dry_run {
        response.log(format!("alert dry run: {} messages would be enqueued", plan.len()));
        return HttpReply::json(200, json!(body.dry_run(&plan)));
    }
    response.enqueue(b::ENQUEUE, plan.texts());
    tracing::info!(
        correlation_id = %correlation_id,
        alert_rule = alert_rule.as_deref().unwrap_or(""),
        messages = plan.len(),
        skipped = skipped.len(),
        "alert enqueued"
    );
    response.log(format!(
        "alert {}: {} messages enqueued ({correlation_id}), {} values skipped",
        alert_rule.as_deref().unwrap_or("?"),
        plan.len(),
        skipped.len()
    ));
    HttpReply::json(202, json!(body))
}
