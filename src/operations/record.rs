//! Writing an operation's state: [`OperationStore::start`] (HTTP and alert functions, before their 202)
//! and [`OperationStore::record`] (each queue invocation of a tracked message). See the completion rule
//! in the module above.

use super::{
    DEAD_ROWS, DONE, LISTING_ROWS, OP_ROW, OperationStore, PENDING, RESULT_ROWS, SUPERSEDED, key, message_row,
    now_text, partition,
};
use crate::domain::{CorrelationId, ItemResult, MessageKey};
use crate::storage::{Entity, StorageError, UpsertMode};
use futures_util::StreamExt;
use time::OffsetDateTime;

/// Storage writes in flight per invocation.
const WRITES_IN_FLIGHT: usize = 8;
/// The property of a message row listing the keys of the children it made (comma-separated).
const CHILDREN: &str = "children";
/// Children keys remembered per message (a page makes at most ~50; a Table string holds 32K characters).
const MAX_CHILDREN_KEPT: usize = 1000;
/// Longest per-ID result text kept (a Table string property holds 32K UTF-16 characters).
const MAX_RESULT_TEXT: usize = 16_000;

/// What [`OperationStore::start`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Started {
    /// A new operation, with its first messages pending.
    New,
    /// The ID already names an operation: nothing was written to it.
    Exists,
}

/// An ID (or a listing's package/user) that went to the poison queue, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadEntry {
    pub id: String,
    /// `assignment`, `assignmentRequest`, `accessPackage` or `user`.
    pub kind: &'static str,
    pub reason: String,
}

/// One page listed for a package/user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPage {
    pub scope_kind: &'static str,
    pub scope_id: String,
    pub ids_found: usize,
}

/// What one queue invocation did, for its operation's state.
#[derive(Debug, Default)]
pub struct Recorded<'a> {
    pub results: &'a [ItemResult],
    pub dead: Vec<DeadEntry>,
    pub listed: Option<ListedPage>,
    /// The keys of the messages it enqueues, in output order.
    pub children: Vec<MessageKey>,
}

impl OperationStore {
    /// Starts a new operation and registers the messages about to be enqueued as pending, before they
    /// exist. An ID that already names an operation is refused ([`Started::Exists`], nothing written to
    /// that operation): an operation belongs to the call that created it, so a later call that names
    /// its ID (by mistake, or to write into someone else's results) can neither add IDs to it nor
    /// reopen or extend it. The insert of the `op` row is the claim, so of two calls racing for one new
    /// ID exactly one gets it. Redeliveries of the handler's own queue messages never come through here:
    /// they record into their operation with [`OperationStore::record`].
    pub async fn start(
        &self,
        op: &CorrelationId,
        source: &str,
        owner: Option<&str>,
        scopes: usize,
        roots: &[MessageKey],
    ) -> Result<Started, StorageError> {
        let table = self.table().await?;
        let now = OffsetDateTime::now_utc();
        let expires = now + time::Duration::try_from(self.retention()).unwrap_or(time::Duration::days(7));
        let expires_at = crate::message::rfc3339(expires);
        // The index first: an operation is never stored without a way to find it when it expires.
        self.index_expiry(op, &expires_at).await?;
        let mut header = Entity::new(partition(op), key(OP_ROW))
            .with("createdAt", crate::message::rfc3339(now))
            .with("expiresAt", expires_at.as_str())
            .with("source", source)
            .with("scopes", scopes as u64);
        if let Some(owner) = owner {
            header = header.with("owner", owner);
        }
        if self.client.insert(table, &header).await? == crate::storage::Inserted::AlreadyExists {
            // The index row just written is the refused call's; the operation keeps its own (same key
            // only when both were written in the same second, and then it must stay).
            let existing = self.client.get(table, &partition(op), &key(OP_ROW)).await?;
            if existing.as_ref().and_then(|e| e.str("expiresAt")) != Some(expires_at.as_str()) {
                // Best effort: a leftover index row only makes a later sweep look at this ID once more.
                let index = super::sweep::expiry_row(&expires_at, op);
                let _ = self.client.delete(table, &index.partition_key, &index.row_key).await;
            }
            return Ok(Started::Exists);
        }
        self.write_all(
            roots.iter().map(|k| pending(op, k, "root")).collect(),
            UpsertMode::Replace,
        )
        .await?;
        Ok(Started::New)
    }

