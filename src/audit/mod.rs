//! Audit records: one per reprocess sent to Graph (and per ID refused by the catalog scope), one per dry
//! run, one per access package refused before fan-out. Each record says when, which trigger and
//! function, who or what asked (`domain::Caller`: for HTTP the headers the host forwards, for alerts the
//! rule and alert ID, carried through the queue as `origin`), the queue message (ID, insertion time,
//! dequeue count) for queue invocations, the target IDs, and Graph's outcome, status and `request-id`.
//!
//! Two sinks, the same flat fields ([`AuditRecord`], schema in `docs/audit.md`):
//! - a `tracing` event (`target: reprocess_handler::audit`, field `audit` = the action) on the JSON log,
//!   which the host forwards to Application Insights;
//! - a durable [`sink::AuditSink`] (an Azure Table in the app's storage account), written in the
//!   background: a failure is logged and never blocks or fails the reprocess.
//!
//! Nothing secret can enter a record: it is built only from typed IDs, outcomes and the named caller
//! hints, never from the Authorization or `x-functions-key` headers or a URL.

pub mod sink;

use crate::domain::{Caller, ItemResult, Outcome, Report, Scope, Target, TargetKind, Targets};
use serde::Serialize;
use std::sync::Arc;
use time::OffsetDateTime;

/// Bumped when a field changes meaning or goes away (adding a field keeps the version).
pub const SCHEMA_VERSION: u32 = 1;

/// The invocation a record comes from.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// `http`, `alert` or `queue`.
    pub trigger: &'static str,
    pub function: &'static str,
    pub invocation_id: String,
    pub correlation_id: Option<String>,
    /// Who asked: this HTTP call's hints, or the `origin` a queue message carried.
    pub caller: Caller,
    pub queue: Option<QueueMessage>,
}

#[derive(Debug, Clone, Default)]
pub struct QueueMessage {
    pub message_id: Option<String>,
    pub insertion_time: Option<String>,
    pub dequeue_count: Option<u32>,
}

/// One audit record, flat, as both sinks store it. Every field is always present (empty when unknown),
/// so the schema is the same for every record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub audit_schema: u32,
    /// `reprocess` (a reprocess sent to Graph, or an ID the scope check refused), `dry_run`, or
    /// `fan_out_refused` (an access package outside the scope, never listed).
    pub audit: &'static str,
    pub time: String,
    pub trigger: &'static str,
    pub function: &'static str,
    pub invocation_id: String,
    pub correlation_id: String,
    pub queue_message_id: String,
    pub queue_insertion_time: String,
    pub queue_dequeue_count: u32,
    pub origin_trigger: String,
    pub origin_function: String,
    pub origin_invocation_id: String,
    pub workflow_name: String,
    pub workflow_run_id: String,
    pub client_tracking_id: String,
    pub principal_name: String,
    pub principal_id: String,
    pub principal_idp: String,
    /// The principal App Service authentication verified (empty when none was): its object ID, the
    /// calling application's client ID and the app roles that granted access. `principal_*` above are
    /// what the request claimed, verified or not.
    pub verified_principal_id: String,
    pub verified_app_id: String,
    pub verified_roles: String,
    pub key_name: String,
    pub alert_rule: String,
    pub alert_id: String,
    /// Comma-separated GUIDs (a reprocess record names one assignment or request).
    pub assignment_ids: String,
    pub assignment_request_ids: String,
    pub access_package_ids: String,
    pub user_ids: String,
    /// `accepted`, `not_found`, `rejected`, `permission_denied`, `out_of_scope`, `transient`, or
    /// `dry_run`.
    pub outcome: &'static str,
    pub http_status: u16,
    pub graph_request_id: String,
    pub attempts: u32,
    pub error_code: String,
    /// A short explanation: Graph's message, the transient reason, where an out-of-scope item belongs,
    /// or a dry run's counts (at most 512 characters).
    pub detail: String,
}

