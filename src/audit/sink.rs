//! The durable audit sink: where records go to outlive log retention. Writing is best effort: the
//! [`super::Recorder`] calls it in the background and only logs a failure.
//!
//! [`TableSink`] writes one entity per record to a table (`AUDIT_TABLE_NAME`, default `reprocessaudit`)
//! in the app's storage account, through `crate::storage` (managed identity in Azure, the account key
//! with Azurite): PartitionKey = the record's UTC day (`2026-12-02`), RowKey = its time of day then a
//! random GUID (`05:30:12.345Z~<guid>`), so a day's records list in time order and never collide. The
//! entity's other properties are the record's fields, as in the log (`docs/audit.md`).
//!
//! **Large records.** A string property holds at most 32K UTF-16 characters and an entity at most 1 MiB,
//! but a dry run of `MAX_IDS_PER_CALL` IDs (up to 100,000 of them, ~3.7 million characters) is one record.
//! Nothing is cut: a value longer than [`PIECE_UNITS`] is split into pieces, cut after a comma where
//! there is one, whose concatenation in order is the value. The record's row keeps the first piece under
//! the field's own name and says how many there are in `<field>_parts`; piece `i` (from 1) is the
//! property `<field>_<i>`, on the record's row while it has room ([`ROW_BUDGET`]) and then on
//! continuation rows, whose number the record's row gives in `audit_part_rows`. Continuation row `n`
//! (from 1) is PartitionKey `<day>~parts`, RowKey `<record's RowKey>~<n>` (three digits), with
//! `audit_part_of` = the record's RowKey: a partition of its own, so a day's partition still holds
//! exactly one row per record. They are written before the record's row, so a record that is there has
//! all its pieces.

use super::AuditRecord;
use crate::domain::Guid;
use crate::storage::{Entity, MAX_ENTITY_BYTES, TableClient, TableKey, TableName};
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

/// The longest piece of a split value, in UTF-16 code units (under [`crate::storage::MAX_STRING_UNITS`]).
pub const PIECE_UNITS: usize = 30_000;
/// What one row is filled to ([`Entity::stored_size`]), well under [`MAX_ENTITY_BYTES`] so the property
/// that says how many rows follow always fits too.
pub const ROW_BUDGET: usize = MAX_ENTITY_BYTES - 64 * 1024;
/// The property of the record's row giving its number of continuation rows (when it has any).
pub const PART_ROWS: &str = "audit_part_rows";
/// The property of a continuation row naming its record's RowKey.
pub const PART_OF: &str = "audit_part_of";
/// The suffix of the PartitionKey of continuation rows (`<day>~parts`).
pub const PARTS_PARTITION_SUFFIX: &str = "~parts";

