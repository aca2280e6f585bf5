//! Throughput: JSON batching, per-sub-request retries, whole-batch retries, the shared back-off,
//! large HTTP calls split into queue messages, and no loss under injected faults.

use crate::helpers::*;
use reprocess_emulator::faults::transient_mix;
use reprocess_emulator::host_client::QueueDrain;
use reprocess_emulator::{EmulatorState, Fault};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

const SERIES: u32 = 0xbe0c;

fn big_tenant(count: usize) -> (EmulatorState, Vec<String>) {
    delivered_tenant(SERIES, count)
}

fn counts(app: &TestApp, ids: &[String]) -> Vec<u32> {
    let tenant = app.emulator.state.tenant.lock().unwrap();
    ids.iter().map(|id| tenant.reprocess_count(id)).collect()
}

#[test]
fn ids_go_to_graph_twenty_to_a_batch() {
    let (state, ids) = big_tenant(45);
    let app = spawn_app_with(state, &[]);
    let (status, _, reply) = app.post_ids(&json!({ "assignmentIds": ids }).to_string()).res();
    assert_eq!(status, 200);
    assert_eq!(reply["summary"]["accepted"], 45);
    assert_eq!(app.graph_batches().len(), 3);
    assert_eq!(app.graph_posts().len(), 45);
    assert!(counts(&app, &ids).iter().all(|&c| c == 1));
    // Results come back in the caller's order, whatever order Graph answered in.
    let order: Vec<&str> = reply["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(order, ids.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn only_throttled_sub_requests_are_sent_again() {
    let (state, ids) = big_tenant(20);
    state.faults.script(&ids[7], [Fault::throttled(1)]);
    state.faults.script(&ids[12], [Fault::status(503)]);
    let app = spawn_app_with(state, &[]);
    let (status, _, reply) = app.post_ids(&json!({ "assignmentIds": ids }).to_string()).res();
    assert_eq!(status, 200);
    assert_eq!(reply["summary"]["accepted"], 20);
    assert_eq!(app.graph_batches().len(), 2);
    assert_eq!(
        app.graph_posts().len(),
        22,
        "20 sub-requests, then only the two that failed"
    );
    assert_eq!(reply["results"][7]["attempts"], 2);
    assert_eq!(reply["results"][0]["attempts"], 1);
    assert!(counts(&app, &ids).iter().all(|&c| c == 1));
}

#[test]
fn a_throttled_or_failed_batch_is_retried_as_a_whole() {
    let (state, ids) = big_tenant(5);
    state.faults.script_batches([Fault::status(503), Fault::throttled(1)]);
    let app = spawn_app_with(state, &[]);
    let (status, _, reply) = app.post_ids(&json!({ "assignmentIds": ids }).to_string()).res();
    assert_eq!(status, 200);
    assert_eq!(reply["results"][0]["attempts"], 3);
    assert_eq!(app.graph_batches().len(), 3);
    assert!(counts(&app, &ids).iter().all(|&c| c == 1));
}

#[test]
fn batching_can_be_turned_off() {
    let (state, ids) = big_tenant(3);
    let app = spawn_app_with(state, &[("GRAPH_BATCH_SIZE", "1")]);
    assert_eq!(app.post_ids(&json!({ "assignmentIds": ids }).to_string()).res().0, 200);
    assert!(app.graph_batches().is_empty());
    assert_eq!(app.graph_posts().len(), 3);
}

#[test]
fn concurrent_invocations_share_the_back_off_and_finish_without_a_storm() {
    // Graph accepts 10 requests per second (burst 10); four invocations of 20 IDs arrive at once.
    let (state, ids) = big_tenant(80);
    let app = spawn_app_with(state.with_throttle(10.0, 10.0), &[]);
    std::thread::scope(|s| {
        for chunk in ids.chunks(20) {
            let app = &app;
            s.spawn(move || {
                let (status, _, reply) = app.post_ids(&json!({ "assignmentIds": chunk }).to_string()).res();
                assert_eq!(status, 200, "{reply}");
            });
        }
    });
    assert!(counts(&app, &ids).iter().all(|&c| c == 1));
    let throttled = app.graph_posts().iter().filter(|r| r.status == 429).count();
    // The first burst (80 at once against a bucket of 10) is throttled; after that the shared gate and
    // the learned pace keep further 429s rare instead of every invocation re-sending its whole batch.
    assert!(
        throttled <= 70 + 20,
        "{throttled} sub-requests were throttled for 80 IDs"
    );
}

#[test]
fn large_http_calls_are_split_into_batch_sized_queue_messages() {
    let (state, ids) = big_tenant(250);
    let app = spawn_app_with(state, &[]);
    let body = json!({ "assignmentIds": ids, "correlationId": "incident-42" }).to_string();
    let reply = app.post_ids(&body);
    let (status, _, answer) = reply.res();
    assert_eq!(status, 202);
    assert_eq!(answer["ids"], 250);
    assert_eq!(answer["messages"], 13);
    assert_eq!(answer["correlationId"], "incident-42");
    let messages = reply.output_messages("enqueue");
    assert_eq!(messages.len(), 13);
    let mut seen = Vec::new();
    for m in &messages {
        let chunk = m["assignmentIds"].as_array().unwrap();
        assert!(chunk.len() <= 20);
        assert_eq!(m["correlationId"], "incident-42");
        seen.extend(chunk.iter().map(|v| v.as_str().unwrap().to_owned()));
    }
    assert_eq!(seen, ids, "every ID in exactly one message, in order");
    assert!(
        app.graph_posts().is_empty(),
        "nothing is reprocessed inside the HTTP call"
    );
}

#[test]
fn when_the_budget_runs_out_only_the_remaining_ids_are_handed_back() {
    let (state, ids) = big_tenant(4);
    state.faults.script(&ids[2], [Fault::throttled(30)]);
    let app = spawn_app_with(state, &[("QUEUE_BUDGET_SECONDS", "3")]);
    let reply = app.queue_message(&json!({ "assignmentIds": ids }).to_string());
    let handed_back = reply.output_messages("enqueue");
    assert_eq!(handed_back.len(), 1);
    assert_eq!(handed_back[0]["assignmentIds"], json!([ids[2]]));
    assert_eq!(handed_back[0]["attempt"], 1);
    let c = counts(&app, &ids);
    assert_eq!(c, [1, 1, 0, 1]);
}

#[test]
fn no_id_is_lost_under_injected_faults_and_duplicates_stay_bounded() {
    let (state, ids) = big_tenant(300);
    // Graph's transient answers plus the two faults after which Graph may have acted anyway.
    let mut mix = transient_mix();
    mix.extend([Fault::ExecutedThen(504), Fault::Hang(Duration::from_millis(1500))]);
    state.faults.set_random(0.2, mix);
    let env = [
        ("GRAPH_ATTEMPT_TIMEOUT_SECONDS", "1"),
        ("GRAPH_MAX_ATTEMPTS", "2"),
        ("QUEUE_MAX_ATTEMPTS", "30"),
    ];
    let app = spawn_app_with(state.with_resets(0.1), &env);
    let messages: Vec<String> = ids
        .chunks(20)
        .map(|c| json!({ "assignmentIds": c }).to_string())
        .collect();
    // Eight invocations at once; retries run at once instead of waiting for their `notBefore`.
    let run = app.handler.drain_queue(
        messages,
        QueueDrain {
            workers: 8,
            skip_not_before: true,
        },
    );
    assert!(run.failures.is_empty(), "invocations failed for {:?}", run.failures);
    let dead = run.dead_letters;
    let dead_ids: HashSet<String> = dead
        .iter()
        .flat_map(|d| d["assignmentIds"].as_array().cloned().unwrap_or_default())
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let c = counts(&app, &ids);
    let lost: Vec<_> = ids
        .iter()
        .zip(&c)
        .filter(|(id, n)| **n == 0 && !dead_ids.contains(*id))
        .collect();
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert!(
        dead_ids.is_empty(),
        "with 30 queue attempts every ID gets through: {dead:?}"
    );
    // Work happens twice only when Graph acted and the answer was lost: an `ExecutedThen` fault (one
    // duplicate each) or a hung sub-request that made its whole batch time out (at most the other 19).
    let duplicates: usize = c.iter().map(|n| n.saturating_sub(1) as usize).sum();
    let (executed_then, hangs) = app.emulator.state.faults.injected_duplicate_risks();
    assert!(
        duplicates <= executed_then + 19 * hangs,
        "{duplicates} duplicates, {executed_then} + 19 x {hangs}"
    );
    assert!(
        app.emulator.state.resets() > 0,
        "connection resets were injected and survived"
    );
}
