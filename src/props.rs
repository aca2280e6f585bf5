//! Property tests over every parser of outside text: the envelope, HTTP bodies and queue messages
//! (`message::parse_*`) and alerts (`json::parse_strict` + `domain::alert::parse_alert`). For arbitrary
//! JSON — nested, with repeated keys, with GUIDs, look-alikes and junk under the target names — they
//! never panic, and either every GUID present under a target field is in the result or the whole input
//! is refused. Case count: `PROPTEST_CASES` (proptest's default 256; `.ci/run` sets its own).

use crate::domain::Guid;
use crate::domain::alert::{AlertVerdict, parse_alert};
use crate::host::{Envelope, HttpTrigger, QueueTrigger};
use crate::json::parse_strict;
use crate::message::{Fields, parse_http_body, parse_json_request, parse_queue_message};
use proptest::prelude::*;
use std::collections::BTreeSet;

/// JSON that may repeat keys (serde_json's `Value` cannot), so duplicates can be generated.
#[derive(Debug, Clone)]
enum J {
    Null,
    Bool(bool),
    Num(i64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    fn text(&self) -> String {
        match self {
            J::Null => "null".into(),
            J::Bool(b) => b.to_string(),
            J::Num(n) => n.to_string(),
            J::Str(s) => serde_json::to_string(s).unwrap(),
            J::Arr(items) => format!("[{}]", items.iter().map(J::text).collect::<Vec<_>>().join(",")),
            J::Obj(entries) => format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), v.text()))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

const REQUEST_LISTS: &[&str] = &["assignmentIds", "assignmentRequestIds", "accessPackageIds", "userIds"];
const REQUEST_SINGLES: &[&str] = &["assignmentId", "assignmentRequestId", "accessPackageId", "userId"];
const ALERT_NAMES: &[&str] = &[
    "assignmentId",
    "AssignmentRequestId",
    "accessPackageId",
    "userId",
    "TargetUserId",
];

fn guid() -> impl Strategy<Value = String> {
    (any::<u128>(), any::<bool>()).prop_map(|(n, upper)| {
        let hex = format!("{n:032x}");
        let g = format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        );
        if upper { g.to_uppercase() } else { g }
    })
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => guid(),
        1 => guid().prop_map(|g| format!(" {g}")),
        1 => guid().prop_map(|g| g.replacen('-', "\u{2010}", 1)),
        1 => "[a-zA-Z0-9 ./-]{0,40}",
        1 => any::<String>(),
    ]
}

fn key() -> impl Strategy<Value = String> {
    let mut known: Vec<&'static str> = REQUEST_LISTS.to_vec();
    known.extend(REQUEST_SINGLES);
    known.extend(["dryRun", "correlationId", "name", "value"]);
    prop_oneof![3 => proptest::sample::select(known).prop_map(str::to_owned), 1 => "[a-zA-Z]{1,10}"]
}

fn json() -> impl Strategy<Value = J> {
    let leaf = prop_oneof![
        Just(J::Null),
        any::<bool>().prop_map(J::Bool),
        any::<i64>().prop_map(J::Num),
        text().prop_map(J::Str),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(J::Arr),
            proptest::collection::vec((key(), inner), 0..8).prop_map(J::Obj),
        ]
    })
}

/// A body shaped like a request: target fields holding mostly GUIDs, now and then a repeated key.
fn request_body() -> impl Strategy<Value = J> {
    let field = prop_oneof![
        (
            proptest::sample::select(REQUEST_LISTS),
            proptest::collection::vec(text(), 0..6)
        )
            .prop_map(|(k, ids)| (k.to_owned(), J::Arr(ids.into_iter().map(J::Str).collect()))),
        (proptest::sample::select(REQUEST_SINGLES), text()).prop_map(|(k, id)| (k.to_owned(), J::Str(id))),
    ];
    prop_oneof![
        3 => proptest::collection::vec(field, 1..5).prop_map(J::Obj),
        1 => json(),
    ]
}

fn canonical(s: &str) -> Option<String> {
    Guid::parse(s).ok().map(|g| g.to_string())
}

/// Every GUID a request body names under a target field, over every occurrence of a repeated key.
fn named_in_request(body: &J) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let J::Obj(entries) = body {
        for (k, v) in entries {
            match v {
                J::Arr(items) if REQUEST_LISTS.contains(&k.as_str()) => {
                    for item in items {
                        if let J::Str(s) = item {
                            out.extend(canonical(s));
                        }
                    }
                }
                J::Str(s) if REQUEST_SINGLES.contains(&k.as_str()) => out.extend(canonical(s)),
                _ => {}
            }
        }
    }
    out
}

fn yielded(request: &Fields) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = request.targets.items().iter().map(|t| t.id().to_owned()).collect();
    out.extend(request.scopes.iter().map(|s| s.id().to_owned()));
    out
}

