use super::*;

const IDS: usize = 10_000;
const CLEAN: Throttle = Throttle {
    rate: 100.0,
    burst: 100.0,
    stray_429: 0.0,
    stray_5xx: 0.0,
    whole_429: 0.0,
    whole_503: 0.0,
    hung_batches: 0.0,
    reset_batches: 0.0,
    retry_after: RetryAfter::Fixed(1),
    limit_drop: None,
    headers: false,
    seed: 0,
};
/// The benchmark's fault mix: 3 % stray 429s, 9 % 503/504, 4 % of batches hung, 4 % reset.
const NOISY: Throttle = Throttle {
    stray_429: 0.03,
    stray_5xx: 0.09,
    hung_batches: 0.04,
    reset_batches: 0.04,
    ..CLEAN
};

fn describe(label: &str, r: &Report) -> String {
    let bound = (IDS as f64 - CLEAN.burst) / CLEAN.rate;
    format!(
        "{label}: {:.3} × the bound, {:.3} attempts per ID, 429s per second {:?}",
        r.seconds / bound,
        r.attempts as f64 / IDS as f64,
        r.throttled
    )
}

#[tokio::test(start_paused = true)]
async fn one_instance_uses_the_budget_with_few_429s() {
    let r = run(CLEAN, IDS, 1, 24).await;
    let report = describe("clean", &r);
    eprintln!("{report}, budget used {:.3}", r.budget_used_from(10, CLEAN.rate));
    assert!(r.attempts as f64 <= 1.03 * IDS as f64, "{report}");
    assert!(
        r.throttled_from(10) as f64 <= 0.01 * IDS as f64,
        "past slow start: {report}"
    );
    assert!(r.budget_used_from(10, CLEAN.rate) >= 0.97, "{report}");
    assert_eq!(r.lost, 0);
}

/// Over several draws of the faults: one lucky draw must not carry the test.
#[tokio::test(start_paused = true)]
async fn stray_429s_and_5xx_do_not_hold_the_pace_under_the_limit() {
    let mut used = Vec::new();
    for seed in 0..6 {
        let r = run(Throttle { seed, ..NOISY }, IDS, 1, 24).await;
        let budget = r.budget_used_from(10, NOISY.rate);
        eprintln!("{}, budget used {budget:.3}", describe("noisy", &r));
        assert_eq!(r.lost, 0);
        used.push(budget);
    }
    let mean = used.iter().sum::<f64>() / used.len() as f64;
    assert!(mean >= 0.93, "mean budget used {mean:.3} over draws {used:?}");
    assert!(used.iter().all(|&u| u >= 0.86), "budget used per draw {used:?}");
}

/// Over several draws of answer times (the instances' shares depend on who was throttled first).
#[tokio::test(start_paused = true)]
async fn four_instances_share_one_budget() {
    let mut used = Vec::new();
    for seed in 0..6 {
        let r = run(Throttle { seed, ..CLEAN }, IDS, 4, 24).await;
        let report = describe("four instances", &r);
        let budget = r.budget_used_from(10, CLEAN.rate);
        eprintln!("{report}, budget used {budget:.3}");
        assert!(r.attempts as f64 <= 1.05 * IDS as f64, "{report}");
        assert_eq!(r.lost, 0);
        used.push(budget);
    }
    let mean = used.iter().sum::<f64>() / used.len() as f64;
    assert!(mean >= 0.90, "mean budget used {mean:.3} over draws {used:?}");
}

/// One point of the sweep: a fault mix and how many instances share the budget.
#[derive(Debug, Clone, Copy)]
struct Point {
    /// Share of sub-requests answered with a stray fault (half 429, half 503/504).
    noise: f64,
    retry_after: RetryAfter,
    /// Share of `$batch` requests failed whole (half 429, half 503, each with `Retry-After`), as a
    /// share of the noise.
    whole: f64,
    /// Graph's limit drops to 70 % of the pace learned, 30 s in.
    limit_drop: bool,
    /// 2 % of the batches hang, 2 % are reset.
    hangs: bool,
    instances: usize,
    headers: bool,
}