/// UTC, always with milliseconds (`2026-12-02T05:30:12.345Z`), so records sort as text.
fn now() -> String {
    let t = OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

fn clip(text: &str) -> String {
    crate::domain::text::shown(text, 512)
}

impl AuditRecord {
    fn new(invocation: &Invocation, audit: &'static str, outcome: &'static str) -> Self {
        let caller = &invocation.caller;
        let queue = invocation.queue.clone().unwrap_or_default();
        Self {
            audit_schema: SCHEMA_VERSION,
            audit,
            time: now(),
            trigger: invocation.trigger,
            function: invocation.function,
            invocation_id: invocation.invocation_id.clone(),
            correlation_id: text(&invocation.correlation_id),
            queue_message_id: text(&queue.message_id),
            queue_insertion_time: text(&queue.insertion_time),
            queue_dequeue_count: queue.dequeue_count.unwrap_or(0),
            origin_trigger: text(&caller.trigger),
            origin_function: text(&caller.function),
            origin_invocation_id: text(&caller.invocation_id),
            workflow_name: text(&caller.workflow_name),
            workflow_run_id: text(&caller.workflow_run_id),
            client_tracking_id: text(&caller.client_tracking_id),
            principal_name: text(&caller.principal_name),
            principal_id: text(&caller.principal_id),
            principal_idp: text(&caller.principal_idp),
            verified_principal_id: text(&caller.verified_principal_id),
            verified_app_id: text(&caller.verified_app_id),
            verified_roles: text(&caller.verified_roles),
            key_name: text(&caller.key_name),
            alert_rule: text(&caller.alert_rule),
            alert_id: text(&caller.alert_id),
            assignment_ids: String::new(),
            assignment_request_ids: String::new(),
            access_package_ids: String::new(),
            user_ids: String::new(),
            outcome,
            http_status: 0,
            graph_request_id: String::new(),
            attempts: 0,
            error_code: String::new(),
            detail: String::new(),
        }
    }

    /// The record of one ID's reprocess (or its refusal by the scope check).
    pub fn reprocess(invocation: &Invocation, result: &ItemResult) -> Self {
        let mut record = Self::new(invocation, "reprocess", result.outcome.label());
        match result.kind {
            TargetKind::Assignment => record.assignment_ids = result.id.clone(),
            TargetKind::AssignmentRequest => record.assignment_request_ids = result.id.clone(),
        }
        record.http_status = result.http_status.unwrap_or(0);
        record.graph_request_id = text(&result.graph_request_id);
        record.attempts = result.attempts;
        let (code, detail) = match &result.outcome {
            Outcome::Accepted => (String::new(), String::new()),
            Outcome::NotFound { error } => (
                error.as_ref().map(|e| e.code.clone()).unwrap_or_default(),
                error.as_ref().map(|e| e.message.clone()).unwrap_or_default(),
            ),
            Outcome::Rejected { error } | Outcome::PermissionDenied { error, .. } => {
                (error.code.clone(), error.message.clone())
            }
            Outcome::OutOfScope {
                access_package_id,
                catalog_id,
            } => (
                String::new(),
                format!(
                    "access package {}, catalog {}",
                    access_package_id.as_deref().unwrap_or("unknown"),
                    catalog_id.as_deref().unwrap_or("unknown")
                ),
            ),
            Outcome::Transient { reason, .. } => (String::new(), reason.clone()),
        };
        record.error_code = clip(&code);
        record.detail = clip(&detail);
        record
    }

    /// The record of a dry run: everything it named, and what it found.
    pub fn dry_run(invocation: &Invocation, targets: &Targets, scopes: &[Scope], summary: &str) -> Self {
        let mut record = Self::new(invocation, "dry_run", "dry_run");
        record.set_targets(targets.items(), scopes);
        record.detail = clip(summary);
        record
    }

    /// The record of an access package refused before fan-out.
    pub fn fan_out_refused(invocation: &Invocation, scope: &Scope, reason: &str) -> Self {
        let mut record = Self::new(invocation, "fan_out_refused", "out_of_scope");
        record.set_targets(&[], std::slice::from_ref(scope));
        record.detail = clip(reason);
        record
    }

    fn set_targets(&mut self, targets: &[Target], scopes: &[Scope]) {
        let join = |ids: Vec<&str>| ids.join(",");
        self.assignment_ids = join(
            targets
                .iter()
                .filter(|t| t.kind() == TargetKind::Assignment)
                .map(Target::id)
                .collect(),
        );
        self.assignment_request_ids = join(
            targets
                .iter()
                .filter(|t| t.kind() == TargetKind::AssignmentRequest)
                .map(Target::id)
                .collect(),
        );
        self.access_package_ids = join(
            scopes
                .iter()
                .filter(|s| matches!(s, Scope::AccessPackage(_)))
                .map(Scope::id)
                .collect(),
        );
        self.user_ids = join(
            scopes
                .iter()
                .filter(|s| matches!(s, Scope::User(_)))
                .map(Scope::id)
                .collect(),
        );
    }

    /// The log sink: one JSON line with these fields, at `info` on `reprocess_handler::audit`.
    fn log(&self) {
        tracing::info!(
            target: "reprocess_handler::audit",
            audit_schema = self.audit_schema,
            audit = self.audit,
            time = %self.time,
            trigger = self.trigger,
            function = self.function,
            invocation_id = %self.invocation_id,
            correlation_id = %self.correlation_id,
            queue_message_id = %self.queue_message_id,
            queue_insertion_time = %self.queue_insertion_time,
            queue_dequeue_count = self.queue_dequeue_count,
            origin_trigger = %self.origin_trigger,
            origin_function = %self.origin_function,
            origin_invocation_id = %self.origin_invocation_id,
            workflow_name = %self.workflow_name,
            workflow_run_id = %self.workflow_run_id,
            client_tracking_id = %self.client_tracking_id,
            principal_name = %self.principal_name,
            principal_id = %self.principal_id,
            principal_idp = %self.principal_idp,
            verified_principal_id = %self.verified_principal_id,
            verified_app_id = %self.verified_app_id,
            verified_roles = %self.verified_roles,
            key_name = %self.key_name,
            alert_rule = %self.alert_rule,
            alert_id = %self.alert_id,
            assignment_ids = %self.assignment_ids,
            assignment_request_ids = %self.assignment_request_ids,
            access_package_ids = %self.access_package_ids,
            user_ids = %self.user_ids,
            outcome = self.outcome,
            http_status = self.http_status,
            graph_request_id = %self.graph_request_id,
            attempts = self.attempts,
            error_code = %self.error_code,
            detail = %self.detail,
            "audit"
        );
    }
}

/// Sends records to both sinks. Cheap to clone; shared by every invocation.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    durable: Option<Arc<dyn sink::AuditSink>>,
}