fn alert() -> impl Strategy<Value = (J, BTreeSet<String>)> {
    let name = prop_oneof![
        2 => proptest::sample::select(ALERT_NAMES).prop_map(str::to_owned),
        1 => "[a-zA-Z]{1,10}",
    ];
    let value = prop_oneof![4 => text().prop_map(J::Str), 1 => json()];
    let pair = (name, value);
    (
        proptest::collection::vec(pair.clone(), 0..12),
        proptest::collection::vec(pair, 0..4),
        json(),
    )
        .prop_map(|(dims, props, noise)| {
            let mut named = BTreeSet::new();
            let mut note = |n: &str, v: &J| {
                if ALERT_NAMES.iter().any(|a| a.eq_ignore_ascii_case(n.trim()))
                    && let J::Str(s) = v
                {
                    named.extend(canonical(s.trim()));
                }
            };
            for (n, v) in dims.iter().chain(&props) {
                note(n, v);
            }
            let dimensions = J::Arr(
                dims.into_iter()
                    .map(|(n, v)| J::Obj(vec![("name".into(), J::Str(n)), ("value".into(), v)]))
                    .collect(),
            );
            let alert = J::Obj(vec![
                ("schemaId".into(), J::Str("azureMonitorCommonAlertSchema".into())),
                (
                    "data".into(),
                    J::Obj(vec![
                        (
                            "essentials".into(),
                            J::Obj(vec![("monitorCondition".into(), J::Str("Fired".into()))]),
                        ),
                        (
                            "alertContext".into(),
                            J::Obj(vec![(
                                "condition".into(),
                                J::Obj(vec![(
                                    "allOf".into(),
                                    J::Arr(vec![J::Obj(vec![("dimensions".into(), dimensions)])]),
                                )]),
                            )]),
                        ),
                        ("customProperties".into(), J::Obj(props.into_iter().collect())),
                        ("noise".into(), noise),
                    ]),
                ),
            ]);
            (alert, named)
        })
}

proptest! {
    #[test]
    fn bodies_yield_every_named_guid_or_are_refused(body in request_body()) {
        let text = body.text();
        let named = named_in_request(&body);
        if let Ok(request) = parse_json_request(&text, 1_000) {
            prop_assert!(named.is_subset(&yielded(&request)), "{text}: {named:?} vs {:?}", yielded(&request));
        }
        if let Ok(body) = parse_http_body(&text, 1_000) {
            let mut got: BTreeSet<String> = body.targets.items().iter().map(|t| t.id().to_owned()).collect();
            got.extend(body.scopes.iter().map(|s| s.id().to_owned()));
            prop_assert!(named.is_subset(&got), "{text}");
        }
        if let Ok(request) = parse_queue_message(&text, 1_000) {
            prop_assert!(named.is_subset(&yielded(&request)), "{text}");
        }
    }

    #[test]
    fn queue_messages_of_any_text_never_panic(text in any::<String>()) {
        if let Ok(request) = parse_queue_message(&text, 1_000) {
            prop_assert!(!yielded(&request).is_empty());
        }
    }

    #[test]
    fn alerts_yield_every_named_guid_or_nothing((alert, named) in alert()) {
        let text = alert.text();
        let Ok(payload) = parse_strict(&text, 100_000) else { return Ok(()); };
        match parse_alert(&payload) {
            AlertVerdict::Work { targets, scopes, .. } => {
                let mut got: BTreeSet<String> = targets.items().iter().map(|t| t.id().to_owned()).collect();
                got.extend(scopes.iter().map(|s| s.id().to_owned()));
                prop_assert!(named.is_subset(&got), "{text}: {named:?} vs {got:?}");
            }
            AlertVerdict::NothingToDo { .. } => prop_assert!(named.is_empty(), "{text}"),
            AlertVerdict::TooManyPairs { .. } => {}
        }
    }

    #[test]
    fn envelopes_of_any_json_never_panic(value in json(), raw in any::<Vec<u8>>()) {
        for bytes in [value.text().into_bytes(), raw] {
            if let Ok(envelope) = Envelope::parse(&bytes) {
                let _ = HttpTrigger::from_envelope(&envelope, "req");
                let _ = QueueTrigger::from_envelope(&envelope, "message");
            }
        }
    }
}

proptest! {
    /// What the host wraps is what the functions read: the caller's body and the queue message, exactly.
    #[test]
    fn envelopes_built_as_the_host_does_hand_over_the_text_unchanged(body in request_body(), text in any::<String>()) {
        use reprocess_emulator::host::{HttpCall, QueueMessageMeta, http_envelope, queue_envelope};
        let body = body.text();
        let envelope = Envelope::parse(http_envelope("f", "req", &HttpCall::post_json("reprocess", &body)).as_bytes()).unwrap();
        prop_assert_eq!(HttpTrigger::from_envelope(&envelope, "req").unwrap().body, Some(body));
        let envelope = Envelope::parse(queue_envelope("f", "message", &text, &QueueMessageMeta::now(1)).as_bytes()).unwrap();
        prop_assert_eq!(QueueTrigger::from_envelope(&envelope, "message").unwrap().text, text);
    }
}

proptest! {
    /// Whatever Graph (or anything between) puts in `x-ms-throttle-limit-percentage`, the pacing sees a
    /// share it can steer by or none: never zero, negative, infinite or absurdly large.
    #[test]
    fn any_throttle_share_header_reads_as_a_bounded_share_or_none(
        value in prop_oneof![any::<String>(), any::<f64>().prop_map(|v| v.to_string()), (0u32..100_000).prop_map(|v| format!("{}.{}", v / 100, v % 100))]
    ) {
        use crate::graph::signals::{LIMIT_PERCENTAGE, Signals};
        let read = Signals::read(|name| (name == LIMIT_PERCENTAGE).then(|| value.clone()));
        if let Some(share) = read.limit_used {
            prop_assert!(share.is_finite() && share > 0.0 && share <= 5.0, "{value:?} read as {share}");
        }
    }
}
