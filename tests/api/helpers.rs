//! Spawns the real binary the way the Functions host does (environment, loopback port, envelopes over
//! chunked HTTP/1.1 with the host's headers) against the emulated tenant, through
//! `reprocess_emulator::host_client`. `REPROCESS_HANDLER_BIN` names a prebuilt binary to test
//! instead of the one cargo built.

use reprocess_emulator::host::{HttpCall, QueueMessageMeta, http_envelope, queue_envelope};
// Function names as the deployment's function.json folders spell them (read at build time).
pub use reprocess_emulator::functions::{
    FUNCTION_OPERATIONS as OPERATIONS_FUNCTION, FUNCTION_OPERATIONS_CLEANUP as CLEANUP_FUNCTION,
    FUNCTION_REPROCESS as HTTP_FUNCTION, FUNCTION_REPROCESS_ALERT as ALERT_FUNCTION,
    FUNCTION_REPROCESS_QUEUE as QUEUE_FUNCTION,
};
pub use reprocess_emulator::host_client::HostReply;
use reprocess_emulator::host_client::{HandlerProcess, Readiness, handler_binary};
use reprocess_emulator::{Emulator, EmulatorState, sample};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The binary under test: `$REPROCESS_HANDLER_BIN`, else the one cargo built.
pub fn binary() -> PathBuf {
    handler_binary(env!("CARGO_BIN_EXE_reprocess-handler"))
}

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
    pub emulator: Emulator,
    pub handler: HandlerProcess,
}

/// Assertions on a reply: the tests fail when it breaks the protocol.
pub trait ReplyExt {
    /// `Outputs.res` decoded the way the host does: status string, headers, string body holding JSON.
    fn res(&self) -> (u16, Value, Value);
    /// A queue output binding's messages, each parsed as JSON.
    fn output_messages(&self, binding: &str) -> Vec<Value>;
}

impl ReplyExt for HostReply {
    fn res(&self) -> (u16, Value, Value) {
        let res = &self.json["Outputs"]["res"];
        let status = res["statusCode"]
            .as_str()
            .expect("statusCode is a string")
            .parse()
            .expect("numeric status");
        let body = serde_json::from_str(res["body"].as_str().expect("body is a string")).expect("body is JSON");
        (status, res["headers"].clone(), body)
    }

    fn output_messages(&self, binding: &str) -> Vec<Value> {
        self.queue_output(binding)
            .unwrap_or_else(|e| panic!("{e:#}"))
            .iter()
            .map(|m| serde_json::from_str(m).expect("message is JSON"))
            .collect()
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
    let handler =
        HandlerProcess::start(&binary(), &emulator, Readiness::LoggedPort, env).unwrap_or_else(|e| panic!("{e:#}"));
    TestApp { emulator, handler }
}

impl TestApp {
    /// POSTs an envelope exactly as `DefaultHttpWorkerService` does: host headers, chunked body.
    pub fn invoke(&self, function: &str, envelope: &[u8]) -> HostReply {
        self.handler
            .invoke(function, envelope)
            .unwrap_or_else(|e| panic!("{e:#}"))
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

    /// GETs a status URL the handler gave out (`Location`, `statusUrl`, `nextLink`) through the emulated
    /// host's routing of `operations/{correlationId}`.
    pub fn get_status(&self, url: &str) -> HostReply {
        let call = HttpCall::get_status_url(url).unwrap_or_else(|| panic!("not a status URL: {url}"));
        self.invoke(
            OPERATIONS_FUNCTION,
            http_envelope(OPERATIONS_FUNCTION, "req", &call).as_bytes(),
        )
    }

    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        self.handler.get(path).unwrap_or_else(|e| panic!("{e:#}"))
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
        self.handler.stdout()
    }

    pub fn stderr(&self) -> String {
        self.handler.stderr()
    }

    /// Reprocess calls the emulated Graph received, direct or as `$batch` sub-requests.
    pub fn graph_posts(&self) -> Vec<reprocess_emulator::LoggedRequest> {
        let requests = self.emulator.state.graph_requests();
        requests
            .into_iter()
            .filter(|r| r.method == "POST" && r.path_and_query.ends_with("/reprocess"))
            .collect()
    }

    /// `$batch` HTTP requests the emulated Graph received.
    pub fn graph_batches(&self) -> Vec<reprocess_emulator::LoggedRequest> {
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

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/host/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture exists")
}

/// A tenant with `count` delivered assignments of the `series` (IDs from `generated_id`), and those IDs.
pub fn delivered_tenant(series: u32, count: usize) -> (EmulatorState, Vec<String>) {
    let mut tenant = reprocess_emulator::Tenant::default();
    tenant.add_generated_delivered(series, count, sample::PACKAGE_SALES, sample::USER_ADELE);
    (
        EmulatorState::new(tenant),
        (0..count)
            .map(|i| reprocess_emulator::tenant::generated_id(series, i))
            .collect(),
    )
}
