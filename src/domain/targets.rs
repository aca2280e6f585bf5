//! What a caller asked for: the JSON body of an HTTP call or a queue message, parsed into GUID
//! newtypes with duplicates collapsed. Errors name the field (`assignmentIds[3]`) and the reason.

use super::ids::{AssignmentId, AssignmentRequestId, GuidError};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// Field names the JSON forms accept; anything else is refused so a typo is not silently ignored.
const KNOWN_FIELDS: &[&str] = &[
    "assignmentIds",
    "assignmentRequestIds",
    "assignmentId",
    "assignmentRequestId",
    "attempt",
    "notBefore",
    "correlationId",
];

/// One thing to reprocess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Assignment(AssignmentId),
    AssignmentRequest(AssignmentRequestId),
}

impl Target {
    pub fn id(&self) -> &str {
        match self {
            Target::Assignment(id) => id.as_str(),
            Target::AssignmentRequest(id) => id.as_str(),
        }
    }

    pub fn kind(&self) -> TargetKind {
        match self {
            Target::Assignment(_) => TargetKind::Assignment,
            Target::AssignmentRequest(_) => TargetKind::AssignmentRequest,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TargetKind {
    Assignment,
    AssignmentRequest,
}

/// Targets in the order first seen, without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    items: Vec<Target>,
}

impl Targets {
    pub fn from_items(items: impl IntoIterator<Item = Target>) -> Self {
        let mut seen = HashSet::new();
        let items = items.into_iter().filter(|t| seen.insert(*t)).collect();
        Self { items }
    }
    pub fn items(&self) -> &[Target] {
        &self.items
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn assignment_ids(&self) -> Vec<AssignmentId> {
        self.items
            .iter()
            .filter_map(|t| match t {
                Target::Assignment(id) => Some(*id),
                Target::AssignmentRequest(_) => None,
            })
            .collect()
    }
    pub fn assignment_request_ids(&self) -> Vec<AssignmentRequestId> {
        self.items
            .iter()
            .filter_map(|t| match t {
                Target::AssignmentRequest(id) => Some(*id),
                Target::Assignment(_) => None,
            })
            .collect()
    }
}

/// A parsed HTTP body or queue message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReprocessRequest {
    pub targets: Targets,
    /// How many times this work has been attempted before (queue re-enqueue bookkeeping).
    pub attempt: u32,
    /// RFC 3339 time before which a re-enqueued message should not be worked on.
    pub not_before: Option<time::OffsetDateTime>,
    /// Carried through re-enqueues so logs of one logical request can be joined.
    pub correlation_id: Option<String>,
}

impl ReprocessRequest {
    /// The JSON form this request parses from: what the functions put on the queue. Field names avoid the
    /// host's queue metadata keys (`Id`, `DequeueCount`, …), which JSON message properties would overwrite.
    pub fn to_json(&self) -> String {
        let mut message = Map::new();
        let ids = |v: Vec<String>| Value::Array(v.into_iter().map(Value::String).collect());
        let assignments: Vec<String> = self.targets.assignment_ids().iter().map(ToString::to_string).collect();
        let requests: Vec<String> = self
            .targets
            .assignment_request_ids()
            .iter()
            .map(ToString::to_string)
            .collect();
        if !assignments.is_empty() {
            message.insert("assignmentIds".into(), ids(assignments));
        }
        if !requests.is_empty() {
            message.insert("assignmentRequestIds".into(), ids(requests));
        }
        if self.attempt > 0 {
            message.insert("attempt".into(), Value::from(self.attempt));
        }
        if let Some(t) = self.not_before {
            let t = t.replace_nanosecond(0).unwrap_or(t);
            let text = t
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            message.insert("notBefore".into(), Value::String(text));
        }
        if let Some(id) = &self.correlation_id {
            message.insert("correlationId".into(), Value::String(id.clone()));
        }
        Value::Object(message).to_string()
    }

    /// Splits into requests of at most `size` targets each, keeping the other fields.
    pub fn chunks(&self, size: usize) -> Vec<ReprocessRequest> {
        self.targets
            .items()
            .chunks(size.max(1))
            .map(|chunk| ReprocessRequest {
                targets: Targets::from_items(chunk.iter().copied()),
                ..self.clone()
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the body is empty; send a JSON object such as {{\"assignmentIds\":[\"...\"]}}")]
    Empty,
    #[error("the body is not valid JSON: {0}")]
    Json(String),
    #[error("the body must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("{} invalid field(s): {}", .0.len(), .0.iter().map(|e| format!("{}: {}", e.field, e.reason)).collect::<Vec<_>>().join("; "))]
    Fields(Vec<FieldError>),
    #[error("no IDs given: set assignmentIds, assignmentRequestIds, assignmentId or assignmentRequestId")]
    NoTargets,
    #[error("{count} distinct IDs exceed the limit of {limit} per call ({setting})")]
    TooManyIds {
        count: usize,
        limit: usize,
        setting: &'static str,
    },
}

impl RequestError {
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            RequestError::Fields(errors) => errors,
            _ => &[],
        }
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses a JSON object body (HTTP) or message (queue).
pub fn parse_json_request(text: &str, max_ids: usize) -> Result<ReprocessRequest, RequestError> {
    if text.trim().is_empty() {
        return Err(RequestError::Empty);
    }
    let value: Value = serde_json::from_str(text).map_err(|e| RequestError::Json(e.to_string()))?;
    match value {
        Value::Object(map) => parse_object(&map, max_ids),
        other => Err(RequestError::NotAnObject(json_kind(&other))),
    }
}

/// Parses a queue message: a bare GUID (optionally as a JSON string) or the JSON object form.
pub fn parse_queue_message(text: &str, max_ids: usize) -> Result<ReprocessRequest, RequestError> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        return parse_json_request(trimmed, max_ids);
    }
    let bare = if trimmed.starts_with('"') {
        serde_json::from_str::<String>(trimmed).map_err(|e| RequestError::Json(e.to_string()))?
    } else {
        trimmed.to_owned()
    };
    if bare.is_empty() {
        return Err(RequestError::Empty);
    }
    let id = AssignmentId::parse(&bare).map_err(|e| {
        RequestError::Fields(vec![FieldError {
            field: "message".into(),
            reason: format!("a bare message is an assignment ID and {e}"),
        }])
    })?;
    Ok(ReprocessRequest {
        targets: Targets::from_items([Target::Assignment(id)]),
        ..Default::default()
    })
}

fn parse_object(map: &Map<String, Value>, max_ids: usize) -> Result<ReprocessRequest, RequestError> {
    let mut errors = Vec::new();
    for key in map.keys() {
        if !KNOWN_FIELDS.contains(&key.as_str()) {
            errors.push(FieldError {
                field: truncate(key),
                reason: format!("unknown field; expected one of {}", KNOWN_FIELDS.join(", ")),
            });
        }
    }
    let mut items = Vec::new();
    collect_ids(map, "assignmentIds", "assignmentId", &mut errors, &mut items, |s| {
        AssignmentId::parse(s).map(Target::Assignment)
    });
    collect_ids(
        map,
        "assignmentRequestIds",
        "assignmentRequestId",
        &mut errors,
        &mut items,
        |s| AssignmentRequestId::parse(s).map(Target::AssignmentRequest),
    );

    let attempt = match map.get("attempt") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v <= 1_000) => n.as_u64().unwrap_or(0) as u32,
        Some(other) => {
            errors.push(FieldError {
                field: "attempt".into(),
                reason: format!("must be a whole number from 0 to 1000, got {}", json_kind(other)),
            });
            0
        }
    };
    let not_before = match map.get("notBefore") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            match time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
                Ok(t) => Some(t),
                Err(e) => {
                    errors.push(FieldError {
                        field: "notBefore".into(),
                        reason: format!("must be an RFC 3339 time: {e}"),
                    });
                    None
                }
            }
        }
        Some(other) => {
            errors.push(FieldError {
                field: "notBefore".into(),
                reason: format!("must be a string, got {}", json_kind(other)),
            });
            None
        }
    };
    let correlation_id = match map.get("correlationId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
            Some(s.clone())
        }
        Some(_) => {
            errors.push(FieldError {
                field: "correlationId".into(),
                reason: "must be a string of at most 64 letters, digits or hyphens".into(),
            });
            None
        }
    };

    if !errors.is_empty() {
        errors.truncate(50);
        return Err(RequestError::Fields(errors));
    }
    let targets = Targets::from_items(items);
    if targets.is_empty() {
        return Err(RequestError::NoTargets);
    }
    if targets.len() > max_ids {
        return Err(RequestError::TooManyIds {
            count: targets.len(),
            limit: max_ids,
            setting: "MAX_IDS_PER_CALL",
        });
    }
    Ok(ReprocessRequest {
        targets,
        attempt,
        not_before,
        correlation_id,
    })
}

