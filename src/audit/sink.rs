//! The durable audit sink: where records go to outlive log retention. Writing is best effort: the
//! [`super::Recorder`] calls it in the background and only logs a failure.
//!
//! [`TableSink`] writes one entity per record to a table (`AUDIT_TABLE_NAME`, default `reprocessaudit`)
//! in the app's storage account, through `crate::storage` (managed identity in Azure, the account key
//! with Azurite): PartitionKey = the record's UTC day (`2026-12-02`), RowKey = its time of day then a
//! random GUID (`05:30:12.345Z~<guid>`), so a day's records list in time order and never collide. The
//! entity's other properties are the record's fields, as in the log (`docs/audit.md`).

use super::AuditRecord;
use crate::domain::Guid;
use crate::storage::{Entity, TableClient, TableKey, TableName};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// A place audit records are kept.
pub trait AuditSink: Send + Sync + std::fmt::Debug {
    /// Stores the records (in any order); `Err` says why some were not stored.
    fn write(&self, records: Vec<AuditRecord>) -> BoxFuture<'static, Result<(), SinkError>>;
}

/// Inserts written at once per batch of records.
const CONCURRENT_INSERTS: usize = 8;

#[derive(Debug)]
pub struct TableSink {
    client: Arc<TableClient>,
    table: TableName,
    created: Arc<AtomicBool>,
}

impl TableSink {
    pub fn new(client: Arc<TableClient>, table: TableName) -> Self {
        Self {
            client,
            table,
            created: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// PartitionKey and RowKey of a record, from its RFC 3339 `time` (`2026-12-02T05:30:12.345Z`).
pub fn keys(record: &AuditRecord) -> Result<(TableKey, TableKey), SinkError> {
    let (day, time) = record
        .time
        .split_once('T')
        .ok_or_else(|| SinkError(format!("an audit time without a date: {}", record.time)))?;
    let pk = TableKey::parse(day).map_err(|e| SinkError(e.to_string()))?;
    let rk = TableKey::parse(&format!("{time}~{}", Guid::new_random())).map_err(|e| SinkError(e.to_string()))?;
    Ok((pk, rk))
}

fn entity(record: &AuditRecord) -> Result<Entity, SinkError> {
    let (pk, rk) = keys(record)?;
    let mut entity = Entity::new(pk, rk);
    if let Value::Object(fields) = serde_json::to_value(record).map_err(|e| SinkError(e.to_string()))? {
        entity.properties = fields;
    }
    Ok(entity)
}

impl AuditSink for TableSink {
    fn write(&self, records: Vec<AuditRecord>) -> BoxFuture<'static, Result<(), SinkError>> {
        let (client, table, created) = (Arc::clone(&self.client), self.table.clone(), Arc::clone(&self.created));
        Box::pin(async move {
            // The template creates the table; creating it here too covers other set-ups. A failure
            // (e.g. a role that may write entities but not create tables) does not stop the inserts.
            let mut create_error = None;
            if !created.load(Ordering::SeqCst) {
                match client.create_table(&table).await {
                    Ok(_) => created.store(true, Ordering::SeqCst),
                    Err(e) => create_error = Some(e.to_string()),
                }
            }
            let total = records.len();
            let failures: Vec<String> = futures_util::stream::iter(records)
                .map(|record| {
                    let (client, table) = (Arc::clone(&client), table.clone());
                    async move {
                        let entity = entity(&record)?;
                        client
                            .insert(&table, &entity)
                            .await
                            .map(|_| ())
                            .map_err(|e| SinkError(e.to_string()))
                    }
                })
                .buffer_unordered(CONCURRENT_INSERTS)
                .filter_map(|r| async move { r.err().map(|e| e.0) })
                .collect()
                .await;
            match failures.first() {
                None => Ok(()),
                Some(first) => Err(SinkError(format!(
                    "{} of {total} records not written to table {table}: {first}{}",
                    failures.len(),
                    create_error
                        .map(|e| format!(" (creating the table failed too: {e})"))
                        .unwrap_or_default()
                ))),
            }
        })
    }
}

/// The durable sink: the audit table (`AUDIT_TABLE_NAME`) through `client`, the Table client of the app's
/// storage account when the host's storage settings are present (`AzureWebJobsStorage…`); else `None`
/// (records go to the log only).
pub fn for_client(settings: &crate::config::Settings, client: Option<Arc<TableClient>>) -> Option<Arc<dyn AuditSink>> {
    let table = match TableName::parse(&settings.audit_table) {
        Ok(table) => table,
        Err(e) => {
            tracing::warn!(error = %e, "AUDIT_TABLE_NAME: audit records go to the log only");
            return None;
        }
    };
    match client {
        Some(client) => Some(Arc::new(TableSink::new(client, table))),
        None => {
            tracing::info!("no storage account configured: audit records go to the log only");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_day_and_a_time_ordered_unique_row() {
        let mut record = crate::audit::tests::record();
        record.time = "2026-12-02T05:30:12.345Z".into();
        let (pk, rk) = keys(&record).unwrap();
        assert_eq!(pk.as_str(), "2026-12-02");
        assert!(rk.as_str().starts_with("05:30:12.345Z~"));
        assert_ne!(keys(&record).unwrap().1, rk);
        record.time = "05:30".into();
        assert!(keys(&record).is_err());
    }
}
