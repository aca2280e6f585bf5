//! What every invocation shares: the settings and the Graph services. Building the services loads the
//! system's TLS roots (hundreds of files, milliseconds), so `startup` builds them on a thread of its own,
//! once the host's first readiness probe (or invocation) has arrived, or 50 ms after start at the latest:
//! the readiness answer does not share two cores with that work. Invocations that arrive first wait.

use crate::audit::Recorder;
use crate::config::Settings;
use crate::graph::{GraphClient, Limiter, TokenProvider};
use crate::operations::OperationStore;
use crate::reprocess::Reprocessor;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;

/// What talks to Graph.
#[derive(Debug)]
pub struct Services {
    pub reprocessor: Reprocessor,
    /// For reads (listing, dry runs); shares the limiter and token cache with the reprocessor.
    pub graph: Arc<GraphClient>,
    /// The same, sending `x-ms-throttle-priority: low`: for work nobody waits on (queue messages, the
    /// heal timer), so that when Graph throttles, it throttles these before synchronous calls.
    pub background: Background,
    /// Audit records: the log, and the durable sink when one is configured.
    pub recorder: Recorder,
    /// Operation state in the app's storage account; `None` when no storage is configured.
    pub operations: Option<OperationStore>,
}

/// Graph at low priority: the reprocessor and the client for reads.
#[derive(Debug)]
pub struct Background {
    pub reprocessor: Reprocessor,
    pub graph: Arc<GraphClient>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error(transparent)]
    Credential(#[from] crate::graph::CredentialError),
    #[error(transparent)]
    Client(#[from] crate::graph::ClientError),
    #[error("operation state storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
}

impl Services {
    pub fn build(settings: &Settings) -> Result<Self, ServicesError> {
        Self::build_with_audit_sink(settings, None)
    }

    /// `audit_sink`: where audit records go besides the log; `None` = what the settings name.
    pub fn build_with_audit_sink(
        settings: &Settings,
        audit_sink: Option<Arc<dyn crate::audit::sink::AuditSink>>,
    ) -> Result<Self, ServicesError> {
        let tokens = TokenProvider::from_settings(settings)?;
        let table_client = match &settings.storage {
            Some(storage) => Some(crate::storage::client(storage, &tokens)?),
            None => None,
        };
        let limiter = Arc::new(Limiter::new(settings.graph.max_concurrency));
        let graph = Arc::new(GraphClient::new(&settings.graph, tokens, limiter)?);
        let reprocessor = Reprocessor::new(Arc::clone(&graph), settings.graph.max_concurrency);
        let background_graph = Arc::new(graph.background());
        let background = Background {
            reprocessor: Reprocessor::new(Arc::clone(&background_graph), settings.graph.max_concurrency),
            graph: background_graph,
        };
        // One Table client (one connection pool, one token cache) for audit records and operation state.
        let table_client = table_client.map(Arc::new);
        let recorder =
            Recorder::new(audit_sink.or_else(|| crate::audit::sink::for_client(settings, table_client.clone())));
        let operations = table_client.map(|client| {
            OperationStore::new(
                client,
                settings.operations_table.clone(),
                settings.operations_retention,
                settings.operations_page_size,
            )
        });
        Ok(Self {
            reprocessor,
            graph,
            background,
            recorder,
            operations,
        })
    }
}

/// Longest the services wait for the first readiness probe or invocation before they are built anyway.
const BUILD_AT_THE_LATEST: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub struct AppState {
    pub settings: Settings,
    services: OnceLock<Services>,
    services_ready: Notify,
    /// Set by the first readiness probe or invocation: the services are wanted now.
    wanted: (Mutex<bool>, Condvar),
}

impl AppState {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            services: OnceLock::new(),
            services_ready: Notify::new(),
            wanted: (Mutex::new(false), Condvar::new()),
        }
    }

    /// Asks for the services to be built now (the host has seen the process ready, or sent work).
    pub fn want_services(&self) {
        let (wanted, changed) = &self.wanted;
        let mut wanted = wanted.lock().expect("wanted lock");
        if !*wanted {
            *wanted = true;
            changed.notify_all();
        }
    }

    /// Blocks the start-up thread until the services are wanted, or [`BUILD_AT_THE_LATEST`]: on two
    /// cores, loading the TLS roots beside the first readiness answer would delay that answer.
    pub fn wait_until_services_wanted(&self) {
        let (wanted, changed) = &self.wanted;
        let guard = wanted.lock().expect("wanted lock");
        let _ = changed
            .wait_timeout_while(guard, BUILD_AT_THE_LATEST, |wanted| !*wanted)
            .expect("wanted lock");
    }

    /// Hands over the built services and wakes every invocation waiting for them.
    pub fn services_built(&self, services: Services) {
        let _ = self.services.set(services);
        self.services_ready.notify_waiters();
        release_freed_memory();
    }

    /// The Graph services, waiting for start-up to finish building them.
    pub async fn services(&self) -> &Services {
        self.want_services();
        loop {
            if let Some(services) = self.services.get() {
                return services;
            }
            let ready = self.services_ready.notified();
            if let Some(services) = self.services.get() {
                return services;
            }
            ready.await;
        }
    }
}

/// Loading the TLS roots parses hundreds of certificates into short-lived buffers; glibc keeps what they
/// freed in its heap. Handing it back once, after start-up, keeps an idle instance small. (musl's
/// allocator, in the deployed static build, returns freed memory by itself.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_freed_memory() {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> std::os::raw::c_int;
    }
    // SAFETY: malloc_trim only releases free heap pages back to the OS; it takes no pointers.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_freed_memory() {}