impl Recorder {
    pub fn new(durable: Option<Arc<dyn sink::AuditSink>>) -> Self {
        Self { durable }
    }

    /// Logs every record now and hands them to the durable sink in the background.
    pub fn record(&self, records: Vec<AuditRecord>) {
        if records.is_empty() {
            return;
        }
        for record in &records {
            record.log();
        }
        if let Some(durable) = &self.durable {
            let durable = Arc::clone(durable);
            let count = records.len();
            actix_web::rt::spawn(async move {
                if let Err(e) = durable.write(records).await {
                    tracing::warn!(
                        records = count,
                        error = %e,
                        "audit records not written to the durable sink (they are in this log)"
                    );
                }
            });
        }
    }

    /// One record per ID of a report.
    pub fn reprocessed(&self, invocation: &Invocation, report: &Report) {
        self.record(
            report
                .results
                .iter()
                .map(|r| AuditRecord::reprocess(invocation, r))
                .collect(),
        );
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::AssignmentId;

    pub(crate) fn record() -> AuditRecord {
        AuditRecord::new(&Invocation::default(), "reprocess", "accepted")
    }

    #[test]
    fn a_reprocess_record_names_the_caller_the_target_and_graphs_answer() {
        let invocation = Invocation {
            trigger: "queue",
            function: "function-reprocess-queue",
            invocation_id: "inv".into(),
            correlation_id: Some("corr".into()),
            caller: Caller {
                trigger: Some("alert".into()),
                alert_rule: Some("drift".into()),
                ..Caller::default()
            },
            queue: Some(QueueMessage {
                message_id: Some("m1".into()),
                insertion_time: Some("2026-12-02T05:00:00+00:00".into()),
                dequeue_count: Some(2),
            }),
        };
        let id = AssignmentId::parse("0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10").unwrap();
        let result = ItemResult {
            kind: TargetKind::Assignment,
            id: id.to_string(),
            outcome: Outcome::OutOfScope {
                access_package_id: Some("p".into()),
                catalog_id: Some("c".into()),
            },
            http_status: Some(200),
            graph_request_id: Some("rid".into()),
            attempts: 1,
            target: Some(Target::Assignment(id)),
        };
        let record = AuditRecord::reprocess(&invocation, &result);
        assert_eq!(record.outcome, "out_of_scope");
        assert_eq!(record.assignment_ids, id.to_string());
        assert_eq!(record.origin_trigger, "alert");
        assert_eq!(record.alert_rule, "drift");
        assert_eq!(record.queue_message_id, "m1");
        assert_eq!(record.queue_dequeue_count, 2);
        assert_eq!(record.graph_request_id, "rid");
        assert_eq!(record.detail, "access package p, catalog c");
        assert!(record.time.ends_with('Z') && record.time.len() == "2026-12-02T05:30:12.345Z".len());
        // Every field is always there, so the schema is the same for every record.
        let fields = serde_json::to_value(&record).unwrap();
        assert_eq!(fields.as_object().unwrap().len(), 35);
    }
}
