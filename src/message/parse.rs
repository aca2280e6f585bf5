//! Parsing the JSON forms: an HTTP body ([`HttpBody`]), a queue message ([`Fields`]), or a bare
//! assignment ID on the queue. Every GUID becomes its newtype here, duplicates collapse, and each error
//! names its field (`assignmentIds[3]`) and the reason, so a caller can fix all of them at once.

use super::field::{self, HTTP_FIELDS, QUEUE_ONLY_FIELDS};
use super::{Fields, Meta};
use crate::domain::heal::HealListing;
use crate::domain::ids::{AccessPackageId, AssignmentId, AssignmentRequestId, CorrelationId, GuidError, UserId};
use crate::domain::{Caller, MessageKey, Scope, Target, Targets};
use crate::json::{StrictJsonError, parse_strict, value_budget};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// Longest `nextLink` accepted; Graph's skip tokens are opaque but far shorter than this.
const MAX_NEXT_LINK: usize = 8_192;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

/// Field errors listed in one answer or dead letter; the count always says how many there were.
pub const MAX_LISTED_FIELD_ERRORS: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the body is empty; send a JSON object such as {{\"assignmentIds\":[\"...\"]}}")]
    Empty,
    #[error("the body is not valid JSON: {0}")]
    Json(String),
    #[error("refused as a whole: {0}")]
    DuplicateKey(StrictJsonError),
    #[error("refused as a whole: {0}")]
    TooManyValues(StrictJsonError),
    #[error("the body must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("{}", fields_message(.errors, *.total))]
    Fields { errors: Vec<FieldError>, total: usize },
    #[error(
        "no IDs given: set assignmentIds, assignmentRequestIds, accessPackageIds, userIds (or the singular forms) or detectDriftFor"
    )]
    NoTargets,
    #[error("{count} distinct IDs exceed the limit of {limit} per call ({setting})")]
    TooManyIds {
        count: usize,
        limit: usize,
        setting: &'static str,
    },
}

fn fields_message(errors: &[FieldError], total: usize) -> String {
    let listed = if total > errors.len() {
        format!(" (first {} listed)", errors.len())
    } else {
        String::new()
    };
    let noun = if total == 1 { "field" } else { "fields" };
    let each: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.reason)).collect();
    format!("{total} invalid {noun}{listed}: {}", each.join("; "))
}

impl RequestError {
    /// Every refused field, capped at [`MAX_LISTED_FIELD_ERRORS`] (the count is in the message).
    pub fn fields(mut errors: Vec<FieldError>) -> Self {
        let total = errors.len();
        errors.truncate(MAX_LISTED_FIELD_ERRORS);
        RequestError::Fields { errors, total }
    }

    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            RequestError::Fields { errors, .. } => errors,
            _ => &[],
        }
    }
}

