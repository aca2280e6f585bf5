//! An emulated tenant on loopback: Microsoft Graph's entitlement-management reprocess endpoints and the
//! App Service managed-identity token endpoint, behaving like the real services (status codes, error
//! bodies, `request-id`, `Retry-After`, identity-header check, token audience and expiry). The sandbox,
//! the integration tests and the benchmark use this one implementation.
//!
//! The host's side lives here too: [`functions`] is the deployment's function table (read from its
//! `function.json` folders at build time), [`host`] builds the envelopes the Functions host sends,
//! [`host_client`] starts the handler binary and drives it as the host and the Storage queue do, and
//! [`sandbox`] is the `reprocess-handler sandbox` command.
//!
//! Independent of the handler's library on purpose: the fakes behave like the real services, not like
//! the code under test, and the handler's binary can depend on this crate for `sandbox` (in builds with
//! its default `emulator` feature; the deployed package is built without it).

mod answer;
pub mod azurite;
pub mod directory;
mod directory_api;
pub mod faults;
pub mod functions;
mod graph;
pub mod guid;
pub mod host;
pub mod host_client;
mod identity;
mod items;
mod list;
mod queue;
mod reset_proxy;
pub mod sandbox;
pub mod series;
pub mod table_front;
pub mod tenant;

pub use faults::Fault;
pub use tenant::{Tenant, sample};

use actix_web::{App, HttpServer, web};
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the emulated Graph received, as it arrived (path and query undecoded).
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    /// A `$batch` sub-request (logged as it is answered, before its batch's own entry).
    pub batched: bool,
    pub method: String,
    pub path_and_query: String,
    pub client_request_id: Option<String>,
    pub had_authorization: bool,
    pub content_length: Option<String>,
    pub status: u16,
    pub at: std::time::Instant,
    /// Which issued token it carried, numbered in the order tokens were issued from 0 (`None` without a
    /// known token). Each handler process fetches its own token, so this tells apart the processes
    /// sharing one emulator.
    pub token: Option<usize>,
    /// The request's `x-ms-throttle-priority` (a sub-request carries its batch's).
    pub priority: Option<String>,
    /// The `Retry-After` (seconds) Graph answered with: the request may not be sent again sooner.
    pub retry_after: Option<u64>,
}

#[derive(Debug)]
pub struct EmulatorState {
    pub tenant: Mutex<Tenant>,
    /// The `IDENTITY_HEADER` secret the token endpoint requires in `X-IDENTITY-HEADER`.
    pub identity_header: String,
    /// Client IDs of user-assigned identities attached to the emulated Function App.
    pub user_assigned_client_ids: Vec<String>,
    /// Whether the identity holds `EntitlementManagement.ReadWrite.All`.
    pub app_role_granted: Mutex<bool>,
    pub token_lifetime: Duration,
    pub faults: faults::FaultPlan,
    /// Added before every Graph answer (a `$batch` counts once).
    pub latency: Duration,
    /// Share (0..1) of Graph requests answered with a TCP reset instead of a response.
    pub reset_share: f64,
    pub(crate) resets: AtomicUsize,
    /// Graph's token bucket: `(requests per second, burst)`; past it, 429 + `Retry-After`.
    pub throttle: Option<Mutex<faults::TokenBucket>>,
    /// Whether answers carry Graph's throttling signals (`x-ms-resource-unit`,
    /// `x-ms-throttle-limit-percentage`, and `x-ms-throttle-scope` / `-information` on 429s), as the
    /// identity services document; off to check a caller copes without them.
    pub throttle_signals: bool,
    /// Items per list page when the caller sends no smaller `$top` (Graph's default varies by API).
    page_size: AtomicUsize,
    /// When set, `@odata.nextLink`s point at this origin instead of the emulator (to test that the
    /// handler refuses to follow a link off the Graph origin).
    next_link_origin: Mutex<Option<String>>,
    /// Token → (audience, expiry, serial in issue order).
    issued_tokens: Mutex<HashMap<String, (String, time::OffsetDateTime, usize)>>,
    tokens_issued: AtomicUsize,
    graph_log: Mutex<Vec<LoggedRequest>>,
    token_fetches: AtomicUsize,
    /// When set, the token endpoint accepts connections and never answers (a hung identity endpoint).
    token_hangs: std::sync::atomic::AtomicBool,
    base_url: Mutex<String>,
    /// The Table service (Azurite) behind the bearer-token front, and its account key.
    table_upstream: Mutex<Option<(String, table_front::AccountKey)>>,
    /// Table requests the front forwarded (a valid Storage token) and refused.
    storage_requests: AtomicUsize,
    storage_refusals: AtomicUsize,
}

