//! The sandbox's read-only views: `GET /tenant` (the emulated tenant and reprocess counts) and
//! `GET /audit` (the audit records the handler logged, kept in memory).

use super::Shim;
use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};
use std::sync::Mutex;

/// Keys the log line adds around an audit record's own fields (the tracing JSON format's); the rest is
/// the record as the durable sink stores it.
const LOG_ONLY_KEYS: [&str; 6] = ["timestamp", "level", "message", "span", "spans", "target"];

/// The audit records the handler wrote to its log (one JSON line each, with `audit_schema`), in order.
#[derive(Debug, Default)]
pub(super) struct AuditLog {
    records: Mutex<Vec<Map<String, Value>>>,
}

impl AuditLog {
    pub(super) fn records(&self) -> Vec<Map<String, Value>> {
        self.records.lock().expect("audit lock").clone()
    }

    pub(super) fn len(&self) -> usize {
        self.records.lock().expect("audit lock").len()
    }

    /// Keeps `line` if it is an audit record and says so; other lines are the caller's.
    pub(super) fn take(&self, line: &str) -> bool {
        let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(line) else {
            return false;
        };
        if !fields.contains_key("audit_schema") {
            return false;
        }
        for key in LOG_ONLY_KEYS {
            fields.shift_remove(key);
        }
        self.records.lock().expect("audit lock").push(fields);
        true
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

/// The sample callers, their roles and scopes, and how the handler treats their principals.
pub(super) async fn callers(shim: web::Data<Shim>) -> HttpResponse {
    HttpResponse::Ok().json(super::callers::view(&shim.auth))
}

/// The last 500 audit records, newest last.
pub(super) async fn audit(shim: web::Data<Shim>) -> HttpResponse {
    let records = shim.audit.records();
    let skip = records.len().saturating_sub(500);
    HttpResponse::Ok().json(&records[skip..])
}

/// The verified principal of a record, with the sample caller's name when it is one of them.
fn verified(r: &Map<String, Value>) -> Option<String> {
    let id = r
        .get("verified_principal_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())?;
    let name = super::callers::by_object_id(id).map_or(String::new(), |c| format!(" ({})", c.name));
    let roles = r
        .get("verified_roles")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map_or(String::new(), |roles| format!(" roles={roles}"));
    Some(format!("principal={id}{name}{roles}"))
}

/// One record on one line, for the demo's output.
pub(super) fn line(r: &Map<String, Value>) -> String {
    let text = |key: &str| match r.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let who = [
        ("workflow", "workflow_name"),
        ("run", "workflow_run_id"),
        ("alert", "alert_rule"),
        ("message", "queue_message_id"),
    ]
    .iter()
    .map(|(label, key)| (label, text(key)))
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| format!("{k}={v}"))
    .chain(verified(r))
    .collect::<Vec<_>>()
    .join(" ");
    let ids = [
        "assignment_ids",
        "assignment_request_ids",
        "access_package_ids",
        "user_ids",
    ]
    .iter()
    .map(|key| text(key))
    .filter(|v| !v.is_empty())
    .collect::<Vec<_>>()
    .join(",");
    let request_id = text("graph_request_id");
    format!(
        "{} {:<9} {:<5} {} {} -> {} {} request-id {}",
        text("time"),
        text("audit"),
        text("trigger"),
        if who.is_empty() { "-".to_owned() } else { who },
        ids,
        text("outcome"),
        text("http_status"),
        if request_id.is_empty() { "-" } else { &request_id }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_lines_become_records_without_the_log_fields() {
        let log = AuditLog::default();
        assert!(!log.take(r#"{"timestamp":"t","level":"WARN","message":"slow"}"#));
        assert!(!log.take("not json"));
        assert!(log.take(
            r#"{"timestamp":"t","level":"INFO","audit_schema":1,"audit":"reprocess","time":"2026-01-02T03:04:05.678Z","trigger":"http","workflow_name":"demo","workflow_run_id":"run-1","assignment_ids":"a","outcome":"accepted","http_status":202,"graph_request_id":"","message":"audit","span":{"name":"invocation"}}"#
        ));
        let records = log.records();
        assert_eq!(records.len(), 1);
        assert_eq!(
            Value::Object(records[0].clone()),
            json!({ "audit_schema": 1, "audit": "reprocess", "time": "2026-01-02T03:04:05.678Z", "trigger": "http",
                    "workflow_name": "demo", "workflow_run_id": "run-1", "assignment_ids": "a", "outcome": "accepted",
                    "http_status": 202, "graph_request_id": "" })
        );
        assert_eq!(
            line(&records[0]),
            "2026-01-02T03:04:05.678Z reprocess http  workflow=demo run=run-1 a -> accepted 202 request-id -"
        );
    }
}
