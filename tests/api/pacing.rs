//! Issue 10 behaviour: a stray 429 holds back only its own request, and a hung request is abandoned
//! after a timeout derived from how fast Graph answers rather than the whole configured one. These check
//! what happened (answers, outcomes, the timeout the handler used), never how long it took.

use crate::helpers::*;
use reprocess_handler::emulator::{EmulatorState, Fault};
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
    // The timeout used is the floor (3 s), not the configured 60 s.
    assert!(
        app.stdout_contains("Graph did not answer within 3000 ms"),
        "{}",
        app.stdout()
    );
}
