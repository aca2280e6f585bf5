//! One page of a scheduled heal listing: `{"heal":"requests:deliveryFailed","nextLink":…}`, handed to
//! the queue by the heal timer (`functions::heal_timer`) when its own time ran out or Graph throttled.
//!
//! Like the fan-out, one invocation lists **one page** (`crate::heal`): requests inside the 14-day window
//! go out as ID messages, failed assignments are logged (reported only), and a continuation carries
//! Graph's `nextLink`. Transient failures are tried again by the queue; others are dead-lettered.

use super::{Ctx, Next, Step, Work, id_chunks};
use crate::domain::heal::HealListing;
use crate::domain::{Target, Targets};
use crate::heal::{HealPageOutcome, heal_one_page};
use crate::message::Fields;

/// A heal listing message (the parser made sure it carries nothing else).
pub fn parse(fields: &Fields) -> Option<Work> {
    fields.heal.map(|listing| Work::Heal {
        listing,
        next_link: fields.next_link.clone(),
    })
}

pub fn write(listing: HealListing, next_link: Option<&str>) -> Fields {
    Fields {
        heal: Some(listing),
        next_link: next_link.map(str::to_owned),
        ..Fields::default()
    }
}

/// What a listed page hands on: its requests in chunks, and the listing's next page.
pub fn follow_on(listing: HealListing, page: &HealPageOutcome) -> (Vec<Work>, Option<Work>) {
    let targets = Targets::from_items(page.to_reprocess.iter().map(|id| Target::AssignmentRequest(*id)));
    let next = page.next_link.as_ref().map(|link| Work::Heal {
        listing,
        next_link: Some(link.clone()),
    });
    (id_chunks(&targets), next)
}

pub async fn run(ctx: &Ctx<'_>, listing: HealListing, next_link: Option<String>) -> Step {
    let this = || Work::Heal {
        listing,
        next_link: next_link.clone(),
    };
    match heal_one_page(ctx.graph, listing, next_link.as_deref(), ctx.deadline).await {
        Ok(page) => {
            let (chunks, continuation) = follow_on(listing, &page);
            tracing::info!(
                correlation_id = %ctx.correlation_id,
                listing = %listing.name(),
                listed = page.listed,
                enqueued = page.to_reprocess.len(),
                outside_window = page.outside_window,
                failed_assignments = %serde_json::to_string(&page.failed_assignments).unwrap_or_default(),
                more = continuation.is_some(),
                "heal page listed"
            );
            let mut step = Step::default();
            step.log(format!(
                "heal {}: {} listed, {} enqueued for reprocess, {} outside the 14-day window, {} failed assignments reported{}",
                listing.name(),
                page.listed,
                page.to_reprocess.len(),
                page.outside_window,
                page.failed_assignments.len(),
                if continuation.is_some() { ", continuation enqueued" } else { "" }
            ));
            step.next = chunks.into_iter().chain(continuation).map(Next::now).collect();
            step
        }
        Err(e) if e.is_transient() => Step::again(
            this(),
            format!("heal {} failed: {e}", listing.name()),
            e.retry_after_seconds(),
        ),
        Err(e) => {
            tracing::error!(listing = %listing.name(), error = %e, "heal listing dead-lettered");
            Step::refused(this(), format!("heal listing {} failed: {e}", listing.name()))
        }
    }
}
