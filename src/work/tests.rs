//! Typed work: every kind round-trips through its wire form, chunks lose nothing, keys are
//! deterministic, and the one settle rule retries, dead-letters and splits alike for every kind.

use super::*;
use crate::domain::{AssignmentId, AssignmentRequestId, Outcome, Target, TargetKind};
use crate::message::{DeadLetterSource, IDS_PER_MESSAGE};
use serde_json::Value;

const P: &str = "9a1d6e2c-3b4f-4c5d-8e6f-7a8b9c0d1e2f";

fn ids(n: usize) -> Targets {
    Targets::from_items((0..n).map(|i| {
        let id = format!("b0b0b0b0-0000-4000-8000-{:012x}", i + 1);
        if i % 5 == 4 {
            Target::AssignmentRequest(AssignmentRequestId::parse(&id).unwrap())
        } else {
            Target::Assignment(AssignmentId::parse(&id).unwrap())
        }
    }))
}

fn meta() -> Meta {
    Meta {
        correlation_id: CorrelationId::parse("c"),
        ..Meta::default()
    }
}

fn package() -> AccessPackageId {
    AccessPackageId::parse(P).unwrap()
}

fn source() -> DeadLetterSource {
    DeadLetterSource::now("q", None, Some(1), "inv")
}

#[test]
fn every_kind_round_trips_through_its_text() {
    // IDs are written grouped by kind, so only one kind keeps its order.
    let kinds = [
        Work::Reprocess(ids(4)),
        Work::Expand {
            scope: Scope::AccessPackage(package()),
            next_link: Some("https://graph.microsoft.com/x".into()),
        },
        Work::Drift(package()),
        Work::Heal {
            listing: HealListing::ALL[0],
            next_link: None,
        },
        Work::Split(split::Split {
            targets: ids(3),
            scopes: vec![Scope::AccessPackage(package())],
            drift_packages: vec![package()],
        }),
    ];
    for work in kinds {
        let message = QueueMessage::child(work, &meta()).requeued(2, Some(30));
        let back = QueueMessage::parse(&message.to_text(), 1000).unwrap();
        let mut sent = message.clone();
        // notBefore travels in whole seconds.
        sent.meta.not_before = sent.meta.not_before.map(|t| t.replace_nanosecond(0).unwrap());
        assert_eq!(back, sent, "{}", message.to_text());
        assert_eq!(back.meta.attempt, 2);
        let wait = back.meta.not_before.unwrap() - OffsetDateTime::now_utc();
        assert!(
            wait > time::Duration::seconds(25) && wait <= time::Duration::seconds(30),
            "{wait}"
        );
    }
}

#[test]
fn chunks_hold_at_most_twenty_ids_and_lose_none() {
    let targets = ids(45);
    let chunks = id_chunks(&targets);
    assert_eq!(chunks.len(), 3);
    let mut seen = Vec::new();
    for work in chunks {
        let text = QueueMessage::child(work, &meta()).to_text();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["correlationId"], "c");
        let Work::Reprocess(back) = QueueMessage::parse(&text, 1000).unwrap().work else {
            panic!("{text}");
        };
        assert!(back.len() <= IDS_PER_MESSAGE);
        seen.extend(back.items().iter().map(|t| t.id().to_owned()));
    }
    seen.sort();
    let mut want: Vec<String> = targets.items().iter().map(|t| t.id().to_owned()).collect();
    want.sort();
    assert_eq!(seen, want);
}

#[test]
fn message_keys_are_deterministic_per_parent_and_position() {
    let messages = || {
        vec![
            QueueMessage::child(Work::Drift(package()), &meta()),
            QueueMessage::child(Work::Drift(package()), &meta()),
        ]
    };
    let first = keyed(messages(), "parent");
    assert_eq!(first, keyed(messages(), "parent"), "a redelivery makes the same keys");
    assert_ne!(first[0].meta.message_key, first[1].meta.message_key, "siblings differ");
    assert_ne!(
        first[0].meta.message_key,
        keyed(messages(), "other")[0].meta.message_key
    );
    for message in &first {
        let back = QueueMessage::parse(&message.to_text(), 1000).unwrap();
        assert_eq!(back.meta.message_key, message.meta.message_key);
    }
}

