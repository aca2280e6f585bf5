//! The report: every measure beside its target, as Markdown. A full run writes it to
//! `BENCHMARKS.md`; any run prints it.

use crate::scenario::{BURST, HOST_CONCURRENCY, LATENCY, MESSAGE_IDS, Outcome, RATE};
use crate::startup::Startup;
use std::fmt::Write;
use std::time::Duration;

/// Peak RSS target per handler process, bytes.
const PEAK_RSS_TARGET: f64 = 40e6;
const IDLE_RSS_TARGET: f64 = 10e6;
const READY_TARGET: Duration = Duration::from_millis(5);

struct Row {
    measure: String,
    value: String,
    /// The target and whether it was met.
    target: Option<(String, bool)>,
}

fn row(measure: impl Into<String>, value: impl Into<String>) -> Row {
    Row {
        measure: measure.into(),
        value: value.into(),
        target: None,
    }
}

fn checked(measure: impl Into<String>, value: impl Into<String>, target: impl Into<String>, met: bool) -> Row {
    Row {
        measure: measure.into(),
        value: format!("**{}**", value.into()),
        target: Some((target.into(), met)),
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn scenario_rows(o: &Outcome) -> Vec<Row> {
    let s = &o.scenario;
    let mut rows = vec![
        row("wall time", format!("{:.1} s", o.wall.as_secs_f64())),
        row(
            format!("throttle-imposed lower bound (({} − burst) / rate)", o.ids),
            format!("{:.1} s", o.bound().as_secs_f64()),
        ),
        checked(
            "wall time / bound",
            format!("{:.3}", o.ratio()),
            format!("≤ {}", s.max_ratio),
            o.ratio() <= s.max_ratio,
        ),
    ];
    let per_id = format!("{:.3}", o.attempts_per_id());
    let attempts = "Graph attempts per ID (sub-requests incl. 429s / IDs)";
    rows.push(match s.max_attempts_per_id {
        Some(max) => checked(attempts, per_id, format!("≤ {max}"), o.attempts_per_id() <= max),
        None => row(attempts, per_id),
    });
    rows.push(row("429 answers received", o.throttled.to_string()));
    rows.push(row("token fetches", o.token_fetches.to_string()));
    let mut invocations = o.invocations.to_string();
    if o.invocations_per_instance.len() > 1 {
        let each: Vec<String> = o.invocations_per_instance.iter().map(usize::to_string).collect();
        write!(invocations, " ({} per instance)", each.join(" + ")).expect("string");
    }
    rows.push(row("queue invocations", invocations));
    rows.push(checked("IDs lost", o.lost.to_string(), "0", o.lost == 0));
    rows.push(match s.max_dead_lettered {
        Some(max) => checked(
            "IDs dead-lettered",
            o.dead_lettered.to_string(),
            max.to_string(),
            o.dead_lettered <= max,
        ),
        None => row("IDs dead-lettered", o.dead_lettered.to_string()),
    });
    let share = o.duplicates as f64 / o.ids as f64;
    let duplicates = format!("{} ({:.1} % of IDs)", o.duplicates, share * 100.0);
    let measure = "IDs reprocessed more than once (duplicates)";
    rows.push(match s.max_duplicate_share {
        Some(max) => checked(
            measure,
            duplicates,
            format!("≤ {:.0} % of IDs", max * 100.0),
            share <= max,
        ),
        None => row(measure, duplicates),
    });
    if s.faults {
        rows.push(row(
            "TCP resets / hung batches injected",
            format!("{} / {}", o.resets, o.hung_batches),
        ));
    }
    let peak = if s.instances > 1 {
        "peak RSS (VmHWM, largest instance)"
    } else {
        "peak RSS (VmHWM)"
    };
    rows.push(checked(
        peak,
        format!("{:.1} MiB", mib(o.peak_rss_kib)),
        "≤ 40 MB",
        o.peak_rss_kib as f64 * 1024.0 <= PEAK_RSS_TARGET,
    ));
    rows
}

fn startup_rows(startup: &Startup) -> Vec<Row> {
    let mut ready = checked(
        "exec → first answer on `GET /` (median of 20 starts)",
        format!("{:.1} ms", startup.median().as_secs_f64() * 1000.0),
        "≤ 5 ms",
        startup.median() <= READY_TARGET,
    );
    write!(ready.value, " (max {:.1} ms)", startup.max().as_secs_f64() * 1000.0).expect("string");
    vec![
        ready,
        checked(
            "idle RSS (1 s after ready)",
            format!("{:.1} MiB", mib(startup.idle_rss_kib)),
            "≤ 10 MB",
            startup.idle_rss_kib as f64 * 1024.0 <= IDLE_RSS_TARGET,
        ),
    ]
}

fn table(out: &mut String, rows: &[Row]) {
    out.push_str("| measure | value | target |\n|---|---|---|\n");
    for r in rows {
        let target = r
            .target
            .as_ref()
            .map(|(t, met)| format!("{t} ({})", verdict(*met)))
            .unwrap_or_default();
        writeln!(out, "| {} | {} | {target} |", r.measure, r.value).expect("string");
    }
    out.push('\n');
}

fn describe(o: &Outcome) -> String {
    let mut text = match (o.scenario.instances, o.scenario.faults) {
        (1, false) => "One handler process, no faults.".to_owned(),
        (1, true) => "One handler process. 12 % of sub-requests fail, 3 % each: 429 (`Retry-After: 1`), 503, \
                      504, and 504 after Graph did the work (so its retry reprocesses the ID twice); 4 % of \
                      `$batch` requests hang (60 s; the client gives up after its learned timeout, 1 s to the \
                      5 s setting); 4 % of HTTP requests are reset at the TCP level (RST)."
            .to_owned(),
        (n, _) => format!(
            "{n} handler processes, each behind its own emulated host (its own {HOST_CONCURRENCY} queue \
             invocations at once), draining one shared queue against one emulated Graph: one token bucket, \
             so one budget of {RATE:.0} requests/s for all of them. No faults."
        ),
    };
    if o.scenario.instances > 1 {
        text.push_str(
            " The chart's per-instance lines tell the instances apart by the token each fetched \
             (one per process).",
        );
    }
    text
}

/// The report; `chart_dir` is where it links each scenario's chart (relative to the repository for a full
/// run).
pub fn render(ids: usize, outcomes: &[Outcome], startup: &Startup, chart_dir: &str, machine: &str) -> String {
    let mut out = String::from("# Benchmarks\n\n");
    writeln!(
        out,
        "Command: `cargo bench --bench throughput` (writes this file and `docs/bench/*.svg`; \
         a quick run, with `BENCH_SCENARIOS` naming some of `clean,faults,multi` or `BENCH_IDS` other \
         than 10000, only prints). \
         Measured {} at commit {} on {machine}.\n",
        time::OffsetDateTime::now_utc().date(),
        crate::startup::commit().unwrap_or_else(|| "unknown".into())
    )
    .expect("string");
    writeln!(
        out,
        "Set-up: the release binary is started as the Functions host starts it (environment, loopback port, \
         readiness poll on `GET /`) and driven with queue envelopes as the host sends them: {ids} delivered \
         assignment IDs in messages of {MESSAGE_IDS}, up to {HOST_CONCURRENCY} invocations at once per instance \
         (host.json `batchSize` 16 + `newBatchThreshold` 8), `enqueue` outputs put back on the queue at once. \
         The emulated Graph answers after {} ms and throttles with a token bucket of {RATE:.0} requests/s, burst \
         {BURST:.0} (each `$batch` sub-request takes a token; past it, 429 with `Retry-After`). \
         `GRAPH_ATTEMPT_TIMEOUT_SECONDS=5`, other settings default. The bound is the time the bucket needs \
         for the IDs: ({ids} − burst) / rate = {:.1} s.\n",
        LATENCY.as_millis(),
        crate::scenario::bound(ids).as_secs_f64()
    )
    .expect("string");

    out.push_str("## Targets\n\n| scenario | measure | value | target |\n|---|---|---|---|\n");
    let startup_rows = startup_rows(startup);
    let sections: Vec<(&Outcome, Vec<Row>)> = outcomes.iter().map(|o| (o, scenario_rows(o))).collect();
    let targeted = sections
        .iter()
        .flat_map(|(o, rows)| rows.iter().map(move |r| (o.scenario.name, r)))
        .chain(startup_rows.iter().map(|r| ("start-up", r)));
    for (name, r) in targeted {
        if let Some((target, met)) = &r.target {
            writeln!(
                out,
                "| {name} | {} | {} | {target} ({}) |",
                r.measure,
                r.value,
                verdict(*met)
            )
            .expect("string");
        }
    }
    out.push('\n');

    for (o, rows) in &sections {
        writeln!(
            out,
            "## {} (`{}`)\n\n{}\n",
            o.scenario.title,
            o.scenario.name,
            describe(o)
        )
        .expect("string");
        table(&mut out, rows);
        writeln!(
            out,
            "![{name}: accepted calls and 429s per second]({dir}/{name}.svg)\n",
            name = o.scenario.name,
            dir = chart_dir
        )
        .expect("string");
    }
    out.push_str(
        "Charts: reprocess calls per second from the emulated Graph's request log, counted from the start of \
         the queue drain: accepted (answered anything but 429, so the token bucket took a token; injected \
         503/504 included) and 429 (from the bucket or injected). The dashed horizontal line is the bucket's \
         rate, the dotted vertical one the bound: wherever the accepted line runs below the rate line, the \
         budget went unused and time was lost.\n\n\
         Duplicates can only come from requests whose answer was lost after Graph acted (reprocessing a \
         Delivered assignment twice is harmless).\n\n",
    );
    out.push_str("## Start-up and memory\n\n");
    table(&mut out, &startup_rows);
    out
}