fn collect_ids(
    map: &Map<String, Value>,
    list_field: &str,
    single_field: &str,
    errors: &mut Vec<FieldError>,
    items: &mut Vec<Target>,
    parse: impl Fn(&str) -> Result<Target, GuidError>,
) {
    let one = |field: String, value: &Value| -> Result<Target, FieldError> {
        match value {
            Value::String(s) => parse(s).map_err(|e| FieldError {
                field,
                reason: e.to_string(),
            }),
            other => Err(FieldError {
                field,
                reason: format!("must be a string GUID, got {}", json_kind(other)),
            }),
        }
    };
    let mut outcomes = Vec::new();
    match map.get(list_field) {
        None | Some(Value::Null) => {}
        Some(Value::Array(values)) => {
            for (i, v) in values.iter().enumerate() {
                outcomes.push(one(format!("{list_field}[{i}]"), v));
            }
        }
        Some(other) => outcomes.push(Err(FieldError {
            field: list_field.into(),
            reason: format!("must be an array of GUID strings, got {}", json_kind(other)),
        })),
    }
    if let Some(v) = map.get(single_field).filter(|v| !v.is_null()) {
        outcomes.push(one(single_field.to_owned(), v));
    }
    for outcome in outcomes {
        match outcome {
            Ok(target) => items.push(target),
            Err(e) => errors.push(e),
        }
    }
}

