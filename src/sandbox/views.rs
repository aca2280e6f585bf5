//! The sandbox's read-only views: `GET /tenant` (the emulated tenant and reprocess counts) and
//! `GET /audit` (the audit records, kept in memory as the durable sink would store them).

use super::Shim;
use crate::audit::AuditRecord;
use crate::audit::sink::{AuditSink, SinkError};
use actix_web::{HttpResponse, web};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use std::sync::Mutex;

/// The durable sink of the sandbox: the records in memory.
#[derive(Debug, Default)]
pub(super) struct MemorySink {
    records: Mutex<Vec<AuditRecord>>,
}

impl MemorySink {
    pub(super) fn records(&self) -> Vec<AuditRecord> {
        self.records.lock().expect("audit lock").clone()
    }
}

impl AuditSink for MemorySink {
    fn write(&self, records: Vec<AuditRecord>) -> BoxFuture<'static, Result<(), SinkError>> {
        self.records.lock().expect("audit lock").extend(records);
        Box::pin(async { Ok(()) })
    }
}

pub(super) async fn tenant(shim: web::Data<Shim>) -> HttpResponse {
    let tenant = shim.emulator.state.tenant.lock().expect("tenant lock");
    let assignments: Vec<Value> = tenant
        .assignments
        .values()
        .map(|a| json!({ "id": a.id, "state": a.state, "accessPackageId": a.access_package_id, "catalogId": tenant.package_catalogs.get(&a.access_package_id), "targetObjectId": a.target_object_id, "reprocessCount": a.reprocess_count }))
        .collect();
    let requests: Vec<Value> = tenant
        .requests
        .values()
        .map(|r| json!({ "id": r.id, "state": r.state, "accessPackageId": r.access_package_id, "reprocessCount": r.reprocess_count }))
        .collect();
    HttpResponse::Ok()
        .json(json!({ "assignments": assignments, "assignmentRequests": requests, "catalogs": tenant.catalog_names }))
}

/// The last 500 audit records, newest last.
pub(super) async fn audit(shim: web::Data<Shim>) -> HttpResponse {
    let records = shim.audit.records();
    let skip = records.len().saturating_sub(500);
    HttpResponse::Ok().json(&records[skip..])
}

/// One record on one line, for the demo's output.
pub(super) fn line(r: &AuditRecord) -> String {
    let who = [
        ("workflow", &r.workflow_name),
        ("run", &r.workflow_run_id),
        ("alert", &r.alert_rule),
        ("message", &r.queue_message_id),
    ]
    .iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| format!("{k}={v}"))
    .collect::<Vec<_>>()
    .join(" ");
    let ids = [
        &r.assignment_ids,
        &r.assignment_request_ids,
        &r.access_package_ids,
        &r.user_ids,
    ]
    .iter()
    .filter(|v| !v.is_empty())
    .map(|v| v.as_str())
    .collect::<Vec<_>>()
    .join(",");
    format!(
        "{} {:<9} {:<5} {} {} -> {} {} request-id {}",
        r.time,
        r.audit,
        r.trigger,
        if who.is_empty() { "-".to_owned() } else { who },
        ids,
        r.outcome,
        r.http_status,
        if r.graph_request_id.is_empty() {
            "-"
        } else {
            &r.graph_request_id
        }
    )
}
