//! Reprocess IDs: `{"assignmentIds":[…],"assignmentRequestIds":[…]}` (or a bare assignment ID).
//!
//! Every ID goes through the shared reprocessor (limiter, `$batch`, per-ID retries within the deadline)
//! and gets its audit record. IDs refused for lack of permission are dead-lettered so they can be
//! re-driven once the app role is granted; IDs that stay transient are handed to [`super::settle`].

use super::{Again, Ctx, Refused, Step, Work};
use crate::domain::outcome::REQUIRED_APP_ROLE;
use crate::domain::{ItemResult, Outcome, Report, Target, Targets};
use crate::message::Fields;

/// Only IDs, nothing else to list or check.
pub fn parse(fields: &Fields) -> Option<Work> {
    let only_ids = fields.scopes.is_empty() && fields.drift_packages.is_empty() && fields.heal.is_none();
    (only_ids && !fields.targets.is_empty()).then(|| Work::Reprocess(fields.targets.clone()))
}

pub fn write(targets: &Targets) -> Fields {
    Fields {
        targets: targets.clone(),
        ..Fields::default()
    }
}

/// Reprocesses `targets` within the deadline and records each ID's audit record.
pub async fn reprocess(ctx: &Ctx<'_>, targets: &Targets) -> Report {
    let report = ctx.reprocessor.run(targets, ctx.allowed, ctx.deadline).await;
    ctx.services.recorder.reprocessed(ctx.invocation, &report);
    tracing::info!(summary = ?report.summary, correlation_id = %ctx.correlation_id, "reprocess finished");
    report
}

pub async fn run(ctx: &Ctx<'_>, targets: Targets) -> Step {
    let report = reprocess(ctx, &targets).await;
    step(report)
}

/// The step for a finished report: permission denials refused, transient IDs to try again.
pub fn step(report: Report) -> Step {
    let mut step = Step::default();
    step.log(report.one_line());
    let denied = targets_with(&report, |o| matches!(o, Outcome::PermissionDenied { .. }));
    if !denied.is_empty() {
        let reason = format!(
            "permission denied: grant the Function App's identity the Graph app role {REQUIRED_APP_ROLE} (or, with a catalog scope, the entitlement-management role Access package assignment manager on the IDs' catalogs), then re-drive these IDs"
        );
        step.log(format!("{} IDs dead-lettered: permission denied", denied.len()));
        step.refused.push(Refused {
            results: results_for(&report, &denied),
            work: Work::Reprocess(Targets::from_items(denied)),
            reason,
        });
    }
    let transient = report.transient_targets();
    if !transient.is_empty() {
        step.again = Some(Again {
            reason: format!("{} IDs still transient", transient.len()),
            retry_after: report.max_retry_after(),
            results: results_for(&report, &transient),
            work: Work::Reprocess(Targets::from_items(transient)),
        });
    }
    step.results = report.results;
    step
}

fn targets_with(report: &Report, pred: impl Fn(&Outcome) -> bool) -> Vec<Target> {
    report
        .results
        .iter()
        .filter(|r| pred(&r.outcome))
        .filter_map(|r| r.target)
        .collect()
}

fn results_for(report: &Report, targets: &[Target]) -> Vec<ItemResult> {
    report
        .results
        .iter()
        .filter(|r| r.target.is_some_and(|t| targets.contains(&t)))
        .cloned()
        .collect()
}
