//! The data of the Table client: entities (keys + properties, JSON without metadata), upsert modes,
//! insert results, and query pages with their continuation.

use super::error::StorageError;
use super::keys::{TableKey, check_property};
use serde_json::{Map, Value, json};

/// One entity: its keys and its other properties (no `Timestamp` when written; read back when listed).
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub partition_key: TableKey,
    pub row_key: TableKey,
    pub properties: Map<String, Value>,
}

impl Entity {
    pub fn new(partition_key: TableKey, row_key: TableKey) -> Self {
        Self {
            partition_key,
            row_key,
            properties: Map::new(),
        }
    }
    /// Adds a property (string, bool, a number within Int32/Double). Names are checked when written.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.properties.insert(name.to_owned(), value.into());
        self
    }
    pub fn str(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(Value::as_str)
    }
    pub fn u64(&self, name: &str) -> Option<u64> {
        self.properties.get(name).and_then(Value::as_u64)
    }

    /// The entity's size as Table Storage counts it against [`MAX_ENTITY_BYTES`] ("Understanding the
    /// Table service data model": 4 bytes, the keys in UTF-16, and per property 8 bytes, its name in
    /// UTF-16 and its value: a string 4 bytes plus UTF-16, a number 8, a boolean 1).
    pub fn stored_size(&self) -> usize {
        let utf16 = |s: &str| s.encode_utf16().count() * 2;
        let value = |v: &Value| match v {
            Value::String(s) => 4 + utf16(s),
            Value::Bool(_) => 1,
            Value::Null => 0,
            Value::Number(_) => 8,
            other => 4 + utf16(&other.to_string()),
        };
        4 + utf16(self.partition_key.as_str())
            + utf16(self.row_key.as_str())
            + self
                .properties
                .iter()
                .map(|(name, v)| 8 + utf16(name) + value(v))
                .sum::<usize>()
    }

    pub(super) fn to_body(&self) -> Result<Vec<u8>, StorageError> {
        let mut body = Map::new();
        body.insert("PartitionKey".into(), json!(self.partition_key.as_str()));
        body.insert("RowKey".into(), json!(self.row_key.as_str()));
        for (name, value) in &self.properties {
            check_property(name)?;
            if matches!(name.as_str(), "PartitionKey" | "RowKey" | "Timestamp") {
                continue;
            }
            body.insert(name.clone(), value.clone());
        }
        Ok(serde_json::to_vec(&Value::Object(body)).expect("JSON maps serialize"))
    }

    pub(super) fn from_json(value: Value) -> Result<Self, StorageError> {
        let Value::Object(mut map) = value else {
            return Err(StorageError::Unexpected("an entity that is not an object".into()));
        };
        let mut key = |name: &str| -> Result<TableKey, StorageError> {
            let text = map
                .remove(name)
                .and_then(|v| v.as_str().map(str::to_owned))
                .ok_or_else(|| StorageError::Unexpected(format!("an entity without {name}")))?;
            Ok(TableKey::parse(&text)?)
        };
        let partition_key = key("PartitionKey")?;
        let row_key = key("RowKey")?;
        Ok(Self {
            partition_key,
            row_key,
            properties: map,
        })
    }
}

/// The most a string property holds, in UTF-16 code units (64 KiB: "32K characters").
pub const MAX_STRING_UNITS: usize = 32 * 1024;
/// The most an entity holds, keys and property names included ([`Entity::stored_size`]).
pub const MAX_ENTITY_BYTES: usize = 1024 * 1024;

/// Insert-or-replace (the entity becomes exactly this) or insert-or-merge (these properties change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertMode {
    Replace,
    Merge,
}

/// What an insert found: `Inserted`, or `AlreadyExists` (409 `EntityAlreadyExists`, nothing written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Inserted,
    AlreadyExists,
}

/// Where a query resumes: the service's `x-ms-continuation-NextPartitionKey` / `NextRowKey` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continuation {
    pub(super) next_partition_key: String,
    pub(super) next_row_key: Option<String>,
}

/// One page of a query.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub entities: Vec<Entity>,
    pub continuation: Option<Continuation>,
}
