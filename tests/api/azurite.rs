//! Real Azurite (the npm package pinned in `tools/azurite/`), one Table service per test binary on a free
//! loopback port, in memory, without telemetry. It is started under a small `sh` watchdog that kills it
//! when this process's end of its stdin pipe closes, so no Azurite outlives the tests. Missing Azurite
//! fails the test with the install command: tests never skip silently.

use std::io::{BufRead, BufReader};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Azurite's documented development account and key (not a secret).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const INSTALL: &str = "npm ci --prefix tools/azurite";

pub struct Azurite {
    pub port: u16,
    /// Holding the watchdog's stdin keeps Azurite alive; it ends with this process.
    _watchdog: Mutex<ChildStdin>,
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

fn binary() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/azurite/node_modules/.bin/azurite-table")
}

/// The shared Azurite, started on first use.
pub fn azurite() -> &'static Azurite {
    static AZURITE: OnceLock<Azurite> = OnceLock::new();
    AZURITE.get_or_init(|| {
        let bin = binary();
        assert!(
            bin.exists(),
            "Azurite is not installed ({} is missing): run `{INSTALL}` in the repository (needs node and npm)",
            bin.display()
        );
        let mut last = String::new();
        for _ in 0..5 {
            match start(&bin) {
                Ok(azurite) => return azurite,
                Err(e) => last = e,
            }
        }
        panic!("Azurite did not start: {last}");
    })
}

fn start(bin: &std::path::Path) -> Result<Azurite, String> {
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    // The watchdog: Azurite in the background, killed when stdin reaches EOF (this process ended).
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
        .map_err(|e| format!("sh: {e}"))?;
    let stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let mut seen = Vec::new();
    while started.elapsed() < Duration::from_secs(30) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line.contains("successfully started") => {
                return Ok(Azurite {
                    port,
                    _watchdog: Mutex::new(stdin),
                });
            }
            Ok(line) => seen.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    drop(stdin);
    let _ = child.wait();
    Err(format!("port {port}: {}", seen.join(" | ")))
}
