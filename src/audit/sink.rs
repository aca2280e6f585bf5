//! The durable audit sink: where records go to outlive log retention. Writing is best effort: the
//! [`super::Recorder`] calls it in the background and only logs a failure.

use super::AuditRecord;
use futures_util::future::BoxFuture;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// A place audit records are kept.
pub trait AuditSink: Send + Sync + std::fmt::Debug {
    /// Stores the records (in any order); `Err` says why some were not stored.
    fn write(&self, records: Vec<AuditRecord>) -> BoxFuture<'static, Result<(), SinkError>>;
}

/// The durable sink the settings ask for (`None`: records go to the log only).
pub fn from_settings(_settings: &crate::config::Settings) -> Option<std::sync::Arc<dyn AuditSink>> {
    None
}