/// Each instance's share of the budget (per second), and the seconds of work at the bound.
const SHARE: f64 = 25.0;
const SECONDS_OF_WORK: f64 = 100.0;

impl Point {
    fn throttle(&self, seed: u64) -> Throttle {
        // By hand: `SIM_RATE=r`, another limit (r requests a second for one instance, the same share of
        // it per instance as by default); `SIM_ONE_LIMIT=r`, r a second however many instances share
        // it; `SIM_BURST_SECONDS=s`, a bucket holding s seconds of the limit (Graph documents its
        // identity limits per 10 s).
        let by_hand = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok());
        let rate = by_hand("SIM_ONE_LIMIT").unwrap_or_else(|| {
            (by_hand("SIM_RATE").map_or(SHARE, |r| r / 4.0) * self.instances as f64)
                .max(by_hand("SIM_RATE").unwrap_or(CLEAN.rate))
        });
        let whole = self.noise * self.whole;
        Throttle {
            rate,
            burst: rate * by_hand("SIM_BURST_SECONDS").unwrap_or(1.0),
            stray_429: self.noise / 2.0,
            stray_5xx: self.noise / 2.0,
            whole_429: whole / 2.0,
            whole_503: whole / 2.0,
            hung_batches: if self.hangs { 0.02 } else { 0.0 },
            reset_batches: if self.hangs { 0.02 } else { 0.0 },
            retry_after: self.retry_after,
            limit_drop: self.limit_drop.then_some((30, 0.7 * rate)),
            headers: self.headers,
            seed,
        }
    }

    fn ids(&self) -> usize {
        (SECONDS_OF_WORK * self.throttle(0).rate) as usize
    }

    fn invocations(&self) -> usize {
        if self.instances == 1 { 24 } else { 8 }
    }

    fn row(&self, wall: &[f64], attempts: &[f64], lost: u64) -> String {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let worst = |v: &[f64]| v.iter().copied().fold(f64::MIN, f64::max);
        let ra = match self.retry_after {
            RetryAfter::Fixed(s) => format!("{s}s"),
            RetryAfter::Between(a, b) => format!("{a}-{b}s"),
        };
        format!(
            "| {:>4.0}% | {ra:>4} | {:>5} | {:>5} | {:>5} | {:>3} | {:>7} | {:.3} ({:.3}) | {:.3} ({:.3}) | {lost} |",
            self.noise * 100.0,
            if self.whole == 0.0 {
                "none".to_owned()
            } else {
                format!("{}", self.whole)
            },
            if self.limit_drop { "drop" } else { "-" },
            if self.hangs { "yes" } else { "-" },
            self.instances,
            if self.headers { "yes" } else { "-" },
            mean(wall),
            worst(wall),
            mean(attempts),
            worst(attempts),
        )
    }
}

const HEADER: &str = "| noise | R-A | whole | limit | hangs | inst | headers | wall/bound mean (worst) | attempts/ID mean (worst) | lost |";

/// Runs each point over `draws` draws of the faults and prints a table (`--nocapture`). Asserts only
/// what holds whatever the draw: every ID ends accepted (IDs handed back are queued again).
async fn sweep(points: &[Point], draws: u64) {
    let mut table = vec![HEADER.to_owned()];
    for point in points {
        let (mut wall, mut attempts, mut lost) = (Vec::new(), Vec::new(), 0);
        for seed in 0..draws {
            let throttle = point.throttle(seed);
            let ids = point.ids();
            let r = run(throttle, ids, point.instances, point.invocations()).await;
            wall.push(r.seconds / throttle.bound(ids));
            attempts.push(r.attempts as f64 / ids as f64);
            lost += r.lost;
        }
        let row = point.row(&wall, &attempts, lost);
        eprintln!("{row}");
        assert_eq!(lost, 0, "{row}");
        table.push(row);
    }
    eprintln!("\n{}", table.join("\n"));
}

const BASE: Point = Point {
    noise: 0.0,
    retry_after: RetryAfter::Fixed(1),
    whole: 0.0,
    limit_drop: false,
    hangs: false,
    instances: 1,
    headers: false,
};

