//! `cargo bench --bench throughput`: starts the release binary the way the Functions host does and drives
//! it with queue envelopes against the emulated Graph (50 ms latency, token bucket 100 requests/s with
//! burst 100, 429 + Retry-After past it). Reports ratios, writes `BENCHMARKS.md`, asserts nothing.
//!
//! Runs: readiness (exec → first answer on `GET /`, 20 starts), idle RSS, then 10,000 assignment IDs
//! through the queue path without faults and with 20 % injected faults.

use reprocess_handler::emulator::faults::transient_mix;
use reprocess_handler::emulator::host_client::{HandlerProcess, QueueDrain, Readiness, handler_binary};
use reprocess_handler::emulator::tenant::generated_id;
use reprocess_handler::emulator::{Emulator, EmulatorState, Fault, Tenant, sample};
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, Instant};

const IDS: usize = 10_000;
const RATE: f64 = 100.0;
const BURST: f64 = 100.0;
const LATENCY: Duration = Duration::from_millis(50);
/// The host runs up to batchSize + newBatchThreshold = 16 + 8 queue invocations at once (host.json).
const HOST_CONCURRENCY: usize = 24;
const SERIES: u32 = 0xbe7c;

/// Starts the handler as the host does, on a port it picks, ready at the first answer on `GET /`;
/// `started_in` is the start-up time. Logs at `warn` so logging does not weigh on the numbers.
fn spawn(emulator: &Emulator, extra: &[(&str, &str)]) -> HandlerProcess {
    let mut env = vec![("RUST_LOG", "warn")];
    env.extend_from_slice(extra);
    let binary = handler_binary(env!("CARGO_BIN_EXE_reprocess-handler"));
    HandlerProcess::start(&binary, emulator, Readiness::Probe, &env).unwrap_or_else(|e| panic!("{e:#}"))
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct RunResult {
    wall: Duration,
    attempts: usize,
    throttled: usize,
    token_fetches: usize,
    lost: usize,
    dead_lettered: usize,
    duplicates: usize,
    invocations: usize,
    peak_rss_kib: u64,
    resets: usize,
}

/// Plays the Storage queue and the host: messages of 20 IDs, up to 24 invocations at once, `enqueue`
/// outputs go back on the queue at once (the handler itself waits for their `notBefore`).
fn run(faults: bool) -> RunResult {
    let mut tenant = Tenant::default();
    tenant.add_generated_delivered(SERIES, IDS, sample::PACKAGE_SALES, sample::USER_ADELE);
    let mut state = EmulatorState::new(tenant)
        .with_latency(LATENCY)
        .with_throttle(RATE, BURST);
    if faults {
        // 20 % in all: 12 % of sub-requests get 429/503/504, 4 % of HTTP requests hang, 4 % are reset.
        state.faults.set_random(0.12, transient_mix());
        state
            .faults
            .set_random_batches(0.04, vec![Fault::Hang(Duration::from_secs(60))]);
        state = state.with_resets(0.04);
    }
    let emulator = Emulator::start(state).unwrap();
    let handler = spawn(&emulator, &[("GRAPH_ATTEMPT_TIMEOUT_SECONDS", "5")]);
    let ids: Vec<String> = (0..IDS).map(|i| generated_id(SERIES, i)).collect();
    let messages: Vec<String> = ids
        .chunks(20)
        .map(|c| json!({ "assignmentIds": c }).to_string())
        .collect();
    let started = Instant::now();
    let queue = handler.drain_queue(
        messages,
        QueueDrain {
            workers: HOST_CONCURRENCY,
            skip_not_before: false,
        },
    );
    let wall = started.elapsed();
    assert!(queue.failures.is_empty(), "invocations failed: {:?}", queue.failures);
    let peak_rss_kib = rss_kib(handler.pid(), "VmHWM:");
    let log = emulator.state.graph_requests();
    let calls: Vec<_> = log
        .iter()
        .filter(|r| r.path_and_query.ends_with("/reprocess"))
        .collect();
    let dead_ids: HashSet<String> = queue
        .dead_letters
        .iter()
        .flat_map(|d| d["assignmentIds"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    // Where the 429s fell, in 10-second buckets, for tuning the pacing.
    let mut histogram = [0usize; 40];
    for r in calls.iter().filter(|r| r.status == 429) {
        histogram[(r.at.saturating_duration_since(started).as_secs() / 10).min(39) as usize] += 1;
    }
    println!(
        "429s per 10 s: {:?}",
        &histogram[..(wall.as_secs() / 10 + 1).min(40) as usize]
    );
    let tenant = emulator.state.tenant.lock().unwrap();
    let counts: Vec<u32> = ids.iter().map(|id| tenant.reprocess_count(id)).collect();
    RunResult {
        wall,
        attempts: calls.len(),
        throttled: calls.iter().filter(|r| r.status == 429).count(),
        token_fetches: emulator.state.token_fetches(),
        lost: ids
            .iter()
            .zip(&counts)
            .filter(|(id, c)| **c == 0 && !dead_ids.contains(*id))
            .count(),
        dead_lettered: dead_ids.len(),
        duplicates: counts.iter().map(|c| c.saturating_sub(1) as usize).sum(),
        invocations: queue.invocations,
        peak_rss_kib,
        resets: emulator.state.resets(),
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    format!(
        "{cores} cores ({cpu}), {:.0} GiB RAM, {}",
        mem_kib as f64 / 1_048_576.0,
        std::env::consts::OS
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and test discovery: nothing to list.
    }
    let idle_emulator = Emulator::start(EmulatorState::new(Tenant::default())).unwrap();
    let mut ready: Vec<Duration> = (0..20).map(|_| spawn(&idle_emulator, &[]).started_in).collect();
    ready.sort();
    let handler = spawn(&idle_emulator, &[]);
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss = rss_kib(handler.pid(), "VmRSS:");
    drop(handler);
    println!(
        "ready: median {:?}, max {:?}; idle RSS {} KiB",
        ready[10], ready[19], idle_rss
    );

    let bound = Duration::from_secs_f64((IDS as f64 - BURST) / RATE);
    let clean = run(false);
    if std::env::var_os("BENCH_CLEAN_ONLY").is_some() {
        println!(
            "no faults: {:?}, {} attempts, {} x429",
            clean.wall, clean.attempts, clean.throttled
        );
        return;
    }
    println!(
        "no faults: {:?} (bound {:?}), {} attempts, {} x429",
        clean.wall, bound, clean.attempts, clean.throttled
    );
    let faulty = run(true);
    println!(
        "faults: {:?}, lost {}, duplicates {}, dead-lettered {}",
        faulty.wall, faulty.lost, faulty.duplicates, faulty.dead_lettered
    );

    let ratio = clean.wall.as_secs_f64() / bound.as_secs_f64();
    let per_id = |r: &RunResult| r.attempts as f64 / IDS as f64;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let ok = |pass: bool| if pass { "met" } else { "**missed**" };
    let report = format!(
        "# Benchmarks\n\n\
Command: `cargo bench --bench throughput` (about 5 minutes; writes this file). Measured {date} on {machine}.\n\n\
Set-up: the release binary is started as the Functions host starts it (environment, loopback port, readiness \
poll on `GET /`) and driven with queue envelopes as the host sends them: 10,000 delivered assignment IDs in \
messages of 20, up to {conc} invocations at once (host.json `batchSize` 16 + `newBatchThreshold` 8), \
`enqueue` outputs put back on the queue at once. The emulated Graph answers after {lat} ms and throttles with a \
token bucket of {rate} requests/s, burst {burst} (each `$batch` sub-request takes a token; past it, 429 with \
`Retry-After`). `GRAPH_ATTEMPT_TIMEOUT_SECONDS=5`, other settings default.\n\n\
## Without faults\n\n\
| measure | value | target |\n|---|---|---|\n\
| wall time | {w:.1} s | |\n\
| throttle-imposed lower bound ((10,000 − burst) / rate) | {b:.1} s | |\n\
| wall time / bound | **{ratio:.3}** | ≤ 1.15 ({r1}) |\n\
| Graph attempts per ID (sub-requests incl. 429s / IDs) | **{apid:.3}** | ≤ 1.05 ({r2}) |\n\
| 429 answers received | {t429} | |\n\
| token fetches | {tok} | |\n\
| queue invocations | {inv} | |\n\
| IDs lost / dead-lettered / reprocessed twice | {lost} / {dl} / {dup} | 0 lost |\n\
| peak RSS (VmHWM) | {peak:.1} MiB | ≤ 60 MB ({r5}) |\n\n\
## With 20 % injected faults\n\n\
12 % of sub-requests answer 429 (`Retry-After: 1`), 503 or 504; 4 % of `$batch` requests hang (60 s, the \
client gives up after 5 s); 4 % of HTTP requests are reset at the TCP level (RST, {resets} resets seen).\n\n\
| measure | value | target |\n|---|---|---|\n\
| wall time | {fw:.1} s ({fratio:.2} × bound) | |\n\
| IDs lost | **{flost}** | 0 ({r6}) |\n\
| IDs dead-lettered | {fdl} | |\n\
| IDs reprocessed more than once (duplicates) | {fdup} | |\n\
| Graph attempts per ID | {fapid:.3} | |\n\
| 429 answers received | {f429} | |\n\
| token fetches | {ftok} | |\n\
| queue invocations | {finv} | |\n\
| peak RSS (VmHWM) | {fpeak:.1} MiB | ≤ 60 MB |\n\n\
Duplicates come from hung or reset `$batch` requests: Graph may have acted on some sub-requests before the \
answer was lost, and the retry sends them again (reprocessing a Delivered assignment twice is harmless).\n\n\
## Start-up and memory\n\n\
| measure | value | target |\n|---|---|---|\n\
| exec → first answer on `GET /` (median of 20 starts) | **{rmed:.1} ms** (max {rmax:.1} ms) | ≤ 10 ms ({r3}) |\n\
| idle RSS (1 s after ready) | **{idle:.1} MiB** | ≤ 15 MB ({r4}) |\n",
        date = time::OffsetDateTime::now_utc().date(),
        machine = machine(),
        conc = HOST_CONCURRENCY,
        lat = LATENCY.as_millis(),
        rate = RATE,
        burst = BURST,
        w = clean.wall.as_secs_f64(),
        b = bound.as_secs_f64(),
        r1 = ok(ratio <= 1.15),
        apid = per_id(&clean),
        r2 = ok(per_id(&clean) <= 1.05),
        t429 = clean.throttled,
        tok = clean.token_fetches,
        inv = clean.invocations,
        lost = clean.lost,
        dl = clean.dead_lettered,
        dup = clean.duplicates,
        peak = mib(clean.peak_rss_kib),
        r5 = ok(clean.peak_rss_kib as f64 * 1024.0 <= 60e6 && faulty.peak_rss_kib as f64 * 1024.0 <= 60e6),
        resets = faulty.resets,
        fw = faulty.wall.as_secs_f64(),
        fratio = faulty.wall.as_secs_f64() / bound.as_secs_f64(),
        flost = faulty.lost,
        r6 = ok(faulty.lost == 0),
        fdl = faulty.dead_lettered,
        fdup = faulty.duplicates,
        fapid = per_id(&faulty),
        f429 = faulty.throttled,
        ftok = faulty.token_fetches,
        finv = faulty.invocations,
        fpeak = mib(faulty.peak_rss_kib),
        rmed = ready[10].as_secs_f64() * 1000.0,
        rmax = ready[19].as_secs_f64() * 1000.0,
        r3 = ok(ready[10] <= Duration::from_millis(10)),
        idle = mib(idle_rss),
        r4 = ok(idle_rss as f64 * 1024.0 <= 15e6),
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");
    std::fs::write(path, &report).unwrap();
    println!("\n{report}\nwritten to {path}");
}
