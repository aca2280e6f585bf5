//! `cargo bench --bench throughput`: starts the release binary the way the Functions host does and drives
//! it with queue envelopes against the emulated Graph (50 ms latency, token bucket 100 requests/s with
//! burst 100, 429 + `Retry-After` past it). Reports each measure beside its target and draws
//! one chart per scenario; asserts nothing.
//!
//! Runs: readiness (exec → first answer on `GET /`, 20 starts) and idle RSS, then the scenarios, each with
//! 10,000 assignment IDs through the queue path: `clean` (one instance, no faults), `faults` (one
//! instance, 20 % injected faults) and `multi` (four instances draining one queue against one Graph
//! budget).
//!
//! - `BENCH_SCENARIOS=clean,multi` runs only those scenarios (default: all).
//! - `BENCH_IDS=2000` sets the number of IDs (default 10,000).
//! - `BENCH_SECONDS=1` prints the accepted and throttled series per second instead of per 10 s.
//! - `BENCH_LOG=<filter>` runs the handlers with `RUST_LOG=<filter>` and writes their logs beside the
//!   charts (`reprocess_handler::graph::limiter=debug` shows the pace once a second).
//!
//! Only a full run (all scenarios, 10,000 IDs) writes `BENCHMARKS.md` and `docs/bench/<scenario>.svg`;
//! other runs print the same report and put their charts under the target directory.

mod chart;
mod report;
mod scenario;
mod startup;

use reprocess_emulator::series::{Tally, coarsen};
use scenario::{Outcome, SCENARIOS, Scenario};
use std::path::{Path, PathBuf};

const IDS: usize = 10_000;
const REPO: &str = env!("CARGO_MANIFEST_DIR");

struct Settings {
    ids: usize,
    scenarios: Vec<Scenario>,
}

impl Settings {
    fn from_env() -> Self {
        let ids = std::env::var("BENCH_IDS").map_or(IDS, |v| {
            v.trim()
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .unwrap_or_else(|| panic!("BENCH_IDS={v:?}: expected a positive number"))
        });
        let scenarios = match std::env::var("BENCH_SCENARIOS") {
            Err(_) => SCENARIOS.to_vec(),
            Ok(names) => {
                let wanted: Vec<&str> = names.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
                for name in &wanted {
                    assert!(
                        SCENARIOS.iter().any(|s| s.name == *name),
                        "BENCH_SCENARIOS: unknown scenario {name:?}; known: {}",
                        SCENARIOS.map(|s| s.name).join(",")
                    );
                }
                // In the usual order, each once.
                SCENARIOS.into_iter().filter(|s| wanted.contains(&s.name)).collect()
            }
        };
        Self { ids, scenarios }
    }

    /// All scenarios at 10,000 IDs: the run whose results are committed.
    fn full(&self) -> bool {
        self.ids == IDS && self.scenarios.len() == SCENARIOS.len()
    }

    /// Where the charts go: the repository's `docs/bench` for a full run, else `<target>/bench`.
    fn chart_dir(&self) -> PathBuf {
        if self.full() {
            return Path::new(REPO).join("docs/bench");
        }
        // The bench runs as <target>/release/deps/throughput-<hash>.
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.ancestors().nth(3).map(|target| target.join("bench")))
            .unwrap_or_else(|| std::env::temp_dir().join("reprocess-handler-bench"))
    }
}

/// Where the sections of the other benches begin in `BENCHMARKS.md`; a full run keeps them as they are.
const OTHER_BENCHES: &str = "## Drift detection";

fn print_series(label: &str, series: &[Tally]) {
    // `BENCH_SECONDS=1` prints every second, to see where pacing loses time.
    let width = if std::env::var_os("BENCH_SECONDS").is_some() {
        1
    } else {
        10
    };
    let coarse = coarsen(series, width);
    let accepted: Vec<String> = coarse.iter().map(|t| t.accepted.to_string()).collect();
    let throttled: Vec<String> = coarse.iter().map(|t| t.throttled.to_string()).collect();
    println!("  {label} accepted per {width} s: {}", accepted.join(" "));
    println!("  {label} 429s     per {width} s: {}", throttled.join(" "));
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and test discovery: nothing to list.
    }
    let settings = Settings::from_env();
    // Which commit is measured, read before the charts written below make the tree look changed.
    let _ = startup::commit();
    let chart_dir = settings.chart_dir();
    std::fs::create_dir_all(&chart_dir).unwrap_or_else(|e| panic!("creating {}: {e}", chart_dir.display()));

    let startup = startup::measure();
    println!(
        "start-up: median {:?}, max {:?}; idle RSS {} KiB",
        startup.median(),
        startup.max(),
        startup.idle_rss_kib
    );

    let mut outcomes: Vec<Outcome> = Vec::new();
    for scenario in &settings.scenarios {
        println!(
            "{}: {} IDs, {} instance(s), bound {:.1} s …",
            scenario.name,
            settings.ids,
            scenario.instances,
            scenario::bound(settings.ids).as_secs_f64()
        );
        let outcome = scenario::run(*scenario, settings.ids);
        println!("{}", outcome.summary());
        print_series("all:", &outcome.series);
        for (index, series) in outcome.per_instance.iter().enumerate() {
            print_series(&format!("instance {}:", index + 1), series);
        }
        for (index, log) in outcome.logs.iter().enumerate() {
            let path = chart_dir.join(format!("{}-{}.log", scenario.name, index + 1));
            std::fs::write(&path, log).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            println!("  handler log: {}", path.display());
        }
        let path = chart_dir.join(format!("{}.svg", scenario.name));
        match chart::draw(&outcome, &path) {
            Ok(()) => println!("  chart: {}", path.display()),
            Err(e) => println!("  chart {} failed: {e}", path.display()),
        }
        outcomes.push(outcome);
    }

    let charts_as = if settings.full() {
        "docs/bench".to_owned()
    } else {
        chart_dir.display().to_string()
    };
    let report = report::render(settings.ids, &outcomes, &startup, &charts_as, &startup::machine());
    println!("\n{report}");
    if settings.full() {
        let path = Path::new(REPO).join("BENCHMARKS.md");
        // Other benches own the sections from theirs on (`cargo bench --bench drift`): keep them.
        let kept = std::fs::read_to_string(&path)
            .ok()
            .and_then(|old| old.find(OTHER_BENCHES).map(|at| old[at..].to_owned()))
            .unwrap_or_default();
        let report = if kept.is_empty() {
            report
        } else {
            format!("{}\n\n{kept}", report.trim_end())
        };
        std::fs::write(&path, &report).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        println!("written to {} and {}", path.display(), chart_dir.display());
    } else {
        println!(
            "quick run ({} IDs, {} scenario(s)): BENCHMARKS.md left as it is",
            settings.ids,
            outcomes.len()
        );
    }
}