/// Keeps hostile field names from bloating error bodies and logs.
fn truncate(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10";
    const B: &str = "5f1e0e3c-2d7b-4f7e-8a0e-3c6b9d1e2f40";

    #[test]
    fn collapses_duplicates_across_forms_and_case() {
        let body = format!(
            r#"{{"assignmentIds":["{A}","{}"],"assignmentId":"{A}","assignmentRequestIds":["{B}"]}}"#,
            A.to_uppercase()
        );
        let req = parse_json_request(&body, 1000).unwrap();
        assert_eq!(req.targets.len(), 2);
        assert_eq!(req.targets.assignment_ids()[0].as_str(), A);
        assert_eq!(req.targets.assignment_request_ids()[0].as_str(), B);
    }

    #[test]
    fn names_the_bad_field() {
        let err = parse_json_request(r#"{"assignmentIds":["x", 5]}"#, 1000).unwrap_err();
        let fields: Vec<_> = err.field_errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["assignmentIds[0]", "assignmentIds[1]"]);
        let err = parse_json_request(r#"{"assignmentIDs":[]}"#, 1000).unwrap_err();
        assert_eq!(err.field_errors()[0].field, "assignmentIDs");
    }

    #[test]
    fn enforces_the_id_limit_after_collapsing_duplicates() {
        let body = format!(r#"{{"assignmentIds":["{A}","{A}","{B}"]}}"#);
        assert!(parse_json_request(&body, 2).is_ok());
        assert!(matches!(
            parse_json_request(&body, 1),
            Err(RequestError::TooManyIds { count: 2, limit: 1, .. })
        ));
    }

    #[test]
    fn json_form_round_trips() {
        let text = format!(
            r#"{{"assignmentIds":["{A}"],"assignmentRequestIds":["{B}"],"attempt":3,"notBefore":"2026-01-01T00:00:00Z","correlationId":"c-1"}}"#
        );
        let parsed = parse_queue_message(&text, 10).unwrap();
        assert_eq!(parsed.to_json(), text);
        assert_eq!(parse_queue_message(&parsed.to_json(), 10).unwrap(), parsed);
        assert_eq!(parsed.chunks(1).len(), 2);
    }

    #[test]
    fn queue_message_forms() {
        assert_eq!(parse_queue_message(&format!(" {A}\n"), 10).unwrap().targets.len(), 1);
        assert_eq!(parse_queue_message(&format!("\"{A}\""), 10).unwrap().targets.len(), 1);
        let m = parse_queue_message(
            &format!(r#"{{"assignmentIds":["{A}"],"attempt":2,"notBefore":"2026-01-01T00:00:00Z"}}"#),
            10,
        )
        .unwrap();
        assert_eq!(m.attempt, 2);
        assert!(m.not_before.is_some());
        assert!(parse_queue_message("not-a-guid", 10).is_err());
        assert!(matches!(parse_queue_message("", 10), Err(RequestError::Empty)));
        assert!(matches!(
            parse_json_request("[1]", 10),
            Err(RequestError::NotAnObject("an array"))
        ));
        assert!(matches!(parse_json_request("{}", 10), Err(RequestError::NoTargets)));
    }
}
