//! The bodies of the 202 answers that hand work to the queue: what was accepted and how many messages
//! carry it, so a caller can tell its request was understood in full.

use super::{Plan, ReprocessRequest, scope_field};
use crate::domain::alert::Skipped;
use crate::domain::{CorrelationId, Scope, Targets};
use serde::Serialize;

/// Fan-out (packages/users) and alerts: `{"status":"accepted","invocationId","correlationId","accepted",
/// "enqueued"}`, plus the alert's rule and skipped values, and for a dry run what would be enqueued.
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
    pub would_enqueue: Option<Vec<&'a ReprocessRequest>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcceptedTargets<'a> {
    pub access_package_ids: Vec<&'a str>,
    pub user_ids: Vec<&'a str>,
    pub assignment_ids: usize,
    pub assignment_request_ids: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Enqueued<'a> {
    pub queue: &'a str,
    pub messages: usize,
    pub expansion_messages: usize,
    pub id_messages: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertSource<'a> {
    pub alert_rule: Option<&'a str>,
    pub skipped: &'a [Skipped],
}

impl<'a> Accepted<'a> {
    pub fn new(
        plan: &'a Plan,
        targets: &'a Targets,
        scopes: &'a [Scope],
        correlation_id: &'a CorrelationId,
        invocation_id: &'a str,
        queue: &'a str,
    ) -> Self {
        let of = |f: &str| -> Vec<&'a str> { scopes.iter().filter(|s| scope_field(s) == f).map(Scope::id).collect() };
        Self {
            status: "accepted",
            invocation_id,
            correlation_id,
            accepted: AcceptedTargets {
                access_package_ids: of(super::field::ACCESS_PACKAGE_IDS),
                user_ids: of(super::field::USER_IDS),
                assignment_ids: targets.assignment_ids().len(),
                assignment_request_ids: targets.assignment_request_ids().len(),
            },
            enqueued: Enqueued {
                queue,
                messages: plan.len(),
                expansion_messages: plan.expansion_messages.len(),
                id_messages: plan.id_messages.len(),
            },
            alert: None,
            would_enqueue: None,
        }
    }

    pub fn from_alert(mut self, alert_rule: Option<&'a str>, skipped: &'a [Skipped]) -> Self {
        self.alert = Some(AlertSource { alert_rule, skipped });
        self
    }

    /// Nothing is enqueued; the body lists the messages that would have been.
    pub fn dry_run(mut self, plan: &'a Plan) -> Self {
        self.status = "dry run: nothing enqueued";
        self.would_enqueue = Some(plan.messages().collect());
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