    /// Records one invocation of the tracked message `own`: results, dead letters and listed page, then
    /// its children as pending (older children it no longer makes as superseded), then itself as done.
    pub async fn record(&self, op: &CorrelationId, own: &MessageKey, work: &Recorded<'_>) -> Result<(), StorageError> {
        let table = self.table().await?;
        let pk = partition(op);
        let mut finals = Vec::new();
        let mut transients = Vec::new();
        for result in work.results {
            let mut text = serde_json::to_string(result).expect("results serialize");
            if text.len() > MAX_RESULT_TEXT {
                let mut short = serde_json::to_value(result).expect("results serialize");
                short["error"]["message"] = serde_json::json!("[too long to keep: see the function logs]");
                text = short.to_string();
            }
            let row = Entity::new(pk.clone(), key(&format!("{RESULT_ROWS}{}", result.id)))
                .with("kind", serde_json::to_value(result.kind).expect("kinds serialize"))
                .with("outcome", result.outcome.label())
                .with("result", text);
            if result.outcome.is_final() {
                finals.push(row);
            } else {
                transients.push(row);
            }
        }
        let mut rows: Vec<Entity> = finals;
        rows.extend(work.dead.iter().map(|d| {
            Entity::new(pk.clone(), key(&format!("{DEAD_ROWS}{}", d.id)))
                .with("kind", d.kind)
                .with("reason", crate::message::fit::clip(&d.reason, 4_000))
        }));
        if let Some(page) = &work.listed {
            rows.push(
                Entity::new(pk.clone(), key(&format!("{LISTING_ROWS}{own}")))
                    .with("scopeKind", page.scope_kind)
                    .with("scopeId", page.scope_id.as_str())
                    .with("idsFound", page.ids_found as u64),
            );
        }
        self.write_all(rows, UpsertMode::Replace).await?;
        // A transient result never replaces what is already there (a final one, or an earlier transient).
        let inserts = futures_util::stream::iter(transients.iter().map(|row| self.client.insert(table, row)))
            .buffer_unordered(WRITES_IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
        for inserted in inserts {
            inserted?;
        }

        // Children: pending before this message is done. Earlier children of this message that this run
        // does not enqueue (a redelivery after a crash whose first run's outputs were never written, or a
        // re-listed page that changed) are superseded, so they cannot hold the operation open forever.
        // Every child a run may have written is first remembered on this message's own row (`children`),
        // so a run cut short at any point leaves the next delivery a complete list: one point read per
        // message, no scan of the operation's message rows.
        let own_row = self.client.get(table, &pk, &message_row(own)).await?;
        let earlier: Vec<MessageKey> = own_row
            .as_ref()
            .and_then(|e| e.str(CHILDREN))
            .map(|list| list.split(',').filter_map(MessageKey::parse).collect())
            .unwrap_or_default();
        let mut known = earlier.clone();
        for child in &work.children {
            if !known.contains(child) {
                known.push(child.clone());
            }
        }
        if known.len() > MAX_CHILDREN_KEPT {
            known.drain(..known.len() - MAX_CHILDREN_KEPT);
        }
        let list = |keys: &[MessageKey]| keys.iter().map(MessageKey::as_str).collect::<Vec<_>>().join(",");
        if known != earlier {
            let remember = Entity::new(pk.clone(), message_row(own)).with(CHILDREN, list(&known));
            self.client.upsert(table, &remember, UpsertMode::Merge).await?;
        }
        self.write_all(
            work.children.iter().map(|k| pending(op, k, own.as_str())).collect(),
            UpsertMode::Replace,
        )
        .await?;
        let stale: Vec<Entity> = known
            .iter()
            .filter(|k| !work.children.contains(k))
            .map(|k| {
                Entity::new(pk.clone(), message_row(k))
                    .with("state", SUPERSEDED)
                    .with("updatedAt", now_text())
            })
            .collect();
        self.write_all(stale, UpsertMode::Merge).await?;
        let done = Entity::new(pk, message_row(own))
            .with("state", DONE)
            .with(CHILDREN, list(&work.children))
            .with("updatedAt", now_text());
        self.client.upsert(table, &done, UpsertMode::Merge).await
    }

    async fn write_all(&self, rows: Vec<Entity>, mode: UpsertMode) -> Result<(), StorageError> {
        let table = self.table().await?;
        let results = futures_util::stream::iter(rows.iter().map(|row| self.client.upsert(table, row, mode)))
            .buffer_unordered(WRITES_IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
        results.into_iter().collect()
    }
}

fn pending(op: &CorrelationId, k: &MessageKey, parent: &str) -> Entity {
    Entity::new(partition(op), message_row(k))
        .with("state", PENDING)
        .with("parent", parent)
        .with("updatedAt", now_text())
}