impl From<StrictJsonError> for RequestError {
    fn from(e: StrictJsonError) -> Self {
        match e {
            StrictJsonError::DuplicateKey { .. } => RequestError::DuplicateKey(e),
            StrictJsonError::TooManyValues { .. } => RequestError::TooManyValues(e),
            StrictJsonError::Syntax(text) => RequestError::Json(text),
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

/// Which JSON form is read: what a caller may send over HTTP, or everything a queue message may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Http,
    Queue,
}

/// An HTTP body of `function-reprocess`: what to reprocess, expand or check, and how.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpBody {
    pub targets: Targets,
    /// Packages and users to expand into assignment IDs, in the order first seen, without duplicates.
    pub scopes: Vec<Scope>,
    /// Packages to check for drift (`detectDriftFor.accessPackageIds`), without duplicates.
    pub drift_packages: Vec<AccessPackageId>,
    pub dry_run: bool,
    pub correlation_id: Option<CorrelationId>,
}

/// Parses an HTTP body. A field only the queue's own messages carry (`nextLink`, `attempt`,
/// `notBefore`, `origin`, `messageKey`, `heal`) is refused by name, like an unknown field.
pub fn parse_http_body(text: &str, max_ids: usize) -> Result<HttpBody, RequestError> {
    let fields = parse_json(text, max_ids, Form::Http)?;
    Ok(HttpBody {
        targets: fields.targets,
        scopes: fields.scopes,
        drift_packages: fields.drift_packages,
        dry_run: fields.dry_run,
        correlation_id: fields.meta.correlation_id,
    })
}

/// Parses a JSON object message in its queue form (every field the handler writes).
pub fn parse_json_request(text: &str, max_ids: usize) -> Result<Fields, RequestError> {
    parse_json(text, max_ids, Form::Queue)
}

fn parse_json(text: &str, max_ids: usize, form: Form) -> Result<Fields, RequestError> {
    if text.trim().is_empty() {
        return Err(RequestError::Empty);
    }
    // Strict: a repeated key refuses the whole text instead of keeping only its last value.
    let value = parse_strict(text, value_budget(max_ids))?;
    match value {
        Value::Object(map) => parse_object(&map, max_ids, form),
        other => Err(RequestError::NotAnObject(json_kind(&other))),
    }
}

/// Parses a queue message: a bare GUID (optionally as a JSON string) or the JSON object form.
pub fn parse_queue_message(text: &str, max_ids: usize) -> Result<Fields, RequestError> {
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
        RequestError::fields(vec![FieldError {
            field: "message".into(),
            reason: format!("a bare message is an assignment ID and {e}"),
        }])
    })?;
    Ok(Fields {
        targets: Targets::from_items([Target::Assignment(id)]),
        ..Default::default()
    })
}

