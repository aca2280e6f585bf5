//! The Functions host's side of the custom-handler protocol as a blocking client, for the integration
//! tests and the throughput bench: it starts the handler binary as the host does (clean environment with
//! the host's variables, a loopback port, readiness), invokes functions with the host's exact request,
//! and plays the Storage queue for the queue function with concurrent invocations (in `queue.rs`).
//!
//! Request shape from azure-functions-host `DefaultHttpWorkerService` (headers, chunked body, readiness
//! poll on `GET /`); environment from `HttpWorkerProcess`. Function names are the folder names in
//! [`crate::functions`].

use super::Emulator;
use anyhow::{Context, bail};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use super::queue::{QueueDrain, QueueRun, drain_shared_queue};

/// The host release the emulated host claims to be.
pub const HOST_VERSION: &str = "4.1036.1.23224";
/// Names a prebuilt handler binary to drive instead of the one cargo built (CI runs the integration
/// tests once against the packaged static binary).
pub const BINARY_ENV: &str = "REPROCESS_HANDLER_BIN";

/// `$REPROCESS_HANDLER_BIN` when set, else `built` (pass `env!("CARGO_BIN_EXE_reprocess-handler")`:
/// cargo sets that only for tests and benches).
pub fn handler_binary(built: &str) -> PathBuf {
    std::env::var_os(BINARY_ENV).map_or_else(|| PathBuf::from(built), PathBuf::from)
}

/// The host waits for an invocation up to host.json's `functionTimeout`.
const FUNCTION_TIMEOUT: Duration = Duration::from_secs(600);
/// Shorter than the host's start-up limit, so a broken build fails fast.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// The host sets one per worker process; fixed so runs compare.
const WORKER_ID: &str = "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d";

/// Where the handler listens, and how its readiness is seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// `FUNCTIONS_CUSTOMHANDLER_PORT=0`, then wait for the start-up log line naming the bound port: no
    /// race for ports between parallel tests. Needs `RUST_LOG` at `info` (the default here).
    LoggedPort,
    /// A free port picked here, then `GET /` until any HTTP answer, as the host does. The host polls every
    /// 25 ms; this polls every 0.2 ms so `started_in` measures start-up.
    Probe,
    /// [`Readiness::Probe`] on this port (the sandbox's `--handler-port`).
    ProbeAt(u16),
}

/// What [`HandlerProcess::spawn`] adds to the defaults of [`HandlerProcess::start`].
#[derive(Default)]
pub struct Launch {
    /// The environment to start from instead of an empty one (the app settings the host would pass); the
    /// host's variables and the emulator's endpoints are set over it.
    pub inherited: Vec<(String, String)>,
    /// Set last, over everything (e.g. `RUST_LOG`).
    pub extra: Vec<(String, String)>,
    /// Takes every stdout line as it arrives; the lines are then not kept (a long session keeps nothing).
    pub on_stdout: Option<Box<dyn FnMut(String) + Send>>,
}

impl std::fmt::Debug for Launch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launch")
            .field("inherited", &self.inherited.len())
            .field("extra", &self.extra)
            .field("on_stdout", &self.on_stdout.is_some())
            .finish()
    }
}

/// A running handler process; dropping it kills the process.
#[derive(Debug)]
pub struct HandlerProcess {
    pub port: u16,
    /// From exec to ready.
    pub started_in: Duration,
    child: Child,
    readiness: Readiness,
    spawned: Instant,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Ends when the child's stderr closes, so an exit's last words can be awaited.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

/// What the handler answered to one invocation.
#[derive(Debug)]
pub struct HostReply {
    pub status: u16,
    pub content_type: String,
    pub json: Value,
}

impl HostReply {
    /// The messages of a queue output binding, as the host writes them to the queue.
    pub fn queue_output(&self, binding: &str) -> anyhow::Result<Vec<String>> {
        match &self.json["Outputs"][binding] {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => items
                .iter()
                .map(|m| m.as_str().map(str::to_owned).context("queue outputs must be strings"))
                .collect(),
            other => bail!("queue output {binding} must be an array, got {other}"),
        }
    }
}

impl HandlerProcess {
    /// Starts `binary` with only the host's variables, the emulator's Graph and managed-identity
    /// endpoints, `RUST_LOG=info`, and then `extra` (which may override any of them), and waits until it
    /// is ready.
    pub fn start(
        binary: &Path,
        emulator: &Emulator,
        readiness: Readiness,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let launch = Launch {
            extra: extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ..Launch::default()
        };
        let mut process = Self::spawn(binary, emulator, readiness, launch)?;
        while !process.poll_ready()? {
            std::thread::sleep(match readiness {
                Readiness::LoggedPort => Duration::from_millis(5),
                Readiness::Probe | Readiness::ProbeAt(_) => Duration::from_micros(200),
            });
        }
        Ok(process)
    }