/// The sweep's points: noise × `Retry-After` × whole-request faults × a limit below the pace × hangs
/// for one instance, then 4, 10 and 40 instances on one budget.
fn grid(headers: bool) -> Vec<Point> {
    let mut points = Vec::new();
    for noise in [0.0, 0.02, 0.05, 0.10, 0.20] {
        for retry_after in [RetryAfter::Fixed(1), RetryAfter::Between(1, 5)] {
            for whole in [0.0, 0.25, 0.5] {
                if noise == 0.0 && (whole > 0.0 || retry_after != RetryAfter::Fixed(1)) {
                    continue;
                }
                for limit_drop in [false, true] {
                    for hangs in [false, true] {
                        points.push(Point {
                            noise,
                            retry_after,
                            whole,
                            limit_drop,
                            hangs,
                            headers,
                            ..BASE
                        });
                    }
                }
            }
        }
    }
    for instances in [4, 10, 40] {
        for noise in [0.0, 0.05, 0.20] {
            points.push(Point {
                noise,
                whole: 0.25,
                instances,
                headers,
                ..BASE
            });
        }
    }
    points
}

/// A few corners of the sweep on every run.
#[tokio::test(start_paused = true)]
async fn sweep_corners_lose_nothing() {
    let corners = [
        BASE,
        Point {
            noise: 0.05,
            whole: 0.5,
            hangs: true,
            ..BASE
        },
        Point {
            noise: 0.20,
            retry_after: RetryAfter::Between(1, 5),
            whole: 0.5,
            limit_drop: true,
            hangs: true,
            ..BASE
        },
    ];
    sweep(&corners, 1).await;
}

/// The whole sweep (minutes of CPU in a debug build):
/// `cargo test --lib graph::limiter::sim::tests::sweep -- --ignored --nocapture`.
/// `SIM_HEADERS=1` has Graph send its throttle headers, `SIM_DRAWS=n` sets the draws per point (2).
#[tokio::test(start_paused = true)]
#[ignore = "minutes of CPU: run by hand when tuning the pacing"]
async fn sweep_over_fault_mixes() {
    let headers = std::env::var_os("SIM_HEADERS").is_some();
    let draws = std::env::var("SIM_DRAWS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(2);
    // `SIM_NOISE=5,20`: only those noise levels (percent), to look at a part of the sweep.
    let noise: Option<Vec<f64>> = std::env::var("SIM_NOISE")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse::<f64>().ok()).collect());
    let points: Vec<Point> = grid(headers)
        .into_iter()
        .filter(|p| {
            noise
                .as_ref()
                .is_none_or(|n| n.iter().any(|&n| (n / 100.0 - p.noise).abs() < 1e-9))
        })
        .collect();
    sweep(&points, draws).await;
}

/// One point of the sweep, to look at by hand with `SIM_TRACE=1`:
/// `SIM_POINT=noise%,retry-after max s,whole,drop(0/1),hangs(0/1),instances,seed`, e.g. `5,1,0.5,1,1,1,0`.
#[tokio::test(start_paused = true)]
#[ignore = "by hand, with SIM_POINT"]
async fn sweep_point() {
    let Ok(spec) = std::env::var("SIM_POINT") else { return };
    let v: Vec<f64> = spec.split(',').map(|x| x.trim().parse().expect("a number")).collect();
    let point = Point {
        noise: v[0] / 100.0,
        retry_after: if v[1] > 1.0 {
            RetryAfter::Between(1, v[1] as u64)
        } else {
            RetryAfter::Fixed(1)
        },
        whole: v[2],
        limit_drop: v[3] > 0.0,
        hangs: v[4] > 0.0,
        instances: v[5] as usize,
        headers: std::env::var_os("SIM_HEADERS").is_some(),
    };
    let throttle = point.throttle(v[6] as u64);
    let r = run(throttle, point.ids(), point.instances, point.invocations()).await;
    eprintln!(
        "{:.3} × the bound, {:.3} attempts per ID, 429s per second {:?}",
        r.seconds / throttle.bound(point.ids()),
        r.attempts as f64 / point.ids() as f64,
        r.throttled
    );
}
