//! Azure Monitor action-group webhooks in the **common alert schema** → what to reprocess.
//!
//! Why this shape: an alert on "user removed from a group while the assignment says Delivered" is a
//! log search alert over AuditLogs, and the only per-incident data such an alert carries are its
//! *dimensions* (log search alerts V2: `data.alertContext.condition.allOf[].dimensions[]` with
//! `name`/`value`; older log alerts: `data.alertContext.Dimensions[]`) and *custom properties*
//! (`data.customProperties`; log search alerts V2 also put them in `data.alertContext.properties`).
//! Sources: MicrosoftDocs/azure-docs `articles/azure-monitor/alerts/alerts-common-schema.md` and
//! `alerts-payload-samples.md`.
//!
//! Names are matched case-insensitively: `assignmentId`, `assignmentRequestId`, `accessPackageId`,
//! `userId`, and AuditLogs' `TargetUserId`. Other names (e.g. `Computer`) are ignored; values that are
//! not GUIDs are skipped with a reason (their text is not echoed). `monitorCondition: Resolved` and
//! payloads of other alert types yield "nothing to do". A payload with more than [`MAX_PAIRS`]
//! name/value pairs is refused as a whole ([`AlertVerdict::TooManyPairs`]) rather than read in part:
//! every GUID under a target name is acted on, or none is.

use super::ids::{AccessPackageId, AssignmentId, AssignmentRequestId, UserId};
use super::scope::Scope;
use super::targets::{Target, Targets};
use serde::Serialize;
use serde_json::Value;

/// The `schemaId` of the common alert schema.
pub const COMMON_SCHEMA_ID: &str = "azureMonitorCommonAlertSchema";
/// Name/value pairs read at most from one payload (an alert has a handful; this bounds hostile input).
/// A payload with more is refused as a whole: reading only the first ones would act on a subset.
pub const MAX_PAIRS: usize = 2_000;

/// A name/value that looked like a target but was not used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub source: &'static str,
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertVerdict {
    /// Nothing to enqueue (answer 200 with the reason).
    NothingToDo { reason: String, skipped: Vec<Skipped> },
    /// Too large to act on in full: refused as a whole (answer 413; action groups do not retry a 4xx).
    TooManyPairs { pairs: usize, limit: usize },
    Work {
        targets: Targets,
        scopes: Vec<Scope>,
        skipped: Vec<Skipped>,
        alert_rule: Option<String>,
    },
}

enum Kind {
    Assignment,
    Request,
    Package,
    User,
}

fn kind_of(name: &str) -> Option<Kind> {
    match name.trim().to_ascii_lowercase().as_str() {
        "assignmentid" => Some(Kind::Assignment),
        "assignmentrequestid" => Some(Kind::Request),
        "accesspackageid" => Some(Kind::Package),
        "userid" | "targetuserid" => Some(Kind::User),
        _ => None,
    }
}

fn short(s: &str) -> String {
    let mut out = super::text::shown(s, 64);
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

/// Reads a parsed webhook body.
pub fn parse_alert(payload: &Value) -> AlertVerdict {
    let nothing = |reason: String| AlertVerdict::NothingToDo {
        reason,
        skipped: Vec::new(),
    };
    let schema = payload.get("schemaId").and_then(Value::as_str).unwrap_or("");
    if !schema.eq_ignore_ascii_case(COMMON_SCHEMA_ID) {
        return nothing(format!(
            "not a common alert schema payload (schemaId {:?}); enable the common alert schema on the action group's webhook action",
            short(schema)
        ));
    }
    let data = &payload["data"];
    let essentials = &data["essentials"];
    let condition = essentials["monitorCondition"].as_str().unwrap_or("Fired");
    if condition.eq_ignore_ascii_case("Resolved") {
        return nothing("the alert is Resolved; only Fired notifications reprocess".into());
    }

    let mut pairs: Vec<(&'static str, &str, &Value)> = Vec::new();
    let context = &data["alertContext"];
    for criterion in context["condition"]["allOf"].as_array().into_iter().flatten() {
        for d in criterion["dimensions"].as_array().into_iter().flatten() {
            pairs.push(("dimension", d["name"].as_str().unwrap_or(""), &d["value"]));
        }
    }
    for d in context["Dimensions"].as_array().into_iter().flatten() {
        pairs.push(("dimension", d["name"].as_str().unwrap_or(""), &d["value"]));
    }
    for (source, object) in [
        ("customProperties", &data["customProperties"]),
        ("alertContext.properties", &context["properties"]),
    ] {
        for (name, value) in object.as_object().into_iter().flatten() {
            pairs.push((source, name, value));
        }
    }

    // Every entry counts, named or not (unnamed ones are pushed with an empty name and ignored).
    let total = pairs.len();
    if total > MAX_PAIRS {
        return AlertVerdict::TooManyPairs {
            pairs: total,
            limit: MAX_PAIRS,
        };
    }
    let mut items = Vec::new();
    let mut scopes = Vec::new();
    let mut skipped = Vec::new();
    for (source, name, value) in pairs {
        let Some(kind) = kind_of(name) else { continue };
        let skip = |reason: String| Skipped {
            source,
            name: short(name),
            reason,
        };
        let Some(text) = value.as_str() else {
            skipped.push(skip("the value is not a string".into()));
            continue;
        };
        let text = text.trim();
        let parsed = match kind {
            Kind::Assignment => AssignmentId::parse(text).map(|id| items.push(Target::Assignment(id))),
            Kind::Request => AssignmentRequestId::parse(text).map(|id| items.push(Target::AssignmentRequest(id))),
            Kind::Package => AccessPackageId::parse(text).map(|id| scopes.push(Scope::AccessPackage(id))),
            Kind::User => UserId::parse(text).map(|id| scopes.push(Scope::User(id))),
        };
        if let Err(e) = parsed {
            skipped.push(skip(e.to_string()));
        }
    }
    let mut seen = std::collections::HashSet::new();
    scopes.retain(|s| seen.insert(*s));
    let targets = Targets::from_items(items);
    if targets.is_empty() && scopes.is_empty() {
        let service = short(essentials["monitoringService"].as_str().unwrap_or("unknown"));
        return AlertVerdict::NothingToDo {
            reason: format!(
                "no usable dimension or custom property named assignmentId, assignmentRequestId, accessPackageId, userId or TargetUserId (monitoringService {service:?})"
            ),
            skipped,
        };
    }
    AlertVerdict::Work {
        targets,
        scopes,
        skipped,
        alert_rule: essentials["alertRule"].as_str().map(short),
    }
}

#[cfg(test)]
#[path = "alert_tests.rs"]
mod tests;
