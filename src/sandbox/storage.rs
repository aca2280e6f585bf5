//! Storage for the sandbox's operation status: `--storage <connection string>` (any Azurite or account),
//! else Azurite from `tools/azurite` (after `npm ci --prefix tools/azurite`) started on a free loopback
//! port, in memory, without telemetry, under a `sh` watchdog that stops it when the sandbox ends (even
//! if the sandbox is killed: the watchdog's stdin closes). Without either, 202s say status is unavailable.

use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Azurite is when installed with `npm ci --prefix tools/azurite` (run from the repository).
pub const AZURITE_BIN: &str = "tools/azurite/node_modules/.bin/azurite-table";
/// Azurite's documented development account key (public, not a secret).
const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub(super) struct SandboxStorage {
    /// `AzureWebJobsStorage` for the handler, if any.
    pub connection: Option<String>,
    /// One line for the sandbox output.
    pub note: String,
    _azurite: Option<Azurite>,
}

struct Azurite {
    watchdog: Child,
    stdin: Option<ChildStdin>,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.watchdog.wait();
    }
}

pub(super) fn prepare(option: Option<String>) -> anyhow::Result<SandboxStorage> {
    if let Some(connection) = option {
        return Ok(SandboxStorage {
            connection: Some(connection),
            note: "operation status in the storage given with --storage".into(),
            _azurite: None,
        });
    }
    if !Path::new(AZURITE_BIN).exists() {
        return Ok(SandboxStorage {
            connection: None,
            note: "no storage: 202s carry no Location (install Azurite with `npm ci --prefix tools/azurite`, or pass --storage)"
                .into(),
            _azurite: None,
        });
    }
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port();
    let script = r#""$0" --tableHost 127.0.0.1 --tablePort "$1" --inMemoryPersistence --disableTelemetry --silent 2>&1 &
pid=$!
cat >/dev/null
kill "$pid" 2>/dev/null"#;
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(AZURITE_BIN)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting Azurite")?;
    let stdin = watchdog.stdin.take();
    let stdout = watchdog.stdout.take().context("Azurite's output")?;
    let azurite = Azurite { watchdog, stdin };
    let mut lines = BufReader::new(stdout).lines();
    let started = Instant::now();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("successfully started") => break,
            Some(Ok(_)) => {}
            _ => anyhow::bail!("Azurite ({AZURITE_BIN}) stopped before it started"),
        }
        if started.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("Azurite did not start within 60 s");
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let endpoint = format!("http://127.0.0.1:{port}/devstoreaccount1");
    Ok(SandboxStorage {
        connection: Some(format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_KEY};TableEndpoint={endpoint}"
        )),
        note: format!("operation status in Azurite at {endpoint} (in memory)"),
        _azurite: Some(azurite),
    })
}
