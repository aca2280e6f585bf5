//! Dead letters always fit a queue message and lose nothing.

use super::*;
use crate::domain::{AssignmentId, CorrelationId, Target, Targets};
use crate::message::Meta;
use crate::message::fit::MAX_MESSAGE_TEXT;
use serde_json::Value;
use std::collections::HashSet;

fn source() -> DeadLetterSource {
    DeadLetterSource::now("reprocess-requests", Some("m-1".into()), Some(1), "inv-1")
}

#[test]
fn a_thousand_denied_ids_with_long_errors_split_into_records_that_fit() {
    let targets: Vec<Target> = (0..1_000)
        .map(|i| Target::Assignment(AssignmentId::parse(&format!("b0b0b0b0-0000-4000-8000-{:012x}", i + 1)).unwrap()))
        .collect();
    let results: Vec<ItemResult> = targets
        .iter()
        .map(|t| ItemResult {
            kind: t.kind(),
            id: t.id().to_owned(),
            outcome: Outcome::PermissionDenied {
                error: GraphError {
                    code: "Authorization_RequestDenied".into(),
                    message: "Insufficient privileges to complete the operation. ".repeat(40),
                },
                missing_app_role: "EntitlementManagement.ReadWrite.All",
            },
            http_status: Some(403),
            graph_request_id: Some("r".repeat(300)),
            attempts: 1,
            target: Some(*t),
        })
        .collect();
    let correlation = CorrelationId::parse("c").unwrap();
    let record = DeadLetter::work(
        "permission denied".into(),
        Fields {
            targets: Targets::from_items(targets.iter().copied()),
            meta: Meta {
                correlation_id: Some(correlation.clone()),
                ..Meta::default()
            },
            ..Fields::default()
        },
        results,
        source(),
    );
    let texts = record.into_texts();
    assert!(texts.len() > 1);
    let mut ids = Vec::new();
    for text in &texts {
        assert!(text.len() <= MAX_MESSAGE_TEXT, "{} bytes", text.len());
        let v: Value = serde_json::from_str(text).unwrap();
        let listed: Vec<String> = v["assignmentIds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().to_owned())
            .collect();
        let with_results: HashSet<&str> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            with_results,
            listed.iter().map(String::as_str).collect(),
            "each record has its IDs' results"
        );
        assert!(
            v["results"][0]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("[truncated from")
        );
        assert_eq!(v["messageId"], "m-1");
        ids.extend(listed);
    }
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), 1_000, "every ID in exactly one record");
    assert_eq!(unique.len(), 1_000);
}

#[test]
fn an_original_too_large_to_carry_keeps_a_prefix_its_length_and_hash() {
    let original = "\"\u{1}é".repeat(30_000);
    let record = DeadLetter::unusable("malformed".into(), Vec::new(), &original, source());
    let texts = record.into_texts();
    assert_eq!(texts.len(), 1);
    assert!(texts[0].len() <= MAX_MESSAGE_TEXT);
    let v: Value = serde_json::from_str(&texts[0]).unwrap();
    assert_eq!(v["originalMessageTruncated"], true);
    assert_eq!(v["originalMessageLength"], original.len());
    assert_eq!(v["originalMessageSha256"], crate::message::fit::sha256_hex(&original));
    let prefix = v["originalMessage"].as_str().unwrap();
    assert!(!prefix.is_empty() && original.starts_with(prefix));
    assert!(
        texts[0].len() > MAX_MESSAGE_TEXT - 64,
        "the prefix uses the room there is"
    );

    let small = DeadLetter::unusable("malformed".into(), Vec::new(), "x", source()).into_texts();
    let v: Value = serde_json::from_str(&small[0]).unwrap();
    assert_eq!(v["originalMessage"], "x");
    assert!(v.get("originalMessageTruncated").is_none());
}
