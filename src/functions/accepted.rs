//! The bodies of the 202 answers that hand work to the queue: what was accepted and how many messages
//! carry it, so a caller can tell its request was understood in full.

use crate::domain::alert::Skipped;
use crate::domain::{AccessPackageId, CorrelationId, Scope, Targets};
use crate::message::{Fields, field, scope_field};
use crate::work::Work;
use serde::Serialize;

/// Fan-out (packages/users), drift detection and alerts: `{"status":"accepted","invocationId",
/// "correlationId","accepted","enqueued"}`, plus the alert's rule and skipped values, and for a dry run
/// what would be enqueued.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Accepted<'a> {
    pub status: &'static str,
    pub invocation_id: &'a str,
    pub correlation_id: &'a CorrelationId,
    pub accepted: AcceptedTargets<'a>,
    pub enqueued: Enqueued<'a>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertSource<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_enqueue: Option<Vec<Fields>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedTargets<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detect_drift_for: Option<DriftPackages<'a>>,
    pub access_package_ids: Vec<&'a str>,
    pub user_ids: Vec<&'a str>,
    pub assignment_ids: usize,
    pub assignment_request_ids: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftPackages<'a> {
    pub access_package_ids: &'a [AccessPackageId],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Enqueued<'a> {
    pub queue: &'a str,
    pub messages: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift_messages: Option<usize>,
    pub expansion_messages: usize,
    pub id_messages: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertSource<'a> {
    pub alert_rule: Option<&'a str>,
    pub skipped: &'a [Skipped],
}

/// What a call named, for the `accepted` part of the answer.
pub struct Named<'a> {
    pub targets: &'a Targets,
    pub scopes: &'a [Scope],
    pub drift_packages: &'a [AccessPackageId],
}

impl<'a> Accepted<'a> {
    /// The answer for `messages`, planned from what the call `named`.
    pub fn new(
        messages: &[Work],
        named: Named<'a>,
        correlation_id: &'a CorrelationId,
        invocation_id: &'a str,
        queue: &'a str,
    ) -> Self {
        let of = |f: &str| -> Vec<&'a str> {
            named
                .scopes
                .iter()
                .filter(|s| scope_field(s) == f)
                .map(Scope::id)
                .collect()
        };
        let count = |pred: fn(&Work) -> bool| messages.iter().filter(|w| pred(w)).count();
        let drift = !named.drift_packages.is_empty();
        Self {
            status: "accepted",
            invocation_id,
            correlation_id,
            accepted: AcceptedTargets {
                detect_drift_for: drift.then_some(DriftPackages {
                    access_package_ids: named.drift_packages,
                }),
                access_package_ids: of(field::ACCESS_PACKAGE_IDS),
                user_ids: of(field::USER_IDS),
                assignment_ids: named.targets.assignment_ids().len(),
                assignment_request_ids: named.targets.assignment_request_ids().len(),
            },
            enqueued: Enqueued {
                queue,
                messages: messages.len(),
                drift_messages: drift.then(|| count(|w| matches!(w, Work::Drift(_)))),
                expansion_messages: count(|w| matches!(w, Work::Expand { .. })),
                id_messages: count(|w| matches!(w, Work::Reprocess(_))),
            },
            alert: None,
            would_enqueue: None,
        }
    }

    pub fn with_alert(mut self, alert_rule: Option<&'a str>, skipped: &'a [Skipped]) -> Self {
        self.alert = Some(AlertSource { alert_rule, skipped });
        self
    }

    /// Nothing is enqueued; the body lists the messages that would have been.
    pub fn dry_run(mut self, messages: Vec<Fields>) -> Self {
        self.status = "dry run: nothing enqueued";
        self.would_enqueue = Some(messages);
        self
    }
}

/// A large ID list split into messages (`HTTP_SYNC_MAX_IDS`): `{"invocationId","status":"queued",
/// "correlationId","ids","messages","queue"}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Queued<'a> {
    pub invocation_id: &'a str,
    pub status: &'static str,
    pub correlation_id: &'a CorrelationId,
    pub ids: usize,
    pub messages: usize,
    pub queue: &'a str,
}
