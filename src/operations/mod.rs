//! The state of asynchronous operations: what every queue invocation of an operation did, in
//! the Function App's own storage account (Table Storage through [`crate::storage`]), so any instance can
//! answer `GET /api/operations/{correlationId}`.
//!
//! One partition per operation (PartitionKey = the correlation ID), rows by prefix:
//! - `op` — created, expires, source, number of scopes (packages/users);
//! - `m|<messageKey>` — one per queue message of the operation: `pending`, `done` or `superseded`, with
//!   its parent's key;
//! - `r|<id>` — the latest result of each assignment/request ID (the per-ID JSON callers see);
//! - `d|<id>` — each dead-lettered ID or listing scope, with the reason;
//! - `l|<messageKey>` — each listed page: scope and IDs found.
//!
//! **Completion rule.** Every message of a tracked operation carries a `messageKey`. Whoever enqueues a
//! message writes its `m|` row as `pending` *before* the message can exist (the HTTP/alert function
//! before it returns its outputs; the host writes queue outputs only after the invocation succeeded).
//! A queue invocation records its results, dead letters and listing page, writes `pending` rows for the
//! messages it enqueues, marks any older child of its own that it no longer enqueues as `superseded`,
//! and only then marks its own row `done`. So an operation is **finished when no `pending` row
//! remains**: at every moment, each message that still exists or may still be written has a pending row.
//!
//! Keys are deterministic — a child's key is SHA-256 of its parent's key and its position among the
//! parent's outputs ([`MessageKey::derive`]) — so a redelivered message (the host retries an invocation
//! that failed or crashed, with the same text) rewrites the same rows instead of adding new ones, and
//! its outputs (which the host writes again) carry the same keys. If storage cannot be written, the
//! invocation fails and the host retries the message: the state never claims more than was done.
//!
//! A transient result never overwrites a final one (`insert`, not `upsert`), so a late redelivery of an
//! earlier attempt cannot turn `accepted` back into `transient`.

mod record;
mod status;
mod sweep;

pub use record::{DeadEntry, ListedPage, Recorded, Started};
pub use status::{ListingProgress, OperationView, RESULTS_PAGE_SIZE, StatusKind};
pub use sweep::Swept;

use crate::domain::{CorrelationId, MessageKey};
use crate::storage::{StorageError, TableClient, TableKey, TableName};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// How long an operation's records are kept (and answered) after it was created: the default of
/// `OPERATIONS_RETENTION_DAYS`.
pub const DEFAULT_RETENTION_DAYS: u64 = 7;

pub(crate) const OP_ROW: &str = "op";
pub(crate) const MESSAGE_ROWS: &str = "m|";
pub(crate) const RESULT_ROWS: &str = "r|";
pub(crate) const DEAD_ROWS: &str = "d|";
pub(crate) const LISTING_ROWS: &str = "l|";

pub(crate) const PENDING: &str = "pending";
pub(crate) const DONE: &str = "done";
pub(crate) const SUPERSEDED: &str = "superseded";

/// The operations table of the app's storage account.
#[derive(Debug)]
pub struct OperationStore {
    client: Arc<TableClient>,
    table: TableName,
    retention: Duration,
    page_size: usize,
    table_ready: tokio::sync::OnceCell<()>,
}

pub(crate) fn key(text: &str) -> TableKey {
    TableKey::parse(text).expect("operation row keys are built from checked parts")
}

pub(crate) fn partition(op: &CorrelationId) -> TableKey {
    // A correlation ID is 1-64 letters, digits and hyphens: always a valid key.
    key(op.as_str())
}

pub(crate) fn message_row(k: &MessageKey) -> TableKey {
    key(&format!("{MESSAGE_ROWS}{k}"))
}

pub(crate) fn now_text() -> String {
    crate::message::rfc3339(OffsetDateTime::now_utc())
}

impl OperationStore {
    pub fn new(client: Arc<TableClient>, table: TableName, retention: Duration, page_size: usize) -> Self {
        Self {
            client,
            table,
            retention,
            page_size: page_size.clamp(1, RESULTS_PAGE_SIZE),
            table_ready: tokio::sync::OnceCell::new(),
        }
    }

    pub fn retention(&self) -> Duration {
        self.retention
    }

    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// Creates the table once per process (409 `TableAlreadyExists` is fine; Bicep creates it in Azure).
    async fn table(&self) -> Result<&TableName, StorageError> {
        self.table_ready
            .get_or_try_init(|| async { self.client.create_table(&self.table).await.map(|_| ()) })
            .await?;
        Ok(&self.table)
    }
}
