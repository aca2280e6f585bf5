//! Storage for the sandbox's operation status: `--storage <connection string>` (any Azurite or account),
//! else Azurite from `tools/azurite` started on a free loopback port, in memory, without telemetry, under
//! a `sh` watchdog that stops it when the sandbox ends (even if the sandbox is killed: the watchdog's
//! stdin closes). When Azurite is not installed yet and `npm` is on PATH, the sandbox installs it first
//! (`npm ci --prefix tools/azurite`). Without storage, 202s say status is unavailable.

use crate::azurite::{self, Azurite};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where Azurite's package (pinned by its lock file) lives in the repository.
const AZURITE_DIR: &str = "tools/azurite";
/// Azurite's Table service once `npm ci --prefix tools/azurite` has run.
const AZURITE_BIN: &str = "node_modules/.bin/azurite-table";

pub(super) struct SandboxStorage {
    /// `AzureWebJobsStorage` for the handler, if any.
    pub connection: Option<String>,
    /// One line for the sandbox output.
    pub note: String,
    _azurite: Option<Azurite>,
}

/// `tools/azurite` under the current directory (the repository, where `cargo run` is typed), else in
/// the repository this crate was built from.
fn azurite_dir() -> Option<PathBuf> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(AZURITE_DIR);
    [PathBuf::from(AZURITE_DIR), built_from]
        .into_iter()
        .find(|dir| dir.join("package.json").is_file())
}

pub(super) fn unavailable(why: &str) -> SandboxStorage {
    SandboxStorage {
        connection: None,
        note: format!("no storage: 202s carry no Location ({why})"),
        _azurite: None,
    }
}

/// Storage as the options ask. Slow steps stop early once `stopping` is set (the sandbox got a signal).
pub(super) fn prepare(option: Option<String>, stopping: &Arc<AtomicBool>) -> anyhow::Result<SandboxStorage> {
    if let Some(connection) = option {
        return Ok(SandboxStorage {
            connection: Some(connection),
            note: "operation status in the storage given with --storage".into(),
            _azurite: None,
        });
    }
    let Some(dir) = azurite_dir() else {
        return Ok(unavailable(&format!(
            "{AZURITE_DIR} not found: run the sandbox from the repository, or pass --storage"
        )));
    };
    let bin = dir.join(AZURITE_BIN);
    if !bin.exists() {
        if let Err(why) = install(&dir, stopping) {
            return Ok(unavailable(&why));
        }
        if !bin.exists() {
            return Ok(unavailable(&format!("npm ci did not install {}", bin.display())));
        }
    }
    start(&bin, stopping)
}

/// Whether `program` is an executable file in one of PATH's directories.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program)).is_ok_and(|m| {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    m.is_file() && m.permissions().mode() & 0o111 != 0
                }
                #[cfg(not(unix))]
                m.is_file()
            })
        })
    })
}

/// `npm ci --prefix tools/azurite`, saying so first; why not, in words to act on.
fn install(dir: &Path, stopping: &AtomicBool) -> Result<(), String> {
    let fix = format!("install Node.js with npm and run `npm ci --prefix {AZURITE_DIR}`, or pass --storage");
    if !on_path("npm") {
        return Err(format!("Azurite is not installed and npm is not on PATH: {fix}"));
    }
    println!(
        "sandbox: installing Azurite for operation status: npm ci --prefix {} (once; this may take a minute)",
        dir.display()
    );
    let mut npm = Command::new("npm")
        .args(["ci", "--prefix"])
        .arg(dir)
        .args(["--no-audit", "--no-fund", "--loglevel=error"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("npm did not start ({e}): {fix}"))?;
    let stderr = npm.stderr.take().map(|stream| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stream), &mut text);
            text
        })
    });
    let status = loop {
        if stopping.load(Ordering::SeqCst) {
            let _ = npm.kill();
            let _ = npm.wait();
            return Err("the install was interrupted".into());
        }
        match npm.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("npm ci failed ({e}): {fix}")),
        }
    };
    if status.success() {
        return Ok(());
    }
    let said = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    let last = said.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    Err(format!("npm ci failed with {status}: {last}; {fix}"))
}

fn start(bin: &Path, stopping: &AtomicBool) -> anyhow::Result<SandboxStorage> {
    let azurite = azurite::start(bin, Duration::from_secs(60), &|| stopping.load(Ordering::SeqCst))
        .map_err(anyhow::Error::msg)?;
    let endpoint = azurite.table_endpoint();
    Ok(SandboxStorage {
        connection: Some(azurite.connection_string()),
        note: format!("operation status in Azurite at {endpoint} (in memory)"),
        _azurite: Some(azurite),
    })
}
