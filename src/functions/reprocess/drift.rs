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
//! - Packages outside the catalog scope were refused before this (`super::handle`).

use super::Call;
use crate::audit::AuditRecord;
use crate::domain::Scope;
use crate::drift;
use crate::dry_run;
use crate::functions::http_io::error_body;
use crate::graph::list::ListError;
use crate::host::{HttpReply, InvokeResponse};
use crate::state::AppState;
use crate::work::{self, Work};
use serde_json::{Value, json};

pub(super) async fn handle(state: &AppState, call: Call<'_>, response: &mut InvokeResponse) -> HttpReply {
    let settings = &state.settings;
    let parsed = call.parsed;
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
    if call.dry_run {
        return dry(state, &call, response).await;
    }
    // Each package is checked by its own drift message; other packages and users are listed by theirs.
    let planned: Vec<Work> = parsed
        .drift_packages
        .iter()
        .map(|p| Work::Drift(*p))
        .chain(work::plan(&parsed.targets, &parsed.scopes))
        .collect();
    super::enqueue_planned(state, &call, planned, response).await
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
            call.auth.scope.as_ref(),
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
