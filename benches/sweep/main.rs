//! `cargo bench --bench sweep`: the throughput measure over a sweep of Graph's fault mixes, since a
//! target met at one mix says little about another. Each point drains 3,000 assignment IDs (1,000 for
//! the small job) through the queue path of one release handler against the emulated Graph of the
//! throughput bench (50 ms, token bucket 100/s with burst 100, Graph's throttling headers on), with
//! `noise` of the requests faulted:
//! - sub-request faults, in equal parts: 429 without a reason, 429 `CPULimitExceeded` (a loaded
//!   service), 503 with `Retry-After`, 503 without, 504, and 504 after Graph did the work (an answer
//!   lost on the way back: the only fault that can reprocess an ID twice);
//! - whole-request faults (none, a quarter or half of the noise): 429 and 503 with `Retry-After`, 504,
//!   and with `hangs`, hung batches plus TCP resets (a tenth of the noise);
//! - `Retry-After` of 1 s, or drawn from 1–5 s.
//!
//! `BENCH_SWEEP_POINTS="0 %;5 %, sub"` runs only the points whose names start so;
//! `BENCH_SWEEP_SERIES=1` prints each point's answers per second (and its log, with `BENCH_LOG`).
//! Prints a table and, with `BENCH_SWEEP_WRITE=1`, writes it with a chart (`docs/bench/sweep.svg`) into
//! `BENCHMARKS.md` as its last section. Asserts nothing. The deterministic simulation of the pacing
//! (`src/graph/limiter/sim.rs`, `sweep_over_fault_mixes`) covers the whole grid; this runs the real
//! binary at a few of its points.

#[allow(dead_code)]
#[path = "../throughput/scenario.rs"]
mod scenario;

use plotters::prelude::*;
use reprocess_emulator::{EmulatorState, Fault};
use scenario::Scenario;
use std::path::Path;
use std::time::Duration;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const SECTION: &str = "## Sweep over fault mixes (`cargo bench --bench sweep`)";

#[derive(Debug, Clone, Copy)]
struct Point {
    name: &'static str,
    ids: usize,
    noise: f64,
    /// `Retry-After` drawn from 1–5 s, else 1 s.
    long_waits: bool,
    /// Share of the noise that fails whole requests.
    whole: f64,
    hangs: bool,
    /// Which chart line the point belongs to.
    line: Line,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    SubRequests,
    Mixed,
    Both,
    None,
}

const POINTS: [Point; 8] = [
    point("0 %", 3_000, 0.0, false, 0.0, false, Line::Both),
    point("2 %, mixed", 3_000, 0.02, true, 0.25, true, Line::Mixed),
    point(
        "5 %, sub-requests, 1 s",
        3_000,
        0.05,
        false,
        0.0,
        false,
        Line::SubRequests,
    ),
    point("5 %, mixed", 3_000, 0.05, true, 0.5, true, Line::Mixed),
    point("10 %, mixed", 3_000, 0.10, true, 0.25, true, Line::Mixed),
    point(
        "20 %, sub-requests, 1 s",
        3_000,
        0.20,
        false,
        0.0,
        false,
        Line::SubRequests,
    ),
    point("20 %, mixed", 3_000, 0.20, true, 0.5, true, Line::Mixed),
    point("5 %, mixed, small job", 1_000, 0.05, true, 0.25, true, Line::None),
];

const fn point(
    name: &'static str,
    ids: usize,
    noise: f64,
    long_waits: bool,
    whole: f64,
    hangs: bool,
    line: Line,
) -> Point {
    Point {
        name,
        ids,
        noise,
        long_waits,
        whole,
        hangs,
        line,
    }
}

impl Point {
    /// The targets: ≤ 1.02 fault-free, ≤ 1.10 up to 5 %, ≤ 1.30 at 20 % (1.20 between), and
    /// ≤ 1.25 for a small job at 5 %.
    fn target(&self) -> f64 {
        let n = self.noise;
        if n <= 0.0 {
            1.02
        } else if self.ids < 3_000 && n <= 0.05 {
            1.25
        } else if n <= 0.05 {
            1.10
        } else if n <= 0.10 {
            1.20
        } else {
            1.30
        }
    }