fn parse_object(map: &Map<String, Value>, max_ids: usize, form: Form) -> Result<Fields, RequestError> {
    let mut errors = Vec::new();
    for key in map.keys() {
        let key = key.as_str();
        let queue_only = QUEUE_ONLY_FIELDS.contains(&key);
        if queue_only && form == Form::Http {
            errors.push(FieldError {
                field: key.to_owned(),
                reason: "only the queue function's own messages carry this field; an HTTP call cannot send it".into(),
            });
        } else if !queue_only && !HTTP_FIELDS.contains(&key) {
            let expected = match form {
                Form::Http => HTTP_FIELDS.join(", "),
                Form::Queue => [HTTP_FIELDS, QUEUE_ONLY_FIELDS].concat().join(", "),
            };
            errors.push(FieldError {
                field: truncate(key),
                reason: format!("unknown field; expected one of {expected}"),
            });
        }
    }
    let mut items = Vec::new();
    collect_ids(
        map,
        field::ASSIGNMENT_IDS,
        field::ASSIGNMENT_ID,
        &mut errors,
        &mut items,
        |s| AssignmentId::parse(s).map(Target::Assignment),
    );
    collect_ids(
        map,
        field::ASSIGNMENT_REQUEST_IDS,
        field::ASSIGNMENT_REQUEST_ID,
        &mut errors,
        &mut items,
        |s| AssignmentRequestId::parse(s).map(Target::AssignmentRequest),
    );
    let mut scopes = Vec::new();
    collect_ids(
        map,
        field::ACCESS_PACKAGE_IDS,
        field::ACCESS_PACKAGE_ID,
        &mut errors,
        &mut scopes,
        |s| AccessPackageId::parse(s).map(Scope::AccessPackage),
    );
    collect_ids(map, field::USER_IDS, field::USER_ID, &mut errors, &mut scopes, |s| {
        UserId::parse(s).map(Scope::User)
    });
    let dry_run = match map.get(field::DRY_RUN) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            errors.push(FieldError {
                field: field::DRY_RUN.into(),
                reason: format!("must be true or false, got {}", json_kind(other)),
            });
            false
        }
    };
    let next_link = match map.get(field::NEXT_LINK) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= MAX_NEXT_LINK => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError {
                field: field::NEXT_LINK.into(),
                reason: format!("must be a Graph @odata.nextLink URL of at most {MAX_NEXT_LINK} characters"),
            });
            None
        }
    };

    let attempt = match map.get(field::ATTEMPT) {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v <= 1_000) => n.as_u64().unwrap_or(0) as u32,
        Some(other) => {
            errors.push(FieldError {
                field: field::ATTEMPT.into(),
                reason: format!("must be a whole number from 0 to 1000, got {}", json_kind(other)),
            });
            0
        }
    };
    let not_before = match map.get(field::NOT_BEFORE) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            match time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
                Ok(t) => Some(t),
                Err(e) => {
                    errors.push(FieldError {
                        field: field::NOT_BEFORE.into(),
                        reason: format!("must be an RFC 3339 time: {e}"),
                    });
                    None
                }
            }
        }
        Some(other) => {
            errors.push(FieldError {
                field: field::NOT_BEFORE.into(),
                reason: format!("must be a string, got {}", json_kind(other)),
            });
            None
        }
    };
    let correlation_id = match map.get(field::CORRELATION_ID) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if CorrelationId::parse(s).is_some() => CorrelationId::parse(s),
        Some(_) => {
            errors.push(FieldError {
                field: field::CORRELATION_ID.into(),
                reason: "must be a string of at most 64 letters, digits or hyphens".into(),
            });
            None
        }
    };

    let origin = match map.get(field::ORIGIN) {
        None | Some(Value::Null) => None,
        Some(value @ Value::Object(_)) => match serde_json::from_value::<Caller>(value.clone()) {
            Ok(caller) => Some(caller.cleaned()),
            Err(e) => {
                errors.push(FieldError {
                    field: field::ORIGIN.into(),
                    reason: format!(
                        "must be an object of the documented string fields: {}",
                        truncate(&e.to_string())
                    ),
                });
                None
            }
        },
        Some(other) => {
            errors.push(FieldError {
                field: field::ORIGIN.into(),
                reason: format!("must be an object, got {}", json_kind(other)),
            });
            None
        }
    };
    let scope = match map.get(field::SCOPE) {
        None | Some(Value::Null) => None,
        Some(value @ Value::Object(_)) => {
            match serde_json::from_value::<crate::domain::ScopeLists>(value.clone())
                .map_err(|e| truncate(&e.to_string()))
                .and_then(|lists| lists.to_scope())
            {
                // `{}` would narrow nothing; the handler never writes it, so it is refused.
                Ok(Some(scope)) => Some(scope),
                Ok(None) => {
                    errors.push(FieldError {
                        field: field::SCOPE.into(),
                        reason: "must name catalogIds or accessPackageIds".into(),
                    });
                    None
                }
                Err(reason) => {
                    errors.push(FieldError {
                        field: field::SCOPE.into(),
                        reason: format!("must be {{\"catalogIds\":[GUID…],\"accessPackageIds\":[GUID…]}}: {reason}"),
                    });
                    None
                }
            }
        }
        Some(other) => {
            errors.push(FieldError {
                field: field::SCOPE.into(),
                reason: format!("must be an object, got {}", json_kind(other)),
            });
            None
        }
    };
    let message_key = match map.get(field::MESSAGE_KEY) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if MessageKey::parse(s).is_some() => MessageKey::parse(s),
        Some(_) => {
            errors.push(FieldError {
                field: field::MESSAGE_KEY.into(),
                reason: "must be 24 lower-case hex digits (set by the handler)".into(),
            });
            None
        }
    };
    let drift_packages = parse_drift(map, &mut errors);
    let heal = match map.get(field::HEAL) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if HealListing::parse(s).is_some() => HealListing::parse(s),
        Some(_) => {
            errors.push(FieldError {
                field: field::HEAL.into(),
                reason: "must be requests:<state> or assignments:<state>, state deliveryFailed or partiallyDelivered"
                    .into(),
            });
            None
        }
    };

    if !errors.is_empty() {
        return Err(RequestError::fields(errors));
    }
    let targets = Targets::from_items(items);
    let mut seen = HashSet::new();
    scopes.retain(|s| seen.insert(*s));
    if targets.is_empty() && scopes.is_empty() && drift_packages.is_empty() && heal.is_none() {
        return Err(RequestError::NoTargets);
    }
    if heal.is_some() && !(targets.is_empty() && scopes.is_empty() && drift_packages.is_empty()) {
        return Err(RequestError::fields(vec![FieldError {
            field: field::HEAL.into(),
            reason: "a heal listing message carries nothing else".into(),
        }]));
    }
    let single_listing = (targets.is_empty() && scopes.len() == 1 && heal.is_none())
        || (targets.is_empty() && scopes.is_empty() && heal.is_some());
    if next_link.is_some() && !(single_listing && drift_packages.is_empty()) {
        return Err(RequestError::fields(vec![FieldError {
            field: field::NEXT_LINK.into(),
            reason: "only allowed with exactly one access package or user and no other IDs".into(),
        }]));
    }
    let count = targets.len() + scopes.len() + drift_packages.len();
    if count > max_ids {
        return Err(RequestError::TooManyIds {
            count,
            limit: max_ids,
            setting: "MAX_IDS_PER_CALL",
        });
    }
    Ok(Fields {
        targets,
        scopes,
        dry_run,
        next_link,
        drift_packages,
        heal,
        meta: Meta {
            attempt,
            not_before,
            correlation_id,
            origin,
            message_key,
            scope,
        },
    })
}

