//! `cargo bench --bench drift`: drift detection for one access package with 10,000 delivered assignments
//! whose group has 10,000 members (1 % removed by hand), against the emulated Graph with 50 ms latency
//! and a token bucket of 100 requests/s (burst 100) that throttles reads and writes alike. Starts the
//! release binary as the host does (`DRIFT_DETECTION_ENABLED=true`) and measures, at the emulator's
//! page sizes of 100 and 999:
//!
//! - `dry run` (HTTP, detection only): Graph calls, 429s, wall time;
//! - `queue` (the drift message: detection, then reprocessing the drifted in `$batch`es of 20): the same,
//!   and that every removed member is back.
//!
//! The bound for a run is the larger of the throttle bound ((calls − burst) / rate) and the latency
//! bound of the longest chain of pages (each page needs the previous page's nextLink: pages × 50 ms).
//! `BENCH_DRIFT_USERS=n` changes the size. Prints a Markdown table; asserts only that the work was done.

use reprocess_emulator::directory::RoleScope;
use reprocess_emulator::functions::{FUNCTION_REPROCESS as HTTP_FUNCTION, FUNCTION_REPROCESS_QUEUE as QUEUE_FUNCTION};
use reprocess_emulator::host::{HttpCall, QueueMessageMeta, http_envelope, queue_envelope};
use reprocess_emulator::host_client::{HandlerProcess, Readiness, handler_binary};
use reprocess_emulator::tenant::generated_id;
use reprocess_emulator::{Emulator, EmulatorState, Tenant, sample};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const LATENCY: Duration = Duration::from_millis(50);
const RATE: f64 = 100.0;
const BURST: f64 = 100.0;

struct Run {
    label: String,
    calls: usize,
    gets: usize,
    batches: usize,
    sub_requests: usize,
    throttled: usize,
    wall: Duration,
    chain_pages: usize,
    drifted: usize,
    restored: Option<usize>,
}

impl Run {
    fn bound(&self) -> Duration {
        let throttle = ((self.calls + self.sub_requests) as f64 - BURST).max(0.0) / RATE;
        let latency = self.chain_pages as f64 * LATENCY.as_secs_f64();
        Duration::from_secs_f64(throttle.max(latency))
    }
}

fn tenant(users: usize, group: &str) -> Tenant {
    let mut t = Tenant::default();
    t.directory
        .add_package_role(sample::PACKAGE_SALES, RoleScope::group_member(group, "All staff"));
    for i in 0..users {
        let user = generated_id(0x91, i);
        t.add_assignment(&generated_id(0x92, i), "delivered", sample::PACKAGE_SALES, &user);
        t.directory.grant(sample::PACKAGE_SALES, &user);
        if i % 100 == 99 {
            t.directory.remove_member(group, &user);
        }
    }
    t
}

fn measure(users: usize, page_size: usize, queue: bool) -> Run {
    let group = generated_id(0x93, 1);
    let state = EmulatorState::new(tenant(users, &group))
        .with_latency(LATENCY)
        .with_throttle(RATE, BURST);
    state.set_page_size(page_size);
    let emulator = Emulator::start(state).expect("emulator");
    let binary = handler_binary(env!("CARGO_BIN_EXE_reprocess-handler"));
    let env = [
        ("RUST_LOG", "warn"),
        ("DRIFT_DETECTION_ENABLED", "true"),
        ("HTTP_BUDGET_SECONDS", "220"),
    ];
    let handler = HandlerProcess::start(&binary, &emulator, Readiness::Probe, &env).unwrap_or_else(|e| panic!("{e:#}"));
    let body = json!({ "detectDriftFor": { "accessPackageIds": [sample::PACKAGE_SALES] } }).to_string();
    let started = Instant::now();
    let drifted = if queue {
        let envelope = queue_envelope(QUEUE_FUNCTION, "message", &body, &QueueMessageMeta::now(1));
        let reply = handler
            .invoke(QUEUE_FUNCTION, envelope.as_bytes())
            .expect("queue invocation");
        let log = reply.json["Logs"][0].as_str().unwrap_or("").to_owned();
        println!("  queue log: {log}");
        log.split(", ")
            .find_map(|p| p.strip_suffix(" drifted")?.parse().ok())
            .unwrap_or(0)
    } else {
        let mut call = HttpCall::post_json("reprocess", &body);
        call.query = vec![("dryRun".into(), "true".into())];
        call.url = format!("{}?dryRun=true", call.url);
        let reply = handler
            .invoke(HTTP_FUNCTION, http_envelope(HTTP_FUNCTION, "req", &call).as_bytes())
            .expect("http");
        let res: Value =
            serde_json::from_str(reply.json["Outputs"]["res"]["body"].as_str().unwrap_or("{}")).unwrap_or_default();
        assert_eq!(reply.json["Outputs"]["res"]["statusCode"], "200", "{res}");
        res["driftSummary"]["drifted"].as_u64().unwrap_or(0) as usize
    };
    let wall = started.elapsed();
    let log = emulator.state.graph_requests();
    let gets = log.iter().filter(|r| r.method == "GET").count();
    let batches = log.iter().filter(|r| r.path_and_query.ends_with("/$batch")).count();
    let sub_requests = log
        .iter()
        .filter(|r| r.method == "POST" && r.path_and_query.ends_with("/reprocess"))
        .count();
    let throttled = log.iter().filter(|r| r.status == 429).count();
    let restored = queue.then(|| {
        let t = emulator.state.tenant.lock().expect("tenant");
        t.directory.groups[&group].members.len()
    });
    let pages = users.div_ceil(page_size);
    Run {
        label: format!(
            "{} (pages of {page_size})",
            if queue {
                "queue: detect + reprocess"
            } else {
                "dry run: detect"
            }
        ),
        calls: gets + batches,
        gets,
        batches,
        sub_requests,
        throttled,
        wall,
        chain_pages: pages,
        drifted,
        restored,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let users: usize = std::env::var("BENCH_DRIFT_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    println!("drift: {users} delivered assignments, a group of {users} members with 1 % removed by hand");
    let mut runs = Vec::new();
    for page_size in [100, 999] {
        for queue in [false, true] {
            let run = measure(users, page_size, queue);
            println!(
                "  {}: {} Graph calls ({} GET, {} $batch with {} reprocess), {} × 429, wall {:.2} s, bound {:.2} s",
                run.label,
                run.calls,
                run.gets,
                run.batches,
                run.sub_requests,
                run.throttled,
                run.wall.as_secs_f64(),
                run.bound().as_secs_f64()
            );
            runs.push(run);
        }
    }
    println!(
        "\n| run | drifted found | Graph calls (GET / $batch) | reprocess sub-requests | 429s | wall | bound | wall / bound | members after |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in &runs {
        println!(
            "| {} | {} | {} ({} / {}) | {} | {} | {:.2} s | {:.2} s | {:.2} | {} |",
            r.label,
            r.drifted,
            r.calls,
            r.gets,
            r.batches,
            r.sub_requests,
            r.throttled,
            r.wall.as_secs_f64(),
            r.bound().as_secs_f64(),
            r.wall.as_secs_f64() / r.bound().as_secs_f64(),
            r.restored.map_or("–".into(), |m| format!("{m} of {users}"))
        );
    }
}