    fn configure(&self, state: EmulatorState) -> EmulatorState {
        if self.noise == 0.0 {
            return state;
        }
        let waits: Vec<u64> = if self.long_waits { (1..=5).collect() } else { vec![1] };
        let mut sub = Vec::new();
        for &w in &waits {
            sub.push(Fault::throttled(w));
            sub.push(Fault::Busy { retry_after: w });
            sub.push(Fault::Status {
                status: 503,
                retry_after: Some(w),
            });
            sub.push(Fault::status(503));
            sub.push(Fault::status(504));
            sub.push(Fault::ExecutedThen(504));
        }
        state.faults.set_random(self.noise * (1.0 - self.whole), sub);
        let mut whole = Vec::new();
        for &w in &waits {
            whole.push(Fault::throttled(w));
            whole.push(Fault::Status {
                status: 503,
                retry_after: Some(w),
            });
            whole.push(Fault::status(504));
            if self.hangs {
                whole.push(Fault::Hang(Duration::from_secs(60)));
            }
        }
        if self.whole > 0.0 {
            state.faults.set_random_batches(self.noise * self.whole, whole);
        }
        if self.hangs {
            state.with_resets(self.noise / 10.0)
        } else {
            state
        }
    }
}

struct Row {
    point: Point,
    outcome: scenario::Outcome,
}

impl Row {
    /// Duplicates allowed: the answers lost after the work, plus 1 % of the IDs.
    fn allowed_duplicates(&self) -> usize {
        self.outcome.lost_answers + self.point.ids / 100
    }

    /// The least wall / bound the point allows any pacing: faulted sub-requests take Graph's budget
    /// (it counts them against the limit) and must be sent again.
    fn budget_floor(&self) -> f64 {
        1.0 / (1.0 - self.point.noise * (1.0 - self.point.whole))
    }

    /// When the run's last `Retry-After` let its request go again (plus one answer), over the bound.
    fn last_retry_after(&self) -> f64 {
        self.outcome.retry_after_floor.as_secs_f64() / self.outcome.bound().as_secs_f64()
    }

    fn met(&self) -> bool {
        let o = &self.outcome;
        let attempts_ok = self.point.noise > 0.0 || o.attempts_per_id() <= 1.02;
        o.ratio() <= self.point.target()
            && attempts_ok
            && o.lost == 0
            && o.dead_lettered == 0
            && o.duplicates <= self.allowed_duplicates()
    }

    fn markdown(&self) -> String {
        let (p, o) = (&self.point, &self.outcome);
        format!(
            "| {} | {} | {} | {} | {} | **{:.3}** (≤ {:.2}) | {:.3} | {:.3} | {:.3} | {} | {} / {} | {} (≤ {}) | {} |",
            p.name,
            p.ids,
            if p.long_waits { "1–5 s" } else { "1 s" },
            if p.whole == 0.0 {
                "none".to_owned()
            } else {
                format!("{:.0} %", p.whole * 100.0)
            },
            if p.hangs { "yes" } else { "no" },
            o.ratio(),
            p.target(),
            self.budget_floor(),
            self.last_retry_after(),
            o.attempts_per_id(),
            o.throttled,
            o.lost,
            o.dead_lettered,
            o.duplicates,
            self.allowed_duplicates(),
            if self.met() { "met" } else { "**missed**" },
        )
    }
}

