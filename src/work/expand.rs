//! Expand one scope: `{"accessPackageIds":["…"]}` or `{"userIds":["…"]}`, with `nextLink` to resume.
//!
//! One invocation lists **one page** (`crate::fanout`) and enqueues the page's IDs in chunks of 20 plus
//! a continuation with Graph's next link; the host commits outputs only with a successful invocation,
//! so a failure re-lists that page only. With a catalog scope, a package outside it is refused before
//! listing (logged and audited, nothing enqueued, no dead letter: there is nothing to re-drive), and a
//! listed page keeps only the assignments in scope. A transient failure is tried again by the queue; a
//! refused `nextLink`, missing permission or Graph refusal dead-letters the message with the reason.

use super::{Ctx, Next, Step, Work, id_chunks};
use crate::audit::AuditRecord;
use crate::catalog_scope::check_packages;
use crate::domain::Scope;
use crate::fanout;
use crate::message::{Fields, scope_field};
use crate::operations::ListedPage;

/// Exactly one package or user, nothing else.
pub fn parse(fields: &Fields) -> Option<Work> {
    match fields.scopes.as_slice() {
        [scope] if fields.targets.is_empty() && fields.drift_packages.is_empty() && fields.heal.is_none() => {
            Some(Work::Expand {
                scope: *scope,
                next_link: fields.next_link.clone(),
            })
        }
        _ => None,
    }
}

pub fn write(scope: Scope, next_link: Option<&str>) -> Fields {
    Fields {
        scopes: vec![scope],
        next_link: next_link.map(str::to_owned),
        ..Fields::default()
    }
}

pub async fn run(ctx: &Ctx<'_>, scope: Scope, next_link: Option<String>) -> Step {
    let this = || Work::Expand {
        scope,
        next_link: next_link.clone(),
    };
    let graph = ctx.graph;
    let allowed = ctx.allowed;
    if let (Some(allowed), Scope::AccessPackage(package)) = (allowed, scope) {
        let verdict = check_packages(graph, allowed, &[package], ctx.deadline).await.remove(0);
        if let Some(reason) = verdict.reason(&package) {
            if verdict.is_transient() {
                return Step::again(this(), reason, None);
            }
            tracing::warn!(scope = scope.id(), reason = %reason, "fan-out refused: out of scope");
            let record = AuditRecord::fan_out_refused(ctx.invocation, &scope, &reason);
            ctx.services.recorder.record(vec![record]);
            let mut step = Step::default();
            step.log(format!("fan-out refused: {reason}"));
            return step;
        }
    }
    match fanout::expand_one_page(graph, allowed, scope, next_link.as_deref(), ctx.deadline).await {
        Ok(page) => {
            let mut step = Step::default();
            let chunks = id_chunks(&page.targets);
            let more = page.next_link.is_some();
            if !page.out_of_scope.is_empty() {
                tracing::info!(
                    scope = scope.id(),
                    out_of_scope = page.out_of_scope.len(),
                    ids = ?page.out_of_scope,
                    "listed assignments outside the catalog scope were not enqueued"
                );
            }
            tracing::info!(
                scope = scope.id(),
                correlation_id = %ctx.correlation_id,
                listed = page.targets.len(),
                dropped = page.dropped,
                chunks = chunks.len(),
                more,
                "listed a page"
            );
            step.log(format!(
                "{} {}: listed {} delivered assignments into {} messages{}",
                scope_field(&scope),
                scope.id(),
                page.targets.len(),
                chunks.len(),
                if more {
                    ", continuation enqueued"
                } else {
                    ", listing complete"
                }
            ));
            step.listed = Some(ListedPage {
                scope_kind: match scope {
                    Scope::AccessPackage(_) => "accessPackage",
                    Scope::User(_) => "user",
                },
                scope_id: scope.id().to_owned(),
                ids_found: page.targets.len(),
            });
            step.next = chunks.into_iter().map(Next::now).collect();
            if let Some(link) = page.next_link {
                step.next.push(Next::now(Work::Expand {
                    scope,
                    next_link: Some(link),
                }));
            }
            step
        }
        Err(e) if e.is_transient() => {
            tracing::warn!(scope = scope.id(), error = %e, "listing failed");
            Step::again(
                this(),
                format!("listing {} {} failed: {e}", scope_field(&scope), scope.id()),
                e.retry_after_seconds(),
            )
        }
        Err(e) => {
            tracing::error!(scope = scope.id(), error = %e, "listing dead-lettered");
            Step::refused(
                this(),
                format!("listing {} {} failed: {e}", scope_field(&scope), scope.id()),
            )
        }
    }
}
