//! Pacing: a stray 429 holds back only its own request, and a hung request is abandoned
//! after a timeout derived from how fast Graph answers rather than the whole configured one. These check
//! what happened (answers, outcomes, the timeout the handler used), never how long it took.

use crate::helpers::*;
use reprocess_emulator::{EmulatorState, Fault};
use serde_json::json;
use std::time::Duration;

const SERIES: u32 = 0xbe10;

fn tenant(count: usize) -> (EmulatorState, Vec<String>) {
    delivered_tenant(SERIES, count)
}

#[test]
fn a_stray_429_does_not_stall_other_invocations() {
    let (state, ids) = tenant(2);
    // Graph asks for 60 s on one request only; everything else it accepts.
    state.faults.script(&ids[0], [Fault::throttled(60)]);
    let app = spawn_app_with(state, &[("HTTP_BUDGET_SECONDS", "20")]);
    let (status, headers, reply) = app.post_ids(&json!({ "assignmentIds": [ids[0]] }).to_string()).res();
    assert_eq!(status, 503, "the throttled ID is handed back: {reply}");
    assert_eq!(headers["Retry-After"], "60");
    // The next invocation is not held behind that 60 s: a lone 429 among accepted answers is not the
    // app's budget running out (a process-wide gate would have made this one transient too).
    let (status, _, reply) = app.post_ids(&json!({ "assignmentIds": [ids[1]] }).to_string()).res();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["results"][0]["outcome"], "accepted");
    assert_eq!(reply["results"][0]["attempts"], 1);
}

#[test]
fn a_hung_request_is_abandoned_after_a_timeout_learned_from_graph_s_latency() {
    let (state, ids) = tenant(41);
    let app = spawn_app_with(
        state.with_latency(Duration::from_millis(20)),
        &[("GRAPH_ATTEMPT_TIMEOUT_SECONDS", "60"), ("GRAPH_BATCH_SIZE", "1")],
    );
    // 40 answers of ~20 ms teach the handler how fast Graph is.
    let (status, _, reply) = app.post_ids(&json!({ "assignmentIds": ids[..40] }).to_string()).res();
    assert_eq!((status, &reply["summary"]["accepted"]), (200, &json!(40)));
    app.emulator
        .state
        .faults
        .script(&ids[40], [Fault::Hang(Duration::from_secs(120))]);
    let (status, _, reply) = app.post_ids(&json!({ "assignmentIds": [ids[40]] }).to_string()).res();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["results"][0]["outcome"], "accepted");
    assert_eq!(
        reply["results"][0]["attempts"], 2,
        "the hung attempt was given up and retried"
    );
    // The timeout used is the floor (1 s), not the configured 60 s.
    assert!(
        app.stdout_contains("Graph did not answer within 1000 ms"),
        "{}",
        app.stdout()
    );
}

/// The waits a `$batch` logged before sending its failed sub-requests again, by round.
fn batch_retry_waits(stdout: &str) -> Vec<(u64, u64)> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["message"] == "transient Graph failures in a batch")
        .map(|event| {
            let field = |name: &str| event[name].as_u64().unwrap_or_else(|| panic!("no {name} in {event}"));
            (field("round"), field("wait_ms"))
        })
        .collect()
}

#[test]
fn a_batch_failing_whole_while_graph_answers_the_rest_is_retried_soon() {
    let (state, ids) = tenant(220);
    let app = spawn_app_with(state, &[]);
    // Ten batches answered (two calls of 100 IDs, the most one HTTP call reprocesses itself): Graph is healthy.
    for part in ids[..200].chunks(100) {
        let (status, _, reply) = app.post_ids(&json!({ "assignmentIds": part }).to_string()).res();
        assert_eq!((status, &reply["summary"]["accepted"]), (200, &json!(100)));
    }
    // Then one batch fails whole three times in a row (a reset or a gateway's 503 is Graph's noise).
    app.emulator.state.faults.script_batches([Fault::status(503); 3]);
    let (status, _, reply) = app.post_ids(&json!({ "assignmentIds": ids[200..] }).to_string()).res();
    assert_eq!((status, &reply["summary"]["accepted"]), (200, &json!(20)), "{reply}");
    let waits = batch_retry_waits(&app.stdout());
    assert_eq!(waits.iter().map(|(round, _)| *round).collect::<Vec<_>>(), [1, 2, 3]);
    // Each retry after at most a second: no exponential back-off (rounds 2 and 3 would wait 1–2 s and 2–4 s).
    assert!(waits.iter().all(|(_, wait)| *wait <= 1_000), "{waits:?}");
}

#[test]
fn when_most_recent_requests_fail_graph_is_in_trouble_and_waits_grow() {
    let (state, ids) = tenant(20);
    let app = spawn_app_with(state, &[]);
    // Nothing but failures: Graph is failing, not unlucky.
    app.emulator.state.faults.script_batches([Fault::status(503); 3]);
    let (status, _, reply) = app.post_ids(&json!({ "assignmentIds": ids }).to_string()).res();
    assert_eq!((status, &reply["summary"]["accepted"]), (200, &json!(20)), "{reply}");
    let waits = batch_retry_waits(&app.stdout());
    assert_eq!(waits.iter().map(|(round, _)| *round).collect::<Vec<_>>(), [1, 2, 3]);
    // Round 3 backs off 2–4 s (full jitter over the upper half), round 2 1–2 s.
    assert!(waits[1].1 >= 1_000 && waits[2].1 >= 2_000, "{waits:?}");
}

#[test]
fn queue_work_asks_graph_for_low_priority_and_a_waiting_caller_does_not() {
    let (state, ids) = tenant(4);
    let app = spawn_app_with(state, &[]);
    let (status, _, reply) = app
        .post_ids(&json!({ "assignmentIds": [ids[0], ids[1]] }).to_string())
        .res();
    assert_eq!(status, 200, "{reply}");
    let synchronous = app.emulator.state.graph_requests();
    assert!(!synchronous.is_empty());
    assert!(
        synchronous.iter().all(|r| r.priority.is_none()),
        "a caller waits for this answer: Graph's default (normal) priority"
    );
    let reply = app.queue_message(&json!({ "assignmentIds": [ids[2], ids[3]] }).to_string());
    assert_eq!(reply.status, 200);
    let queued: Vec<_> = app
        .emulator
        .state
        .graph_requests()
        .into_iter()
        .skip(synchronous.len())
        .collect();
    assert!(
        queued.iter().any(|r| r.batched),
        "the IDs went through $batch: {queued:?}"
    );
    for r in &queued {
        assert_eq!(r.priority.as_deref(), Some("low"), "{} {}", r.method, r.path_and_query);
    }
}