fn chart(rows: &[Row], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (800, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let y_max = rows.iter().map(|r| r.outcome.ratio()).fold(1.5f64, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption("wall / bound against noise, 3,000 IDs per point", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..21f64, 0.9f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("share of requests faulted (%)")
        .y_desc("wall time / fault-free bound")
        .max_light_lines(0)
        .draw()?;
    let series = |line: Line| -> Vec<(f64, f64)> {
        rows.iter()
            .filter(|r| r.point.line == line || (r.point.line == Line::Both && line != Line::None))
            .map(|r| (r.point.noise * 100.0, r.outcome.ratio()))
            .collect()
    };
    chart
        .draw_series(LineSeries::new(
            series(Line::Mixed),
            RGBColor(200, 60, 40).stroke_width(2),
        ))?
        .label("mixed: Retry-After 1–5 s, whole-request faults, hangs and resets")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], RGBColor(200, 60, 40)));
    chart
        .draw_series(LineSeries::new(
            series(Line::SubRequests),
            RGBColor(40, 90, 200).stroke_width(2),
        ))?
        .label("sub-request faults only, Retry-After 1 s")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], RGBColor(40, 90, 200)));
    let targets = [(0.0, 1.02), (5.0, 1.10), (10.0, 1.20), (20.0, 1.30)];
    chart
        .draw_series(LineSeries::new(targets, BLACK.mix(0.5)))?
        .label("target")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK.mix(0.5)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let only = std::env::var("BENCH_SWEEP_POINTS").ok();
    let mut rows = Vec::new();
    for p in POINTS {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(';').any(|n| p.name.starts_with(n.trim())))
        {
            continue;
        }
        let scenario = Scenario {
            name: "sweep",
            title: "sweep point",
            instances: 1,
            faults: p.noise > 0.0,
            max_ratio: p.target(),
            max_attempts_per_id: None,
            max_dead_lettered: Some(0),
            max_duplicate_share: None,
        };
        println!(
            "{}: {} IDs, bound {:.1} s …",
            p.name,
            p.ids,
            scenario::bound(p.ids).as_secs_f64()
        );
        let outcome = scenario::run_with(scenario, p.ids, |state| p.configure(state));
        println!("  {}", outcome.summary());
        if std::env::var_os("BENCH_SWEEP_SERIES").is_some() {
            // Where the run lost time: Graph's answers per second (accepted/429), then the handler's
            // log if `BENCH_LOG` was set.
            let series: Vec<String> = outcome
                .series
                .iter()
                .map(|t| format!("{}/{}", t.accepted, t.throttled))
                .collect();
            println!("  per second: {}", series.join(" "));
            for log in &outcome.logs {
                println!("{log}");
            }
        }
        rows.push(Row { point: p, outcome });
    }
    let table: Vec<String> = rows.iter().map(Row::markdown).collect();
    let commit = std::process::Command::new("git")
        .args(["-C", REPO, "rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let section = format!(
        "{SECTION}\n\n\
         The release binary, one instance, behind the emulated host, against the emulated Graph of the\n\
         throughput scenarios (50 ms, token bucket 100/s, burst 100, throttling headers on). Each point\n\
         is one run at {commit}; see `benches/sweep/main.rs` for the mixes. Duplicates are allowed up to the\n\
         answers lost after the work plus 1 % of the IDs. *Budget floor*: the least wall / bound any pacing\n\
         can reach at the point, as Graph counts faulted sub-requests against the limit and they must be\n\
         sent again (1 / (1 − their share)). *Last `Retry-After`*: when the run's last `Retry-After` let its\n\
         request go again (plus one answer), over the bound; the run could not end sooner once that answer\n\
         came, but a pace that sent faster would have met its last faults sooner, so it bounds the run, not\n\
         the point.\n\n\
         | point | IDs | Retry-After | whole-request share | hangs, resets | wall / bound | budget floor | last `Retry-After` | attempts / ID | 429s | lost / dead-lettered | duplicates | target |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n\
         {}\n\n\
         ![wall / bound against noise](docs/bench/sweep.svg)\n",
        table.join("\n")
    );
    println!("\n{section}");
    if std::env::var_os("BENCH_SWEEP_WRITE").is_some() && only.is_none() {
        let svg = Path::new(REPO).join("docs/bench/sweep.svg");
        if let Err(e) = chart(&rows, &svg) {
            println!("chart failed: {e}");
        }
        let path = Path::new(REPO).join("BENCHMARKS.md");
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        let kept = old.find(SECTION).map_or(old.as_str(), |at| &old[..at]);
        let text = format!("{}\n\n{section}", kept.trim_end());
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        println!("written to {}", path.display());
    }
}