impl EmulatorState {
    pub fn new(tenant: Tenant) -> Self {
        Self {
            tenant: Mutex::new(tenant),
            identity_header: format!("emulated-identity-header-{}", fastrand::u64(..)),
            user_assigned_client_ids: vec![sample::USER_ASSIGNED_CLIENT_ID.into()],
            app_role_granted: Mutex::new(true),
            token_lifetime: Duration::from_secs(3600),
            faults: faults::FaultPlan::default(),
            latency: Duration::ZERO,
            reset_share: 0.0,
            resets: AtomicUsize::new(0),
            throttle: None,
            throttle_signals: true,
            page_size: AtomicUsize::new(100),
            next_link_origin: Mutex::new(None),
            issued_tokens: Mutex::new(HashMap::new()),
            tokens_issued: AtomicUsize::new(0),
            graph_log: Mutex::new(Vec::new()),
            token_fetches: AtomicUsize::new(0),
            token_hangs: std::sync::atomic::AtomicBool::new(false),
            base_url: Mutex::new(String::new()),
            table_upstream: Mutex::new(None),
            storage_requests: AtomicUsize::new(0),
            storage_refusals: AtomicUsize::new(0),
        }
    }

    /// Puts a Table service (e.g. Azurite's `http://127.0.0.1:<port>`, no path) with its account key
    /// behind the emulator's bearer-token front at `<base_url>/devstoreaccount1`.
    pub fn set_table_upstream(&self, origin: &str, account_key_base64: &str) {
        let key = table_front::AccountKey::parse(account_key_base64).expect("a base64 account key");
        *self.table_upstream.lock().expect("upstream lock") = Some((origin.to_owned(), key));
    }

    /// Table requests forwarded with a valid Storage token, and refused ones.
    pub fn storage_requests(&self) -> (usize, usize) {
        (
            self.storage_requests.load(Ordering::SeqCst),
            self.storage_refusals.load(Ordering::SeqCst),
        )
    }

    pub fn graph_requests(&self) -> Vec<LoggedRequest> {
        self.graph_log.lock().expect("log lock").clone()
    }

    pub fn token_fetches(&self) -> usize {
        self.token_fetches.load(Ordering::SeqCst)
    }

    /// Makes the token endpoint hang (accept, then never answer) or answer again.
    pub fn set_token_hangs(&self, hangs: bool) {
        self.token_hangs.store(hangs, Ordering::SeqCst);
    }

    pub fn token_hangs(&self) -> bool {
        self.token_hangs.load(Ordering::SeqCst)
    }

    pub fn set_app_role_granted(&self, granted: bool) {
        *self.app_role_granted.lock().expect("role lock") = granted;
    }

