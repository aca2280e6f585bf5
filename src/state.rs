//! What every invocation shares: the settings and the Graph services. Building the services loads the
//! system's TLS roots (hundreds of files, milliseconds), so `startup` builds them on a thread of its own
//! while the server already answers the host's readiness probe; invocations that arrive first wait.

use crate::config::Settings;
use crate::graph::{GraphClient, Limiter, TokenProvider};
use crate::operations::OperationStore;
use crate::reprocess::Reprocessor;
use std::sync::{Arc, OnceLock};
use tokio::sync::Notify;

/// What talks to Graph.
#[derive(Debug)]
pub struct Services {
    pub reprocessor: Reprocessor,
    /// For reads (listing, dry runs); shares the limiter and token cache with the reprocessor.
    pub graph: Arc<GraphClient>,
    /// Operation state in the app's storage account; `None` when no storage is configured.
    pub operations: Option<OperationStore>,
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
        let tokens = TokenProvider::from_settings(settings)?;
        let table_client = crate::storage::client_sharing(settings, Some(&tokens))?;
        let limiter = Arc::new(Limiter::new(settings.graph.max_concurrency));
        let graph = Arc::new(GraphClient::new(&settings.graph, tokens, limiter)?);
        let reprocessor = Reprocessor::new(Arc::clone(&graph), settings.graph.max_concurrency);
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
            operations,
        })
    }
}

#[derive(Debug)]
pub struct AppState {
    pub settings: Settings,
    services: OnceLock<Services>,
    services_ready: Notify,
}

impl AppState {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            services: OnceLock::new(),
            services_ready: Notify::new(),
        }
    }

    /// Hands over the built services and wakes every invocation waiting for them.
    pub fn services_built(&self, services: Services) {
        let _ = self.services.set(services);
        self.services_ready.notify_waiters();
    }

    /// The Graph services, waiting for start-up to finish building them.
    pub async fn services(&self) -> &Services {
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