/// `detectDriftFor`: an object whose only field is `accessPackageIds` (GUIDs; duplicates collapse).
fn parse_drift(map: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Vec<AccessPackageId> {
    let mut packages = Vec::new();
    match map.get(field::DETECT_DRIFT_FOR) {
        None | Some(Value::Null) => {}
        Some(Value::Object(inner)) => {
            for key in inner.keys().filter(|k| k.as_str() != field::ACCESS_PACKAGE_IDS) {
                errors.push(FieldError {
                    field: format!("{}.{}", field::DETECT_DRIFT_FOR, truncate(key)),
                    reason: format!("unknown field; expected {}", field::ACCESS_PACKAGE_IDS),
                });
            }
            match inner.get(field::ACCESS_PACKAGE_IDS) {
                Some(Value::Array(values)) if !values.is_empty() => {
                    for (i, v) in values.iter().enumerate() {
                        match v.as_str().map(AccessPackageId::parse) {
                            Some(Ok(id)) if !packages.contains(&id) => packages.push(id),
                            Some(Ok(_)) => {}
                            Some(Err(e)) => errors.push(FieldError {
                                field: format!("{}.{}[{i}]", field::DETECT_DRIFT_FOR, field::ACCESS_PACKAGE_IDS),
                                reason: e.to_string(),
                            }),
                            None => errors.push(FieldError {
                                field: format!("{}.{}[{i}]", field::DETECT_DRIFT_FOR, field::ACCESS_PACKAGE_IDS),
                                reason: format!("must be a string GUID, got {}", json_kind(v)),
                            }),
                        }
                    }
                }
                _ => errors.push(FieldError {
                    field: format!("{}.{}", field::DETECT_DRIFT_FOR, field::ACCESS_PACKAGE_IDS),
                    reason: "must be a non-empty array of access package GUIDs".into(),
                }),
            }
        }
        Some(other) => errors.push(FieldError {
            field: field::DETECT_DRIFT_FOR.into(),
            reason: format!(
                "must be an object such as {{\"accessPackageIds\":[\"…\"]}}, got {}",
                json_kind(other)
            ),
        }),
    }
    packages
}

fn collect_ids<T>(
    map: &Map<String, Value>,
    list_field: &str,
    single_field: &str,
    errors: &mut Vec<FieldError>,
    items: &mut Vec<T>,
    parse: impl Fn(&str) -> Result<T, GuidError>,
) {
    let one = |field: String, value: &Value| -> Result<T, FieldError> {
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
    let mut out = crate::domain::text::shown(s, 64);
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
