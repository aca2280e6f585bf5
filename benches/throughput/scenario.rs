//! The throughput scenarios: assignment IDs through the queue path against one emulated Graph (one token
//! bucket), by one or more handler processes, with or without injected faults.

use reprocess_emulator::faults::transient_mix;
use reprocess_emulator::host_client::{HandlerProcess, QueueDrain, Readiness, drain_shared_queue, handler_binary};
use reprocess_emulator::series::{self, Tally};
use reprocess_emulator::tenant::generated_id;
use reprocess_emulator::{Emulator, EmulatorState, Fault, Tenant, sample};
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, Instant};

pub const RATE: f64 = 100.0;
pub const BURST: f64 = 100.0;
pub const LATENCY: Duration = Duration::from_millis(50);
/// The host runs up to batchSize + newBatchThreshold = 16 + 8 queue invocations at once (host.json).
pub const HOST_CONCURRENCY: usize = 24;
/// IDs per queue message.
pub const MESSAGE_IDS: usize = 20;
const SERIES: u32 = 0xbe7c;

/// One scenario and its targets.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Its name in `BENCH_SCENARIOS` and in `docs/bench/<name>.svg`.
    pub name: &'static str,
    pub title: &'static str,
    /// Handler processes, each behind its own emulated host, draining one queue.
    pub instances: usize,
    /// The fault mix: 12 % of sub-requests 429/503/504 (3 % each, and 3 % a 504 after Graph did the
    /// work), 4 % of batches hang, 4 % of requests reset.
    pub faults: bool,
    /// Wall time ≤ this × the fault-free bound.
    pub max_ratio: f64,
    pub max_attempts_per_id: Option<f64>,
    /// Dead-lettered IDs ≤ this.
    pub max_dead_lettered: Option<usize>,
    /// Duplicates ≤ this share of the IDs.
    pub max_duplicate_share: Option<f64>,
}

pub const SCENARIOS: [Scenario; 3] = [
    Scenario {
        name: "clean",
        title: "One instance, no faults",
        instances: 1,
        faults: false,
        max_ratio: 1.03,
        max_attempts_per_id: Some(1.02),
        max_dead_lettered: None,
        max_duplicate_share: None,
    },
    Scenario {
        name: "faults",
        title: "One instance, 20 % injected faults",
        instances: 1,
        faults: true,
        max_ratio: 1.3,
        max_attempts_per_id: None,
        max_dead_lettered: Some(0),
        max_duplicate_share: Some(0.05),
    },
    Scenario {
        name: "multi",
        title: "Four instances, one queue, one Graph budget, no faults",
        instances: 4,
        faults: false,
        max_ratio: 1.1,
        max_attempts_per_id: Some(1.05),
        max_dead_lettered: None,
        max_duplicate_share: None,
    },
];

/// What one scenario run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Each handler's stdout, with `BENCH_LOG` set.
    pub logs: Vec<String>,
    pub scenario: Scenario,
    pub ids: usize,
    pub wall: Duration,
    /// Reprocess sub-requests that reached Graph, 429s included.
    pub attempts: usize,
    pub throttled: usize,
    pub token_fetches: usize,
    pub lost: usize,
    pub dead_lettered: usize,
    pub duplicates: usize,
    pub invocations: usize,
    pub invocations_per_instance: Vec<usize>,
    /// The largest VmHWM among the instances.
    pub peak_rss_kib: u64,
    pub resets: usize,
    pub hung_batches: usize,
    /// Answers lost after Graph did the work (`ExecutedThen`): each may be reprocessed twice.
    pub lost_answers: usize,
    /// The earliest the last ID could have been done given Graph's `Retry-After`s: the latest time an
    /// answer said "not before", since the drain started, plus one answer's latency.
    pub retry_after_floor: Duration,
    /// Reprocess calls per second since the drain started, all instances.
    pub series: Vec<Tally>,
    /// The same per instance (told apart by the token each fetched), in token order.
    pub per_instance: Vec<Vec<Tally>>,
}

impl Outcome {
    /// The throttle-imposed lower bound: (IDs − burst) / rate.
    pub fn bound(&self) -> Duration {
        bound(self.ids)
    }

    pub fn ratio(&self) -> f64 {
        self.wall.as_secs_f64() / self.bound().as_secs_f64()
    }

    pub fn attempts_per_id(&self) -> f64 {
        self.attempts as f64 / self.ids as f64
    }

    pub fn summary(&self) -> String {
        format!(
            "{}: wall {:.1} s = {:.3} × bound {:.1} s (last Retry-After lets go at {:.1} s), {:.3} attempts/ID, {} × 429, lost/dead/dup {}/{}/{} ({} answers lost after the work)",
            self.scenario.name,
            self.wall.as_secs_f64(),
            self.ratio(),
            self.bound().as_secs_f64(),
            self.retry_after_floor.as_secs_f64(),
            self.attempts_per_id(),
            self.throttled,
            self.lost,
            self.dead_lettered,
            self.duplicates,
            self.lost_answers,
        )
    }
}

pub fn bound(ids: usize) -> Duration {
    Duration::from_secs_f64((ids as f64 - BURST).max(0.0) / RATE)
}