    /// Every access token the emulator handed out (tests assert none of them leaks into logs).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.issued_tokens.lock().expect("token lock").keys().cloned().collect()
    }

    /// Adds a token-bucket throttle of `rate` requests per second with `burst` capacity.
    pub fn with_throttle(mut self, rate: f64, burst: f64) -> Self {
        self.throttle = Some(Mutex::new(faults::TokenBucket::new(rate, burst)));
        self
    }

    /// Answers without Graph's throttling signals (only `Retry-After` on 429s).
    pub fn without_throttle_signals(mut self) -> Self {
        self.throttle_signals = false;
        self
    }

    /// The headers Graph's identity services put on an answer: the resource unit, and the share of the
    /// limit in use once it reaches 0.8 (`concepts/throttling-limits.md`, identity and access service
    /// limits). Only with a throttle (a limit to report on) and signals on.
    pub(crate) fn usage_headers(&self) -> Vec<(&'static str, String)> {
        let Some(bucket) = self.throttle.as_ref().filter(|_| self.throttle_signals) else {
            return Vec::new();
        };
        let usage = bucket.lock().expect("bucket lock").usage();
        let mut headers = vec![("x-ms-resource-unit", "1".to_owned())];
        if usage >= 0.8 {
            headers.push(("x-ms-throttle-limit-percentage", format!("{:.1}", usage.min(1.8))));
        }
        headers
    }

    /// The headers of a 429 for the caller's own limit: its scope and reason.
    pub(crate) fn own_limit_headers(&self) -> Vec<(&'static str, String)> {
        if !self.throttle_signals {
            return Vec::new();
        }
        vec![
            (
                "x-ms-throttle-scope",
                format!(
                    "Tenant_Application/ReadWrite/{}/{}",
                    sample::EMULATED_APP_ID,
                    sample::EMULATED_TENANT_ID
                ),
            ),
            ("x-ms-throttle-information", "ResourceUnitLimitExceeded".to_owned()),
        ]
    }

    /// Connection resets for `share` of Graph requests (through a relay in front of the emulator).
    pub fn with_resets(mut self, share: f64) -> Self {
        self.reset_share = share;
        self
    }

    pub fn resets(&self) -> usize {
        self.resets.load(Ordering::SeqCst)
    }

    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Takes one token from the throttle, or says how many seconds until one is free.
    pub(crate) fn take_throttle_token(&self) -> Result<(), u64> {
        match &self.throttle {
            Some(bucket) => bucket.lock().expect("bucket lock").take(),
            None => Ok(()),
        }
    }

    /// Issues a Graph token for `resource` as Entra would for a developer signed in to the Azure CLI
    /// (tests hand it to a fake `az`).
    pub fn issue_token(&self, resource: &str) -> String {
        let token = format!("eyJ0eXAiOiJKV1Qi.emulated-cli.{}", crate::guid::random());
        let expires = time::OffsetDateTime::now_utc() + self.token_lifetime;
        self.record_token(&token, resource, expires);
        token
    }

    /// Remembers an issued token for `resource` (its audience) until `expires`, with the next serial.
    pub(crate) fn record_token(&self, token: &str, resource: &str, expires: time::OffsetDateTime) {
        let audience = resource.trim_end_matches('/').to_owned();
        let serial = self.tokens_issued.fetch_add(1, Ordering::SeqCst);
        self.issued_tokens
            .lock()
            .expect("token lock")
            .insert(token.to_owned(), (audience, expires, serial));
    }

    /// The serial of the issued token in an `Authorization: Bearer` value, if it is one.
    pub(crate) fn token_serial(&self, authorization: Option<&str>) -> Option<usize> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        self.issued_tokens.lock().expect("token lock").get(token).map(|t| t.2)
    }

    /// Forgets every issued token: Graph then answers 401 as for a revoked or foreign token.
    pub fn revoke_tokens(&self) {
        self.issued_tokens.lock().expect("token lock").clear();
    }

    pub fn set_page_size(&self, size: usize) {
        self.page_size.store(size.max(1), Ordering::SeqCst);
    }

    pub fn page_size(&self) -> usize {
        self.page_size.load(Ordering::SeqCst)
    }

    pub fn set_next_link_origin(&self, origin: Option<&str>) {
        *self.next_link_origin.lock().expect("origin lock") = origin.map(str::to_owned);
    }

    /// Origin written into `@odata.nextLink`: the emulator's own unless overridden.
    pub fn next_link_origin(&self) -> String {
        self.next_link_origin
            .lock()
            .expect("origin lock")
            .clone()
            .unwrap_or_else(|| self.base_url())
    }

    /// Requests the emulated Graph received with this method.
    pub fn graph_requests_with(&self, method: &str) -> Vec<LoggedRequest> {
        self.graph_requests()
            .into_iter()
            .filter(|r| r.method == method)
            .collect()
    }

    /// GETs sent on their own, not inside a `$batch`: list pages (item reads go in batches).
    pub fn unbatched_gets(&self) -> usize {
        self.graph_requests_with("GET").iter().filter(|r| !r.batched).count()
    }

    pub fn base_url(&self) -> String {
        self.base_url.lock().expect("url lock").clone()
    }
}

