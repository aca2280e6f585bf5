//! `detectDriftFor` in an HTTP body (`function-reprocess`).
//!
//! - Dry run: detection runs in the invocation for each package and the answer (200) lists, per
//!   package, the drifted assignments with the resource and role they lack (`wouldReprocess: true`),
//!   the roles not checked with the reason, and the Graph reads made; nothing is reprocessed. A 403 from
//!   a membership read answers 403 naming the missing app role.
//! - Otherwise one drift message per package (plus any other targets, as the fan-out enqueues them)
//!   goes to the queue, each carrying the caller (`origin`), and the answer is 202 at once with
//!   `Location` + `Retry-After` (a tracked operation, `tracked`); the queue function detects,
//!   reprocesses and records what it did, so polling ends in 200 with the drifted assignments.
//! - Packages outside the catalog scope were refused before this (`http_reprocess`).

use super::bindings::http as b;
use super::http::error_body;
use super::tracked;
use crate::audit::{AuditRecord, Invocation};
use crate::domain::{CorrelationId, Scope};
use crate::drift;
use crate::dry_run;
use crate::graph::list::ListError;
use crate::host::{HttpReply, HttpTrigger, InvokeResponse};
use crate::message::{Plan, ReprocessRequest};
use crate::state::AppState;
use serde_json::{Value, json};
use tokio::time::Instant;

/// One HTTP call naming `detectDriftFor`, as `http_reprocess` parsed it.
pub(super) struct Call<'a> {
    pub request: &'a HttpTrigger,
    pub parsed: &'a ReprocessRequest,
    pub invocation: &'a Invocation,
    pub dry_run: bool,
    pub deadline: Instant,
}

pub(super) async fn handle(state: &AppState, call: Call<'_>, response: &mut InvokeResponse) -> HttpReply {
    let settings = &state.settings;
    let (parsed, invocation_id) = (call.parsed, call.invocation.invocation_id.as_str());
    if !settings.drift_detection {
        let reason = drift::off_reason();
        response.log(reason.clone());
        return HttpReply::json(
            403,
            error_body(
                "drift_detection_off",
                &reason,
                json!({ "missingAppRoles": drift::REQUIRED_READ_ROLES, "setting": "DRIFT_DETECTION_ENABLED" }),
            ),
        );
    }
    let correlation_id = parsed.correlation_id.clone().unwrap_or_else(CorrelationId::new_random);
    if call.dry_run {
        return dry(state, &call, response).await;
    }
    let caller = Some(&call.invocation.caller);
    let plan = Plan::new(&parsed.targets, &parsed.scopes, &correlation_id).with_origin(caller);
    let drift_messages: Vec<ReprocessRequest> = parsed
        .drift_packages
        .iter()
        .map(|p| ReprocessRequest::drift(*p, &correlation_id).with_origin(caller))
        .collect();
    let texts = drift_messages
        .iter()
        .map(ReprocessRequest::to_text)
        .chain(plan.texts())
        .collect();
    // Each package is listed by its drift message, like a fan-out's expansion message.
    let listings = drift_messages.len() + plan.expansion_messages.len();
    let tracked = match tracked::start(
        state,
        call.request,
        &correlation_id,
        "http",
        listings,
        texts,
        invocation_id,
    )
    .await
    {
        Ok(tracked) => tracked,
        Err(reply) => return reply,
    };
    response.enqueue(b::ENQUEUE, tracked.texts);
    tracing::info!(correlation_id = %correlation_id, packages = drift_messages.len(), "drift detection enqueued");
    response.log(format!(
        "drift {correlation_id}: {} drift and {} other messages enqueued",
        drift_messages.len(),
        plan.len()
    ));
    let scopes = |kind: &str| -> Vec<&str> {
        parsed
            .scopes
            .iter()
            .filter(|s| crate::message::scope_field(s) == kind)
            .map(|s| s.id())
            .collect()
    };
    let body = json!({
        "status": "accepted",
        "invocationId": invocation_id,
        "correlationId": correlation_id,
        "accepted": {
            "detectDriftFor": { "accessPackageIds": parsed.drift_packages },
            "accessPackageIds": scopes("accessPackageIds"),
            "userIds": scopes("userIds"),
            "assignmentIds": parsed.targets.assignment_ids().len(),
            "assignmentRequestIds": parsed.targets.assignment_request_ids().len(),
        },
        "enqueued": {
            "queue": settings.queue_name,
            "messages": drift_messages.len() + plan.len(),
            "driftMessages": drift_messages.len(),
            "expansionMessages": plan.expansion_messages.len(),
            "idMessages": plan.id_messages.len(),
        }
    });
    tracked::accepted(body, tracked.status_url.as_deref())
}

async fn dry(state: &AppState, call: &Call<'_>, response: &mut InvokeResponse) -> HttpReply {
    let (parsed, deadline, invocation_id) = (call.parsed, call.deadline, call.invocation.invocation_id.as_str());
    let services = state.services().await;
    let graph = &services.graph;
    let mut body = if parsed.targets.is_empty() && parsed.scopes.is_empty() {
        json!({ "dryRun": true })
    } else {
        dry_run::report(
            graph,
            state.settings.allowed.as_ref(),
            &parsed.targets,
            &parsed.scopes,
            deadline,
        )
        .await
    };
    let mut packages = Vec::new();
    let (mut drifted, mut reads) = (0, 0);
    for package in &parsed.drift_packages {
        match drift::detect(graph, *package, deadline).await {
            Ok(result) => {
                drifted += result.drifted.len();
                reads += result.graph_reads;
                let mut value = json!(result);
                for d in value["drifted"].as_array_mut().into_iter().flatten() {
                    d["wouldReprocess"] = json!(true);
                }
                packages.push(value);
            }
            Err(ListError::MissingPermission { permission, .. }) => {
                let message = format!(
                    "drift detection for access package {package} needs the Graph app role {permission}, which the Function App's identity lacks (Graph answered 403); grant it with the infra parameter enableDriftDetection=true"
                );
                response.log(message.clone());
                return HttpReply::json(
                    403,
                    error_body("missing_permission", &message, json!({ "missingAppRole": permission })),
                );
            }
            Err(e) => packages.push(json!({ "accessPackageId": package, "error": e.to_string() })),
        }
    }
    body["invocationId"] = json!(invocation_id);
    body["drift"] = Value::Array(packages);
    body["driftSummary"] = json!({ "packages": parsed.drift_packages.len(), "drifted": drifted, "graphReads": reads });
    tracing::info!(
        packages = parsed.drift_packages.len(),
        drifted,
        graph_reads = reads,
        "drift dry run finished"
    );
    // One record for the whole dry run: what it named (the drift packages with the other packages) and
    // what it found.
    let mut named = parsed.scopes.clone();
    named.extend(parsed.drift_packages.iter().map(|p| Scope::AccessPackage(*p)));
    let found = json!({ "driftSummary": body["driftSummary"], "summary": body["summary"] });
    services.recorder.record(vec![AuditRecord::dry_run(
        call.invocation,
        &parsed.targets,
        &named,
        &found.to_string(),
    )]);
    response.log(format!(
        "drift dry run, nothing reprocessed: {drifted} drifted assignments"
    ));
    HttpReply::json(200, body)
}
