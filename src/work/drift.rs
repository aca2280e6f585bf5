//! Drift detection for one package: `{"detectDriftFor":{"accessPackageIds":["…"]}}`.
//!
//! The package is checked (`crate::drift::detect`) and its drifted assignments are reprocessed in the
//! same invocation through the shared reprocessor; more than `HTTP_SYNC_MAX_IDS` go out as ID messages
//! instead, and IDs still transient go to the queue's retries. The result — per drifted assignment the
//! resource and role it lacks and what the reprocess answered — is logged as one `drift detected` event
//! and one line in the host's `Logs`. With a catalog scope the package is checked again before any read
//! (whoever put the message there). Transient failures are tried again by the queue; missing
//! permissions and refusals dead-letter the message with the reason.

use super::{Ctx, Next, Step, Work, id_chunks};
use crate::audit::AuditRecord;
use crate::catalog_scope::check_packages;
use crate::domain::{AccessPackageId, Scope, Target, Targets};
use crate::drift;
use crate::message::Fields;
use serde_json::json;

/// Exactly one package to check, nothing else.
pub fn parse(fields: &Fields) -> Option<Work> {
    match fields.drift_packages.as_slice() {
        [package] if fields.targets.is_empty() && fields.scopes.is_empty() && fields.heal.is_none() => {
            Some(Work::Drift(*package))
        }
        _ => None,
    }
}

pub fn write(package: AccessPackageId) -> Fields {
    Fields {
        drift_packages: vec![package],
        ..Fields::default()
    }
}

pub async fn run(ctx: &Ctx<'_>, package: AccessPackageId) -> Step {
    if !ctx.settings.drift_detection {
        return Step::refused(Work::Drift(package), drift::off_reason());
    }
    let services = ctx.services;
    if let Some(allowed) = ctx.allowed {
        let verdict = check_packages(ctx.graph, allowed, &[package], ctx.deadline)
            .await
            .remove(0);
        if let Some(reason) = verdict.reason(&package) {
            if verdict.is_transient() {
                return Step::again(Work::Drift(package), reason, None);
            }
            tracing::warn!(access_package_id = %package, reason = %reason, "drift detection refused: out of scope");
            let record = AuditRecord::fan_out_refused(ctx.invocation, &Scope::AccessPackage(package), &reason);
            services.recorder.record(vec![record]);
            let mut step = Step::default();
            step.log(format!("drift detection refused: {reason}"));
            return step;
        }
    }
    let result = match drift::detect(ctx.graph, package, ctx.deadline).await {
        Ok(result) => result,
        Err(e) if e.is_transient() => {
            return Step::again(
                Work::Drift(package),
                format!("drift detection for {package} failed: {e}"),
                e.retry_after_seconds(),
            );
        }
        Err(e) => {
            tracing::error!(access_package_id = %package, correlation_id = %ctx.correlation_id, error = %e, "drift detection dead-lettered");
            let reason = format!("drift detection for access package {package} failed: {e}");
            return Step::refused(Work::Drift(package), reason);
        }
    };
    let targets = Targets::from_items(result.drifted_assignments().into_iter().map(Target::Assignment));
    let mut step = Step::default();
    let mut outcomes = serde_json::Map::new();
    let mut enqueued = 0;
    if targets.len() > ctx.settings.http_sync_max_ids {
        let chunks = id_chunks(&targets);
        enqueued = chunks.len();
        step.next = chunks.into_iter().map(Next::now).collect();
    } else if !targets.is_empty() {
        let report = super::reprocess::reprocess(ctx, &targets).await;
        for r in &report.results {
            outcomes.insert(r.id.clone(), json!(r));
        }
        let transient = report.transient_targets();
        if !transient.is_empty() {
            let work = Work::Reprocess(Targets::from_items(transient));
            step.next.push(Next::retry(work, report.max_retry_after()));
        }
        step.results = report.results;
    }
    let mut body = json!(result);
    for d in body["drifted"].as_array_mut().into_iter().flatten() {
        let id = d["assignmentId"].as_str().unwrap_or_default().to_owned();
        d["reprocess"] = outcomes
            .get(&id)
            .cloned()
            .unwrap_or_else(|| json!({ "outcome": "enqueued" }));
    }
    tracing::info!(
        access_package_id = %package,
        correlation_id = %ctx.correlation_id,
        delivered = result.delivered_assignments,
        drifted = result.drifted.len(),
        not_checked = result.not_checked.len(),
        graph_reads = result.graph_reads,
        result = %body,
        "drift detected"
    );
    step.log(format!(
        "drift {package}: {} delivered assignments checked, {} drifted, {} reprocessed here, {enqueued} messages enqueued, {} roles not checked, {} Graph reads",
        result.delivered_assignments,
        result.drifted.len(),
        outcomes.len(),
        result.not_checked.len(),
        result.graph_reads
    ));
    step
}
