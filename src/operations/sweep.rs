//! Deleting expired operations. Table Storage has no time-to-live, so [`OperationStore::start`] also
//! writes an index row in the partition `_expiry` (RowKey `<expiresAt>|<correlationId>`, RFC 3339 sorts as
//! text), and the timer function `function-operations-cleanup` calls [`OperationStore::sweep`]: every
//! index row older than now names an operation whose rows are deleted (unless that operation's own
//! `expiresAt` is later: the ID was used again after its first operation was deleted, and the index row
//! belongs to the earlier one), the index row last, so a sweep cut short by its budget resumes next time.

use super::{OP_ROW, OperationStore, key, partition};
use crate::domain::CorrelationId;
use crate::storage::{Entity, Filter, StorageError, UpsertMode};
use futures_util::StreamExt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;

/// The partition of the expiry index (a correlation ID has no `_`, so it is never an operation's).
pub(crate) const EXPIRY_PARTITION: &str = "_expiry";

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    pub operations: usize,
    pub rows: usize,
    /// The budget ran out with expired operations left (the next sweep continues).
    pub unfinished: bool,
}

pub(crate) fn expiry_row(expires_at: &str, op: &CorrelationId) -> Entity {
    Entity::new(key(EXPIRY_PARTITION), key(&format!("{expires_at}|{op}"))).with("correlationId", op.as_str())
}

impl OperationStore {
    /// Deletes operations whose retention has passed, until `deadline`.
    pub async fn sweep(&self, deadline: Instant) -> Result<Swept, StorageError> {
        let table = self.table().await?;
        let now = crate::message::rfc3339(OffsetDateTime::now_utc());
        let index = Filter::partition(&key(EXPIRY_PARTITION)).and_row_key_lt(&format!("{now}|"))?;
        let mut swept = Swept::default();
        for entry in self.client.query_all(table, &index).await? {
            if Instant::now() >= deadline {
                swept.unfinished = true;
                break;
            }
            let op = entry.str("correlationId").and_then(CorrelationId::parse);
            if let Some(op) = op {
                let pk = partition(&op);
                let header = self.client.get(table, &pk, &key(OP_ROW)).await?;
                let still_kept = header
                    .as_ref()
                    .and_then(|h| h.str("expiresAt"))
                    .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                    .is_some_and(|t| t > OffsetDateTime::now_utc());
                if !still_kept {
                    let rows = self.client.query_all(table, &Filter::partition(&pk)).await?;
                    let count = rows.len();
                    let deletes = futures_util::stream::iter(
                        rows.iter()
                            .map(|row| self.client.delete(table, &row.partition_key, &row.row_key)),
                    )
                    .buffer_unordered(8)
                    .collect::<Vec<_>>()
                    .await;
                    for deleted in deletes {
                        deleted?;
                    }
                    swept.operations += 1;
                    swept.rows += count;
                }
            }
            self.client.delete(table, &entry.partition_key, &entry.row_key).await?;
        }
        Ok(swept)
    }

    /// Writes the expiry index row of an operation (part of [`OperationStore::start`]).
    pub(crate) async fn index_expiry(&self, op: &CorrelationId, expires_at: &str) -> Result<(), StorageError> {
        let table = self.table().await?;
        self.client
            .upsert(table, &expiry_row(expires_at, op), UpsertMode::Replace)
            .await
    }
}
