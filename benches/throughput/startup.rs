//! Start-up and memory: exec → first answer on `GET /` over 20 starts, and RSS 1 s after ready.

use crate::scenario::{rss_kib, spawn};
use reprocess_emulator::{Emulator, EmulatorState, Tenant};
use std::time::Duration;

pub struct Startup {
    /// Sorted start-up times.
    pub ready: Vec<Duration>,
    pub idle_rss_kib: u64,
}

impl Startup {
    pub fn median(&self) -> Duration {
        self.ready[self.ready.len() / 2]
    }

    pub fn max(&self) -> Duration {
        self.ready.last().copied().unwrap_or_default()
    }
}

pub fn measure() -> Startup {
    let emulator = Emulator::start(EmulatorState::new(Tenant::default())).expect("emulator");
    let mut ready: Vec<Duration> = (0..20).map(|_| spawn(&emulator, &[]).started_in).collect();
    ready.sort();
    let handler = spawn(&emulator, &[]);
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss_kib = rss_kib(handler.pid(), "VmRSS:");
    Startup { ready, idle_rss_kib }
}

pub fn machine() -> String {
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

/// The commit measured (`git describe`-like: short hash, `-dirty` with uncommitted changes), if git is at
/// hand. Read once, at the first call (`main` calls it before the run writes its charts into the tree).
pub fn commit() -> Option<String> {
    static COMMIT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    COMMIT.get_or_init(read_commit).clone()
}

fn read_commit() -> Option<String> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(env!("CARGO_MANIFEST_DIR"))
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let hash = git(&["rev-parse", "--short", "HEAD"])?;
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{hash}-dirty") } else { hash })
}
