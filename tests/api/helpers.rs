//! Spawns the real binary the way the Functions host does (environment, loopback port, envelopes over
//! chunked HTTP/1.1 with the host's headers) against the emulated tenant from `src/emulator`.

use reprocess_handler::emulator::host::{HttpCall, QueueMessageMeta, http_envelope, queue_envelope};
use reprocess_handler::emulator::{Emulator, EmulatorState, sample};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const HOST_VERSION: &str = "4.1036.1.23224";
pub const HTTP_FUNCTION: &str = "function-reprocess";
pub const QUEUE_FUNCTION: &str = "function-reprocess-queue";
pub const ALERT_FUNCTION: &str = "function-reprocess-alert";

/// What following a fan-out through the queue produced.
#[derive(Debug, Default)]
pub struct Drained {
    /// Messages that carried IDs (chunks), in the order they were enqueued.
    pub id_messages: Vec<Value>,
    /// Expansion messages invoked (one per listed page, plus retries).
    pub expansion_invocations: usize,
    pub dead_letters: Vec<Value>,
    /// Every message seen, expansion or chunk.
    pub all_messages: Vec<Value>,
}

impl Drained {
    /// Every assignment ID over all chunks, with repeats.
    pub fn assignment_ids(&self) -> Vec<String> {
        self.id_messages
            .iter()
            .flat_map(|m| m["assignmentIds"].as_array().cloned().unwrap_or_default())
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }
}

pub struct TestApp {
    pub port: u16,
    pub emulator: Emulator,
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

/// What the handler answered to one invocation.
#[derive(Debug)]
pub struct HostReply {
    pub status: u16,
    pub content_type: String,
    pub json: Value,
}

impl HostReply {
    /// `Outputs.res` decoded the way the host does: status string, headers, string body holding JSON.
    pub fn res(&self) -> (u16, Value, Value) {
        let res = &self.json["Outputs"]["res"];
        let status = res["statusCode"]
            .as_str()
            .expect("statusCode is a string")
            .parse()
            .expect("numeric status");
        let body = serde_json::from_str(res["body"].as_str().expect("body is a string")).expect("body is JSON");
        (status, res["headers"].clone(), body)
    }