    /// Starts `binary` as [`HandlerProcess::start`] does, with `launch`'s additions, without waiting:
    /// [`HandlerProcess::poll_ready`] says when it is ready (so a caller can wait for other things too).
    pub fn spawn(binary: &Path, emulator: &Emulator, readiness: Readiness, launch: Launch) -> anyhow::Result<Self> {
        let port = match readiness {
            Readiness::LoggedPort => 0,
            Readiness::Probe => std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port(),
            Readiness::ProbeAt(port) => port,
        };
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(launch.inherited)
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", WORKER_ID)
            .env("GRAPH_BASE_URL", emulator.graph_base_url())
            .env("IDENTITY_ENDPOINT", emulator.identity_endpoint())
            .env("IDENTITY_HEADER", &emulator.state.identity_header)
            .env("RUST_LOG", "info")
            .envs(launch.extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawned = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        // Read both pipes at once so logging never blocks the handler.
        let stdout = child.stdout.take().context("stdout")?;
        let (stdout, _) = match launch.on_stdout {
            Some(hook) => (Arc::default(), pass_lines(stdout, hook)),
            None => collect_lines(stdout),
        };
        let (stderr, stderr_reader) = collect_lines(child.stderr.take().context("stderr")?);
        Ok(Self {
            port,
            started_in: Duration::ZERO,
            child,
            readiness,
            spawned,
            stdout,
            stderr,
            stderr_reader: Some(stderr_reader),
        })
    }

    /// One readiness check: `Ok(true)` once ready (then `started_in` is set), an error if the handler
    /// exited or is still not ready after the start-up limit.
    pub fn poll_ready(&mut self) -> anyhow::Result<bool> {
        let ready = match self.readiness {
            Readiness::LoggedPort => self.logged_port().map(|p| self.port = p).is_some(),
            Readiness::Probe | Readiness::ProbeAt(_) => answers_http(self.port),
        };
        if ready {
            self.started_in = self.spawned.elapsed();
            return Ok(true);
        }
        if let Some(status) = self.exited() {
            let stderr = self.stderr();
            bail!("handler exited with {status}: {}", stderr.trim());
        }
        if self.spawned.elapsed() > START_TIMEOUT {
            bail!("handler not ready after {START_TIMEOUT:?}");
        }
        Ok(false)
    }

    /// The exit status once the handler has exited (its stderr then read to the end).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().ok()??;
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        Some(status)
    }

    fn logged_port(&self) -> Option<u16> {
        let lines = self.stdout.lock().expect("stdout lock");
        lines.iter().find_map(|line| {
            let port = serde_json::from_str::<Value>(line).ok()?["port"].as_u64()?;
            u16::try_from(port).ok()
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the handler wrote to stdout so far, one line each.
    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("stdout lock").join("\n")
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").join("\n")
    }

    /// POSTs `envelope` to `/{function}` as `DefaultHttpWorkerService` does: the host's headers, a chunked
    /// body, one connection per invocation.
    pub fn invoke(&self, function: &str, envelope: &[u8]) -> anyhow::Result<HostReply> {
        let invocation_id = crate::guid::random();
        let mut request = format!(
            "POST /{function} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-Azure-Functions-HostVersion: {HOST_VERSION}\r\n\
             X-Azure-Functions-InvocationId: {invocation_id}\r\nUser-Agent: Azure-Functions-Host/{HOST_VERSION}\r\n\
             Content-Type: application/json; charset=utf-8\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            self.port
        )
        .into_bytes();
        // Two chunks, as a streaming serializer would write them.
        let (first, second) = envelope.split_at(envelope.len() / 2);
        for chunk in [first, second].into_iter().filter(|c| !c.is_empty()) {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        let (status, headers, body) = raw_request(self.port, &request)?;
        let content_type = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let json = serde_json::from_slice(&body)
            .with_context(|| format!("reply is not JSON: {}", String::from_utf8_lossy(&body)))?;
        Ok(HostReply {
            status,
            content_type,
            json,
        })
    }

    /// A plain `GET` (the readiness probe): status and body.
    pub fn get(&self, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        let (status, _, body) = raw_request(self.port, request.as_bytes())?;
        Ok((status, body))
    }
}

impl Drop for HandlerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect_lines(stream: impl Read + Send + 'static) -> (Arc<Mutex<Vec<String>>>, std::thread::JoinHandle<()>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let reader = pass_lines(stream, Box::new(move |line| sink.lock().expect("line lock").push(line)));
    (lines, reader)
}

fn pass_lines(
    stream: impl Read + Send + 'static,
    mut hook: Box<dyn FnMut(String) + Send>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            hook(line);
        }
    })
}

/// The host's readiness test: any HTTP answer on `GET /`.
fn answers_http(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let mut head = [0u8; 12];
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_ok()
        && stream.read_exact(&mut head).is_ok()
        && head.starts_with(b"HTTP/1.1")
}

type RawResponse = (u16, Vec<(String, String)>, Vec<u8>);

/// Minimal HTTP/1.1 client: the request bytes go out exactly as given.
fn raw_request(port: u16, request: &[u8]) -> anyhow::Result<RawResponse> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).context("connecting to the handler")?;
    stream.set_read_timeout(Some(FUNCTION_TIMEOUT))?;
    stream.write_all(request).context("sending the request")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).context("reading the answer")?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .with_context(|| format!("no response head in {:?}", String::from_utf8_lossy(&raw)))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status line in {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body).context("malformed chunked body")?;
    }
    Ok((status, headers, body))
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return Some(out);
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(eol + 2..eol + 2 + size)?);
        data = data.get(eol + 2 + size + 2..)?;
    }
}
