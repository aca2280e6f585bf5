//! Storage-queue trigger input. The trigger parameter is a `string`, so `Data.<name>` is
//! `JsonConvert.SerializeObject(text)`: the message text JSON-encoded a second time
//! (`ScriptInvocationContextExtensions.cs`, `GetHttpScriptInvocationContextValue`). Binding data from
//! `QueueTriggerBinding.CreateBindingData` (azure-sdk-for-net, Storage.Queues extension) lands in
//! `Metadata`: `DequeueCount` as `"1"`, `Id`/`PopReceipt` as `"\"…\""`, times as
//! `"yyyy-MM-ddTHH:mm:ss+00:00"`. JSON message properties are copied over those keys
//! (`Utility.ApplyBindingData`), so nothing here trusts metadata for anything but logs and
//! dead-letter records.

use super::envelope::{Envelope, EnvelopeError, unwrap_host_string};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct QueueTrigger {
    /// The message text exactly as it was put on the queue (after the queue's base64 decoding).
    pub text: String,
    pub message_id: Option<String>,
    pub dequeue_count: Option<u32>,
    pub insertion_time: Option<String>,
}

impl QueueTrigger {
    pub fn from_envelope(envelope: &Envelope, binding: &'static str) -> Result<Self, EnvelopeError> {
        let value = envelope.data.get(binding).ok_or(EnvelopeError::MissingInput(binding))?;
        let text = match value {
            Value::String(s) => unwrap_host_string(s),
            // `dataType: binary` or a future host could hand over other shapes; keep their JSON text.
            Value::Null => return Err(EnvelopeError::MissingInput(binding)),
            other => other.to_string(),
        };
        let dequeue_count = envelope
            .metadata_text("DequeueCount")
            .and_then(|s| s.trim().parse::<u32>().ok());
        Ok(Self {
            text,
            message_id: envelope.metadata_text("Id"),
            dequeue_count,
            insertion_time: envelope.metadata_text("InsertionTime"),
        })
    }
}