    pub fn output_messages(&self, binding: &str) -> Vec<Value> {
        match &self.json["Outputs"][binding] {
            Value::Null => Vec::new(),
            Value::Array(items) => items
                .iter()
                .map(|m| serde_json::from_str(m.as_str().expect("queue outputs are strings")).expect("message is JSON"))
                .collect(),
            other => panic!("queue output {binding} must be an array, got {other}"),
        }
    }
}

pub fn spawn_app() -> TestApp {
    spawn_app_with(EmulatorState::new(sample::tenant()), &[])
}

pub fn spawn_app_env(env: &[(&str, &str)]) -> TestApp {
    spawn_app_with(EmulatorState::new(sample::tenant()), env)
}

pub fn spawn_app_with(state: EmulatorState, env: &[(&str, &str)]) -> TestApp {
    let emulator = Emulator::start(state).expect("emulator starts");
    let mut command = Command::new(env!("CARGO_BIN_EXE_reprocess-handler"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", "0")
        .env(
            "FUNCTIONS_CUSTOMHANDLER_WORKER_ID",
            "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d",
        )
        .env("GRAPH_BASE_URL", emulator.graph_base_url())
        .env("IDENTITY_ENDPOINT", emulator.identity_endpoint())
        .env("IDENTITY_HEADER", &emulator.state.identity_header)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("binary starts");
    let stdout = collect_lines(child.stdout.take().expect("stdout"));
    let stderr = collect_lines(child.stderr.take().expect("stderr"));
    let started = Instant::now();
    let port = loop {
        let found = stdout.lock().unwrap().iter().find_map(|line| {
            serde_json::from_str::<Value>(line)
                .ok()
                .and_then(|v| v["port"].as_u64())
        });
        if let Some(port) = found {
            break port as u16;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("handler exited with {status}: {:?}", stderr.lock().unwrap());
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "handler did not report its port"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    TestApp {
        port,
        emulator,
        child,
        stdout,
        stderr,
    }
}

fn collect_lines(stream: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

impl TestApp {
    /// POSTs an envelope exactly as `DefaultHttpWorkerService` does: host headers, chunked body.
    pub fn invoke(&self, function: &str, envelope: &[u8]) -> HostReply {
        let invocation_id = reprocess_handler::domain::Guid::new_random();
        let mut head = format!(
            "POST /{function} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-Azure-Functions-HostVersion: {HOST_VERSION}\r\n\
             X-Azure-Functions-InvocationId: {invocation_id}\r\nUser-Agent: Azure-Functions-Host/{HOST_VERSION}\r\n\
             Content-Type: application/json; charset=utf-8\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            self.port
        )
        .into_bytes();
        // Two chunks, as a streaming serializer would write them.
        let split = envelope.len() / 2;
        for chunk in [&envelope[..split], &envelope[split..]] {
            if !chunk.is_empty() {
                head.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                head.extend_from_slice(chunk);
                head.extend_from_slice(b"\r\n");
            }
        }
        head.extend_from_slice(b"0\r\n\r\n");
        let (status, headers, body) = raw_request(self.port, &head);
        let content_type = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let json = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {}", String::from_utf8_lossy(&body)));
        HostReply {
            status,
            content_type,
            json,
        }
    }

    pub fn invoke_http(&self, call: &HttpCall) -> HostReply {
        self.invoke(HTTP_FUNCTION, http_envelope(HTTP_FUNCTION, "req", call).as_bytes())
    }

    pub fn post_ids(&self, body: &str) -> HostReply {
        self.invoke_http(&HttpCall::post_json("reprocess", body))
    }

    pub fn queue_message(&self, text: &str) -> HostReply {
        let envelope = queue_envelope(QUEUE_FUNCTION, "message", text, &QueueMessageMeta::now(1));
        self.invoke(QUEUE_FUNCTION, envelope.as_bytes())
    }

    pub fn post_alert(&self, body: &str) -> HostReply {
        self.post_alert_call(&HttpCall::post_json("alert", body))
    }

    pub fn post_alert_call(&self, call: &HttpCall) -> HostReply {
        self.invoke(ALERT_FUNCTION, http_envelope(ALERT_FUNCTION, "req", call).as_bytes())
    }

    /// A POST to `/api/{route}` with query parameters, as the front end would pass them.
    pub fn call_with_query(route: &str, body: &str, query: &[(&str, &str)]) -> HttpCall {
        let mut call = HttpCall::post_json(route, body);
        call.query = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let joined: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        call.url = format!("{}?{}", call.url, joined.join("&"));
        call
    }

    /// Feeds queue messages to the queue function as the host would, following `enqueue` outputs
    /// (with `notBefore` moved into the past so retries run at once) until none are left. ID chunks are
    /// recorded, and reprocessed too when `reprocess` is set.
    pub fn drain(&self, messages: Vec<Value>, reprocess: bool) -> Drained {
        let mut drained = Drained::default();
        let mut pending: std::collections::VecDeque<Value> = messages.into();
        let mut invocations = 0;
        while let Some(mut message) = pending.pop_front() {
            invocations += 1;
            assert!(invocations < 2_000, "fan-out does not settle");
            drained.all_messages.push(message.clone());
            let expansion = message.get("accessPackageIds").is_some() || message.get("userIds").is_some();
            if expansion {
                drained.expansion_invocations += 1;
            } else {
                drained.id_messages.push(message.clone());
                if !reprocess {
                    continue;
                }
            }
            if message.get("notBefore").is_some() {
                message["notBefore"] = serde_json::json!("2020-01-01T00:00:00Z");
            }
            let reply = self.queue_message(&message.to_string());
            assert_eq!(reply.status, 200, "queue invocation failed: {}", reply.json);
            pending.extend(reply.output_messages("enqueue"));
            drained.dead_letters.extend(reply.output_messages("deadLetter"));
        }
        drained
    }

    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        let (status, _, body) = raw_request(self.port, request.as_bytes());
        (status, body)
    }

    /// Waits (up to 5 s) for the log reader to see `needle` on stdout.
    pub fn stdout_contains(&self, needle: &str) -> bool {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if self.stdout().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Reprocess calls the emulated Graph received, direct or as `$batch` sub-requests.
    pub fn graph_posts(&self) -> Vec<reprocess_handler::emulator::LoggedRequest> {
        let requests = self.emulator.state.graph_requests();
        requests
            .into_iter()
            .filter(|r| r.method == "POST" && r.path_and_query.ends_with("/reprocess"))
            .collect()
    }

    /// `$batch` HTTP requests the emulated Graph received.
    pub fn graph_batches(&self) -> Vec<reprocess_handler::emulator::LoggedRequest> {
        let requests = self.emulator.state.graph_requests();
        requests
            .into_iter()
            .filter(|r| r.path_and_query.ends_with("/$batch"))
            .collect()
    }

    /// No token and no identity header ever reaches stdout or stderr.
    pub fn assert_no_secrets_logged(&self) {
        // Give the log reader threads a moment to drain.
        std::thread::sleep(Duration::from_millis(50));
        let output = format!("{}\n{}", self.stdout(), self.stderr());
        for token in self.emulator.state.issued_tokens() {
            assert!(!output.contains(&token), "a token was logged");
        }
        assert!(
            !output.contains(&self.emulator.state.identity_header),
            "the identity header was logged"
        );
        assert!(
            !output.to_ascii_lowercase().contains("bearer "),
            "an Authorization header was logged"
        );
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal HTTP/1.1 client: the request bytes go out exactly as given.
pub fn raw_request(port: u16, request: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    stream.write_all(request).expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/host/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture exists")
}