#[test]
fn a_mixed_message_splits_into_one_message_per_kind() {
    let text = format!(
        r#"{{"assignmentIds":["b0b0b0b0-0000-4000-8000-000000000001"],"accessPackageIds":["{P}"],"userIds":["c5a1b2d3-e4f5-4a6b-9c7d-8e9f0a1b2c3d"],"detectDriftFor":{{"accessPackageIds":["{P}"]}}}}"#
    );
    let message = QueueMessage::parse(&text, 1000).unwrap();
    let Work::Split(split) = &message.work else {
        panic!("{:?}", message.work);
    };
    let parts = split.parts();
    assert_eq!(parts.len(), 4);
    assert!(matches!(parts[0], Work::Drift(_)));
    assert!(matches!(parts[1], Work::Expand { .. }));
    assert!(matches!(parts[2], Work::Expand { .. }));
    assert!(matches!(parts[3], Work::Reprocess(_)));
    let settled = settle(split.clone().run(), &message.meta, 5, &source());
    assert_eq!(settled.enqueue.len(), 4);
    assert!(settled.dead_letters.is_empty());
}

#[test]
fn dry_run_and_far_not_before_are_refused_on_the_queue() {
    let dry = format!(r#"{{"assignmentIds":["{P}"],"dryRun":true}}"#);
    let err = QueueMessage::parse(&dry, 10).unwrap_err();
    assert!(err.to_string().contains("only for HTTP"), "{err}");
    let far = format!(r#"{{"assignmentIds":["{P}"],"notBefore":"9999-01-01T00:00:00Z"}}"#);
    let message = QueueMessage::parse(&far, 10).unwrap();
    let err = message.wait_before_start(OffsetDateTime::now_utc()).unwrap_err();
    assert_eq!(err.field_errors()[0].field, "notBefore");
    let soon = QueueMessage::child(Work::Drift(package()), &meta()).requeued(9, Some(4_000));
    let wait = soon.wait_before_start(OffsetDateTime::now_utc()).unwrap();
    assert!(
        wait <= MAX_NOT_BEFORE_WAIT && wait > MAX_NOT_BEFORE_WAIT / 2,
        "{wait:?}"
    );
}

fn transient_result(target: Target) -> ItemResult {
    ItemResult {
        kind: TargetKind::Assignment,
        id: target.id().to_owned(),
        outcome: Outcome::Transient {
            reason: "503".into(),
            retry_after_seconds: Some(7),
        },
        http_status: Some(503),
        graph_request_id: None,
        attempts: 3,
        target: Some(target),
    }
}

#[test]
fn settle_retries_every_kind_the_same_way_then_dead_letters() {
    let kinds = [
        Work::Reprocess(ids(2)),
        Work::Expand {
            scope: Scope::AccessPackage(package()),
            next_link: None,
        },
        Work::Drift(package()),
        Work::Heal {
            listing: HealListing::ALL[1],
            next_link: Some("https://graph.microsoft.com/next".into()),
        },
    ];
    for work in kinds {
        let mut at = meta();
        at.attempt = 1;
        let settled = settle(Step::again(work.clone(), "Graph failed", Some(7)), &at, 3, &source());
        assert_eq!(settled.enqueue.len(), 1, "{work:?}");
        assert_eq!(settled.enqueue[0].work, work);
        assert_eq!(settled.enqueue[0].meta.attempt, 2);
        assert_eq!(settled.enqueue[0].meta.correlation_id, at.correlation_id);
        assert!(settled.enqueue[0].meta.not_before.is_some());
        assert!(settled.dead_letters.is_empty());

        at.attempt = 2;
        let settled = settle(Step::again(work.clone(), "Graph failed", None), &at, 3, &source());
        assert!(settled.enqueue.is_empty());
        assert_eq!(settled.dead_letters.len(), 1);
        let dead = &settled.dead_letters[0];
        assert!(dead.reason.contains("Graph failed") && dead.reason.contains("after 3 attempts"));
        let text = dead.clone().into_texts().remove(0);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["attempt"], 2, "the dead letter names the attempt it reached: {v}");
        assert_eq!(v["correlationId"], "c");
    }
}

#[test]
fn transient_ids_are_retried_and_denied_ids_dead_lettered_with_their_results() {
    let targets = ids(3);
    let items = targets.items();
    let mut results: Vec<ItemResult> = items.iter().map(|t| transient_result(*t)).collect();
    results[0].outcome = Outcome::Accepted;
    results[1].outcome = Outcome::PermissionDenied {
        error: crate::domain::outcome::GraphError {
            code: "Authorization_RequestDenied".into(),
            message: "no".into(),
        },
        missing_app_role: "EntitlementManagement.ReadWrite.All",
    };
    let step = reprocess::step(crate::domain::Report::new(results));
    let settled = settle(step, &meta(), 3, &source());
    assert_eq!(settled.results.len(), 3);
    assert_eq!(settled.enqueue.len(), 1);
    assert_eq!(
        settled.enqueue[0].work,
        Work::Reprocess(Targets::from_items([items[2]]))
    );
    assert_eq!(settled.enqueue[0].meta.attempt, 1);
    assert_eq!(settled.dead_letters.len(), 1);
    let dead = &settled.dead_letters[0];
    assert!(dead.reason.starts_with("permission denied"));
    assert_eq!(dead.results.len(), 1);
    assert_eq!(dead.work.as_ref().unwrap().targets, Targets::from_items([items[1]]));
}

#[test]
fn follow_on_work_keeps_the_caller_and_a_handed_on_retry_starts_at_attempt_one() {
    let mut at = meta();
    at.attempt = 4;
    at.origin = Some(crate::domain::Caller {
        trigger: Some("http".into()),
        ..Default::default()
    });
    let mut step = Step::default();
    step.next.push(Next::now(Work::Drift(package())));
    step.next.push(Next::retry(Work::Reprocess(ids(1)), Some(5)));
    let settled = settle(step, &at, 5, &source());
    assert_eq!(settled.enqueue.len(), 2);
    assert_eq!(settled.enqueue[0].meta.attempt, 0);
    assert!(settled.enqueue[0].meta.not_before.is_none());
    assert_eq!(settled.enqueue[1].meta.attempt, 1);
    assert!(settled.enqueue[1].meta.not_before.is_some());
    for m in &settled.enqueue {
        assert_eq!(m.meta.origin, at.origin);
        assert_eq!(m.meta.correlation_id, at.correlation_id);
    }
}

#[test]
fn a_message_too_large_for_the_queue_is_split_with_every_id_kept() {
    let targets = ids(5_000);
    let settled = settle(
        Step::again(Work::Reprocess(targets.clone()), "x", None),
        &meta(),
        5,
        &source(),
    );
    assert!(settled.enqueue.len() > 1);
    let mut count = 0;
    for m in &settled.enqueue {
        assert!(m.to_text().len() <= crate::message::fit::MAX_MESSAGE_TEXT - crate::message::fit::MESSAGE_KEY_ROOM);
        let Work::Reprocess(part) = &m.work else { panic!() };
        count += part.len();
    }
    assert_eq!(count, 5_000);
}

#[test]
fn a_callers_scope_travels_with_every_message_it_leads_to() {
    let catalog = crate::domain::CatalogId::parse("c0a1b2c3-d4e5-4f60-8172-839405a6b7c8").unwrap();
    let meta = Meta {
        scope: crate::domain::AllowedScope::new([catalog], []),
        ..meta()
    };
    let message = QueueMessage::child(Work::Drift(package()), &meta);
    let text = message.to_text();
    assert!(
        text.contains(r#""scope":{"catalogIds":["c0a1b2c3-d4e5-4f60-8172-839405a6b7c8"]}"#),
        "{text}"
    );
    let parsed = QueueMessage::parse(&text, 100).unwrap();
    assert_eq!(parsed.meta.scope, meta.scope);
    // Retries and the work a message hands on keep it.
    let settled = settle(
        Step::again(Work::Drift(package()), "later", None),
        &parsed.meta,
        5,
        &source(),
    );
    assert!(settled.enqueue.iter().all(|m| m.meta.scope == meta.scope));
    // A message cannot name an empty or malformed scope.
    for bad in [
        r#"{}"#,
        r#"{"catalogIds":[]}"#,
        r#"{"catalogIds":["x"]}"#,
        r#"{"catalogs":[]}"#,
        "[]",
    ] {
        let text = format!(r#"{{"assignmentIds":["{P}"],"scope":{bad}}}"#);
        assert!(QueueMessage::parse(&text, 100).is_err(), "{bad}");
    }
}