/// `text` in pieces of at most `max_units` UTF-16 code units whose concatenation is `text`; a piece that
/// is not the last ends just after its last comma when it has one, so a list of IDs splits between IDs.
pub fn split_value(text: &str, max_units: usize) -> Vec<&str> {
    let max_units = max_units.max(2);
    let mut pieces = Vec::new();
    let mut rest = text;
    loop {
        let mut units = 0;
        let mut end = rest.len();
        let mut last_comma = None;
        for (at, c) in rest.char_indices() {
            if units + c.len_utf16() > max_units {
                end = at;
                break;
            }
            units += c.len_utf16();
            if c == ',' {
                last_comma = Some(at + 1);
            }
        }
        if end == rest.len() {
            pieces.push(rest);
            return pieces;
        }
        let cut = last_comma.unwrap_or(end);
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
}

/// The rows of one record: its own row (the first), then its continuation rows, if any.
pub fn rows(record: &AuditRecord) -> Result<Vec<Entity>, SinkError> {
    let (pk, rk) = keys(record)?;
    let Value::Object(fields) = serde_json::to_value(record).map_err(|e| SinkError(e.to_string()))? else {
        return Err(SinkError("an audit record that is not an object".into()));
    };
    let mut main = Entity::new(pk.clone(), rk.clone());
    let mut overflow: Vec<(String, String)> = Vec::new();
    for (name, value) in fields {
        match value {
            Value::String(text) if text.encode_utf16().count() > PIECE_UNITS => {
                let pieces = split_value(&text, PIECE_UNITS);
                main.properties
                    .insert(format!("{name}_parts"), Value::from(pieces.len() as u64));
                main.properties.insert(name.clone(), Value::from(pieces[0]));
                overflow.extend(
                    pieces[1..]
                        .iter()
                        .enumerate()
                        .map(|(i, piece)| (format!("{name}_{}", i + 1), (*piece).to_owned())),
                );
            }
            other => {
                main.properties.insert(name, other);
            }
        }
    }
    let mut rows = vec![main];
    let parts_pk =
        TableKey::parse(&format!("{}{PARTS_PARTITION_SUFFIX}", pk.as_str())).map_err(|e| SinkError(e.to_string()))?;
    for (name, piece) in overflow {
        let size = 8 + 2 * name.encode_utf16().count() + 4 + 2 * piece.encode_utf16().count();
        let last = rows.last_mut().expect("the record's row is there");
        if last.stored_size() + size > ROW_BUDGET {
            let n = rows.len();
            let key = TableKey::parse(&format!("{}~{n:03}", rk.as_str())).map_err(|e| SinkError(e.to_string()))?;
            rows.push(Entity::new(parts_pk.clone(), key).with(PART_OF, rk.as_str()));
        }
        let last = rows.last_mut().expect("a row to fill");
        last.properties.insert(name, Value::from(piece));
    }
    if rows.len() > 1 {
        let count = rows.len() - 1;
        rows[0].properties.insert(PART_ROWS.into(), Value::from(count as u64));
    }
    Ok(rows)
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
                        let mut rows = rows(&record)?;
                        // Continuation rows first: a record's row that is there has every piece.
                        let own = rows.remove(0);
                        for row in rows.iter().chain([&own]) {
                            client.insert(&table, row).await.map_err(|e| SinkError(e.to_string()))?;
                        }
                        Ok::<(), SinkError>(())
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
    use crate::storage::MAX_STRING_UNITS;

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

    #[test]
    fn split_values_concatenate_to_the_value_and_cut_between_ids() {
        let ids: Vec<String> = (0..2_000).map(|i| format!("00000000-0000-4000-8000-{i:012}")).collect();
        let text = ids.join(",");
        let pieces = split_value(&text, PIECE_UNITS);
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces.concat(), text);
        for piece in &pieces[..pieces.len() - 1] {
            assert!(piece.ends_with(','), "cut between IDs");
            assert!(piece.encode_utf16().count() <= PIECE_UNITS);
        }
        // Without commas, and with characters of two UTF-16 units: cut at character boundaries.
        let wide = "😀".repeat(7) + "abc";
        let pieces = split_value(&wide, 4);
        assert_eq!(pieces.concat(), wide);
        assert!(pieces.iter().all(|p| p.encode_utf16().count() <= 4));
        assert_eq!(split_value("", 10), [""]);
        assert_eq!(split_value("short", 10), ["short"]);
    }

    #[test]
    fn a_small_record_is_one_row_with_the_records_fields() {
        let record = crate::audit::tests::record();
        let rows = rows(&record).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            Value::Object(rows[0].properties.clone()),
            serde_json::to_value(&record).unwrap()
        );
    }

    #[test]
    fn the_largest_call_fits_the_table_limits_and_reassembles() {
        use crate::domain::{AssignmentId, Target, Targets};
        let max_ids = 100_000;
        let ids: Vec<String> = (0..max_ids)
            .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
            .collect();
        let targets = Targets::from_items(
            ids.iter()
                .map(|id| Target::Assignment(AssignmentId::parse(id).unwrap())),
        );
        let invocation = crate::audit::Invocation::default();
        let record = AuditRecord::dry_run(&invocation, &targets, &[], "{}");
        let rows = rows(&record).unwrap();
        assert!(rows.len() > 1, "{} rows", rows.len());
        for row in &rows {
            assert!(row.stored_size() <= MAX_ENTITY_BYTES, "{}", row.stored_size());
            assert!(row.properties.len() <= 252);
            for value in row.properties.values() {
                if let Some(text) = value.as_str() {
                    assert!(text.encode_utf16().count() <= MAX_STRING_UNITS);
                }
            }
        }
        let own = &rows[0];
        assert_eq!(own.u64(PART_ROWS), Some(rows.len() as u64 - 1));
        for (n, part) in rows[1..].iter().enumerate() {
            assert_eq!(
                part.partition_key.as_str(),
                format!("{}~parts", own.partition_key.as_str())
            );
            assert_eq!(part.row_key.as_str(), format!("{}~{:03}", own.row_key.as_str(), n + 1));
            assert_eq!(part.str(PART_OF), Some(own.row_key.as_str()));
        }
        let parts = own.u64("assignment_ids_parts").unwrap() as usize;
        let mut whole = own.str("assignment_ids").unwrap().to_owned();
        for i in 1..parts {
            let name = format!("assignment_ids_{i}");
            let holder = rows
                .iter()
                .find(|r| r.str(&name).is_some())
                .expect("every piece is stored");
            whole.push_str(holder.str(&name).unwrap());
        }
        assert_eq!(whole, ids.join(","));
    }
}