/// Starts the handler as the host does, on a port it picks, ready at the first answer on `GET /`;
/// `started_in` is the start-up time. Logs at `warn` so logging does not weigh on the numbers.
pub fn spawn(emulator: &Emulator, extra: &[(&str, &str)]) -> HandlerProcess {
    let mut env = vec![("RUST_LOG", "warn")];
    env.extend_from_slice(extra);
    let binary = handler_binary(env!("CARGO_BIN_EXE_reprocess-handler"));
    HandlerProcess::start(&binary, emulator, Readiness::Probe, &env).unwrap_or_else(|e| panic!("{e:#}"))
}

pub fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Plays the Storage queue and the host(s): messages of 20 IDs, up to 24 invocations at once per
/// instance, `enqueue` outputs go back on the one queue at once (the handler itself waits for their
/// `notBefore`).
pub fn run(scenario: Scenario, ids: usize) -> Outcome {
    run_with(scenario, ids, |state| {
        if scenario.faults { benchmark_mix(state) } else { state }
    })
}

/// The `faults` scenario's mix.
fn benchmark_mix(state: EmulatorState) -> EmulatorState {
    // 20 % in all: 12 % of sub-requests get 429/503/504, 4 % of `$batch` requests hang, 4 % are reset.
    // A quarter of the sub-request faults are 504s after Graph did the work (its answer lost on the
    // way back): the only faults whose retry reprocesses an ID twice.
    let mut mix = transient_mix();
    mix.push(Fault::ExecutedThen(504));
    state.faults.set_random(0.12, mix);
    state
        .faults
        .set_random_batches(0.04, vec![Fault::Hang(Duration::from_secs(60))]);
    state.with_resets(0.04)
}

/// [`run`] with the emulated Graph's faults set by `faults` (the sweep's mixes).
pub fn run_with(scenario: Scenario, ids: usize, faults: impl FnOnce(EmulatorState) -> EmulatorState) -> Outcome {
    let mut tenant = Tenant::default();
    tenant.add_generated_delivered(SERIES, ids, sample::PACKAGE_SALES, sample::USER_ADELE);
    let state = faults(
        EmulatorState::new(tenant)
            .with_latency(LATENCY)
            .with_throttle(RATE, BURST),
    );
    let emulator = Emulator::start(state).expect("emulator");
    // `BENCH_LOG=<filter>` (e.g. `reprocess_handler::graph::limiter=debug`): the handlers log at that level
    // and their logs are written beside the charts, to see where a run lost time.
    let log_filter = std::env::var("BENCH_LOG").ok();
    let mut env = vec![("GRAPH_ATTEMPT_TIMEOUT_SECONDS", "5")];
    if let Some(filter) = &log_filter {
        env.push(("RUST_LOG", filter.as_str()));
    }
    let handlers: Vec<HandlerProcess> = (0..scenario.instances).map(|_| spawn(&emulator, &env)).collect();
    let assignment_ids: Vec<String> = (0..ids).map(|i| generated_id(SERIES, i)).collect();
    let messages: Vec<String> = assignment_ids
        .chunks(MESSAGE_IDS)
        .map(|c| json!({ "assignmentIds": c }).to_string())
        .collect();
    let started = Instant::now();
    let queue = drain_shared_queue(
        &handlers.iter().collect::<Vec<_>>(),
        messages,
        QueueDrain {
            workers: HOST_CONCURRENCY,
            skip_not_before: false,
        },
    );
    let wall = started.elapsed();
    assert!(queue.failures.is_empty(), "invocations failed: {:?}", queue.failures);
    let peak_rss_kib = handlers.iter().map(|h| rss_kib(h.pid(), "VmHWM:")).max().unwrap_or(0);
    let log = emulator.state.graph_requests();
    let calls: Vec<_> = log.iter().filter(|r| r.is_reprocess()).collect();
    let dead_ids: HashSet<String> = queue
        .dead_letters
        .iter()
        .flat_map(|d| d["assignmentIds"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let seconds = wall.as_secs_f64().ceil() as usize;
    let counts: Vec<u32> = {
        let tenant = emulator.state.tenant.lock().expect("tenant lock");
        assignment_ids.iter().map(|id| tenant.reprocess_count(id)).collect()
    };
    let logs = match log_filter {
        Some(_) => handlers.iter().map(HandlerProcess::stdout).collect(),
        None => Vec::new(),
    };
    Outcome {
        scenario,
        ids,
        wall,
        logs,
        attempts: calls.len(),
        throttled: calls.iter().filter(|r| r.status == 429).count(),
        token_fetches: emulator.state.token_fetches(),
        lost: assignment_ids
            .iter()
            .zip(&counts)
            .filter(|(id, c)| **c == 0 && !dead_ids.contains(*id))
            .count(),
        dead_lettered: dead_ids.len(),
        duplicates: counts.iter().map(|c| c.saturating_sub(1) as usize).sum(),
        invocations: queue.invocations,
        invocations_per_instance: queue.invocations_per_handler,
        peak_rss_kib,
        resets: emulator.state.resets(),
        hung_batches: emulator.state.faults.injected_duplicate_risks().1,
        lost_answers: emulator.state.faults.injected_duplicate_risks().0,
        retry_after_floor: log
            .iter()
            .filter(|r| r.at >= started)
            .filter_map(|r| Some(r.at - started + Duration::from_secs(r.retry_after?) + LATENCY))
            .max()
            .unwrap_or_default(),
        series: series::per_second(&log, started, seconds),
        per_instance: if scenario.instances > 1 {
            series::per_second_by_token(&log, started, seconds)
                .into_values()
                .collect()
        } else {
            Vec::new()
        },
    }
}
