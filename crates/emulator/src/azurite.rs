//! Real Azurite's Table service (the npm package pinned in `tools/azurite/`) on a free loopback port, in
//! memory, without telemetry, for the sandbox and the tests alike. It runs under a small `sh` watchdog
//! that kills it when the watchdog's stdin closes: when [`Azurite`] is dropped, or when this process
//! ends however it ends, so no Azurite outlives its user.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Azurite's documented development account and key (public, not a secret).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running Azurite Table service.
pub struct Azurite {
    pub port: u16,
    /// The watchdog and its stdin: holding the pipe open keeps Azurite alive.
    watchdog: Mutex<(Child, Option<ChildStdin>)>,
}

impl Azurite {
    /// `AzureWebJobsStorage` for this Azurite (account key, path-style table endpoint).
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};TableEndpoint={}",
            self.table_endpoint()
        )
    }

    pub fn table_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Ok(watchdog) = self.watchdog.get_mut() {
            drop(watchdog.1.take());
            let _ = watchdog.0.wait();
        }
    }
}

/// Starts `bin` (`…/node_modules/.bin/azurite-table`) and waits until it says it started, at most
/// `within`, giving up early once `stop()` says so.
pub fn start(bin: &Path, within: Duration, stop: &dyn Fn() -> bool) -> Result<Azurite, String> {
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let script = r#""$0" --tableHost 127.0.0.1 --tablePort "$1" --inMemoryPersistence --disableTelemetry --silent 2>&1 &
pid=$!
cat >/dev/null
kill "$pid" 2>/dev/null"#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(bin)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting Azurite under sh: {e}"))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().ok_or("Azurite's output")?;
    // Once dropped (an error below), the watchdog's stdin closes and Azurite is stopped.
    let azurite = Azurite {
        port,
        watchdog: Mutex::new((child, stdin)),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line.contains("successfully started") => return Ok(azurite),
            Ok(line) => seen.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(format!(
                    "Azurite ({}) stopped before it started: {}",
                    bin.display(),
                    seen.join(" | ")
                ));
            }
        }
        if stop() {
            return Err("interrupted while Azurite started".into());
        }
        if started.elapsed() > within {
            return Err(format!(
                "Azurite did not start within {} s on port {port}: {}",
                within.as_secs(),
                seen.join(" | ")
            ));
        }
    }
}