/// A running emulator. Dropping it leaves the server running until the process ends.
#[derive(Debug, Clone)]
pub struct Emulator {
    pub state: Arc<EmulatorState>,
    pub base_url: String,
}

impl Emulator {
    /// Graph root to put in `GRAPH_BASE_URL`.
    pub fn graph_base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Value for `IDENTITY_ENDPOINT` (App Service managed identity).
    pub fn identity_endpoint(&self) -> String {
        format!("{}/msi/token", self.base_url)
    }

    /// Starts on a free loopback port in a thread of its own (its own actix runtime).
    pub fn start(state: EmulatorState) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        Self::start_on(listener, state)
    }

    pub fn start_on(listener: TcpListener, state: EmulatorState) -> std::io::Result<Self> {
        let base_url = format!("http://{}", listener.local_addr()?);
        *state.base_url.lock().expect("url lock") = base_url.clone();
        let state = Arc::new(state);
        let server_state = Arc::clone(&state);
        // With resets, the public port is the relay and the server listens on a private one.
        let (listener, relay) = if state.reset_share > 0.0 {
            let private = TcpListener::bind(("127.0.0.1", 0))?;
            let upstream = private.local_addr()?;
            (private, Some((listener, upstream)))
        } else {
            (listener, None)
        };
        let relay_state = Arc::clone(&state);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new().name("emulator".into()).spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let data = web::Data::from(server_state);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .route("/msi/token", web::get().to(identity::token))
                        .service(web::scope("/devstoreaccount1").default_service(web::to(table_front::forward)))
                        .configure(graph::routes)
                })
                .workers(2)
                .disable_signals()
                .listen(listener);
                match server {
                    Ok(server) => {
                        let server = server.run();
                        if let Some((public, upstream)) = relay {
                            actix_web::rt::spawn(reset_proxy::run(public, upstream, relay_state));
                        }
                        let _ = ready_tx.send(Ok(()));
                        let _ = server.await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })?;
        ready_rx.recv().map_err(std::io::Error::other)??;
        Ok(Self { state, base_url })
    }
}

#[cfg(test)]
mod throttle_signal_tests {
    use super::*;

    #[test]
    fn answers_carry_the_share_of_the_limit_from_eight_tenths_and_the_scope_of_an_own_limit_429() {
        let state = EmulatorState::new(Tenant::default()).with_throttle(10.0, 10.0);
        assert_eq!(state.usage_headers(), [("x-ms-resource-unit", "1".to_owned())]);
        for _ in 0..9 {
            let _ = state.take_throttle_token();
        }
        let headers = state.usage_headers();
        assert!(
            headers.contains(&("x-ms-throttle-limit-percentage", "0.9".to_owned())),
            "{headers:?}"
        );
        let own = state.own_limit_headers();
        assert!(
            own.iter()
                .any(|(n, v)| *n == "x-ms-throttle-information" && v == "ResourceUnitLimitExceeded")
        );
        assert!(
            own.iter()
                .any(|(n, v)| *n == "x-ms-throttle-scope" && v.starts_with("Tenant_Application/ReadWrite/"))
        );
        let quiet = EmulatorState::new(Tenant::default())
            .with_throttle(10.0, 10.0)
            .without_throttle_signals();
        assert!(quiet.usage_headers().is_empty() && quiet.own_limit_headers().is_empty());
        assert!(
            EmulatorState::new(Tenant::default()).usage_headers().is_empty(),
            "no limit, nothing to report"
        );
    }
}
